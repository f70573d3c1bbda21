// The deployment configuration: one JSON file (config/example.json shows every field).
// Validation happens here, before any construct exists, and every error names the field
// by its path so a typo never reaches CloudFormation.
import * as fs from 'node:fs';
import { declaredFor, environmentContract } from './environment';

export const KINDS = ['db-instance', 'db-cluster', 'ebs'] as const;
export type Kind = (typeof KINDS)[number];

export interface Selection {
  identifiers: string[];
  regex?: string;
  tag?: string;
  /** EBS: an opt-in tag on EC2 instances; all volumes of each are snapshotted together (SELECT_INSTANCE_TAG). */
  instanceTag?: string;
}

export interface SourceConfig {
  account: string;
  region: string;
  kinds: Kind[];
  selection: Selection;
  minIntervalMinutes: number;
  manualSnapshotQuota: number;
  recheckSeconds: number;
  /** Which of its snapferry snapshots the source keeps (expire-snapshots' RETENTION). */
  retention: RetentionRule[];
  expire: ExpireConfig;
  /** reconcile-snapshots' GRACE_MINUTES and SCHEDULE_MINUTES. */
  reconcile: SourceReconcileConfig;
  /**
   * Source data checks (SOURCE_DATA_CHECKS): share-snapshot measures these databases' tables
   * and rows when it shares their snapshots, for the restore tests to compare against;
   * absent: none, and the function stays outside any VPC.
   */
  dataChecks?: SourceDataChecksConfig;
}

/** A source database share-snapshot measures. */
export interface SourceDataCheckDatabase {
  /** Regex on the resource id (the database or cluster). */
  resources: string;
  /** The database to log in to; unset: its DBName, else `postgres` (the step's default). */
  database?: string;
  /** A Secrets Manager secret ARN to log in with; unset: the master user's secret RDS manages. */
  secret?: string;
}

export interface SourceDataChecksConfig {
  databases: SourceDataCheckDatabase[];
  /** DATA_CHECK_TIMEOUT_SECONDS of share-snapshot. */
  timeoutSeconds: number;
  /** The VPC of the databases, and the subnets the function runs in (they must reach the AWS APIs: a NAT gateway or VPC endpoints). */
  vpcId: string;
  subnetIds: string[];
  /** The databases' security group: it is given ingress on the database ports from the function's group. */
  databaseSecurityGroupId: string;
}

/** How reconcile-snapshots repairs and watches a source (its GRACE_MINUTES, SCHEDULE_MINUTES). */
export interface SourceReconcileConfig {
  /** A snapshot created this long ago and still not shared is repaired. */
  graceMinutes: number;
  /** How often a resource is snapshotted: one with no snapshot younger than twice this is overdue. */
  scheduleMinutes: number;
}

/** How reconcile-copies repairs and watches the backup account (its GRACE_MINUTES, RPO_MINUTES). */
export interface TargetReconcileConfig {
  /** A copy stalled this long (not announced, not restore-tested, missing in an extra region) is repaired. */
  graceMinutes: number;
  /** Recovery point objective: a source resource whose newest verified copy is older is overdue, and the RPO alarm fires. */
  rpoMinutes: number;
}

/** The criteria of a retention rule; a rule needs at least one. */
export const RETENTION_CRITERIA = ['keep_last', 'max_age_days', 'daily', 'weekly', 'monthly', 'yearly'] as const;

/**
 * One retention rule, exactly as the expire steps read it (RETENTION is these rules as JSON,
 * snake_case keys included). The first rule whose `resources` regex matches a resource's id
 * and whose `regions` include the region applies to that resource's snapshots there; no
 * matching rule keeps everything. A snapshot is kept if any criterion keeps it.
 */
export interface RetentionRule {
  /** Regex on the resource id; absent: every resource. */
  resources?: string;
  /** The rule applies only in these regions; absent: in every region. */
  regions?: string[];
  /** The newest N. */
  keep_last?: number;
  /** Those younger than N days. */
  max_age_days?: number;
  /** The newest of each of the last N days / ISO weeks / months / years that have one (restic's --keep-daily etc.). */
  daily?: number;
  weekly?: number;
  monthly?: number;
  yearly?: number;
}

/** How an expire step deletes (its EXPIRE_DRY_RUN, ALLOW_DELETE_ALL, MAX_DELETES_PER_RUN, QUOTA_WARNING_PERCENT). */
export interface ExpireConfig {
  /** Delete nothing; report what would be deleted. */
  dryRun: boolean;
  /** Let the rules delete every snapshot of a resource (otherwise such a resource keeps all it has). */
  allowDeleteAll: boolean;
  maxDeletesPerRun: number;
  quotaWarningPercent: number;
}

export interface CopyConfig {
  identifierRegex?: string;
  descriptionRegex?: string;
  /**
   * Copies of a kind AWS runs at once into one region of the backup account, where the
   * account's quota is not AWS's default (COPY_SLOTS; unset: 20 DB instance, 5 Aurora, 20 EBS).
   */
  copySlots?: Partial<Record<Kind, number>>;
  /**
   * What one source account may take of the backup account (COPIES_HELD_PER_SOURCE,
   * COPIES_IN_FLIGHT_PER_SOURCE); absent, or a field left out: the copy step's defaults, derived
   * from AWS's quotas divided among the source accounts.
   */
  budgets?: CopyBudgets;
  /**
   * Per extra region, the option group there for each non-default option group the DB
   * snapshots use: region -> the snapshot's option group -> the one in that region
   * (OPTION_GROUPS). AWS refuses to copy a DB snapshot of a non-default option group into
   * another region without one (RDS API Reference, CopyDBSnapshot, OptionGroupName); absent:
   * no mapping, and the copy step rejects such a snapshot for the extra regions, naming the
   * mapping. A default option group (`default:...`) needs none.
   */
  optionGroups?: OptionGroups;
  recheckSeconds: number;
  maxConcurrency: number;
}

/** `target.copy.optionGroups`: extra region -> source option group -> option group in that region. */
export type OptionGroups = Record<string, Record<string, string>>;

/** One source's budget in the backup account, per kind and region; a field left out: the default. */
export interface CopyBudget {
  /** Copies it may hold (COPIES_HELD_PER_SOURCE): past it, its shares are rejected. */
  copiesHeld?: number;
  /** Copies it may have in progress at once (COPIES_IN_FLIGHT_PER_SOURCE): past it, its next copy waits. */
  copiesInFlight?: number;
}

/** `target.copy.budgets`: a budget for every source, and per source account (each one of `sources[].account`). */
export interface CopyBudgets extends CopyBudget {
  sources?: Record<string, CopyBudget>;
}

/** The fields of a budget, and the variable each becomes. */
export const BUDGET_VARIABLES = { copiesHeld: 'COPIES_HELD_PER_SOURCE', copiesInFlight: 'COPIES_IN_FLIGHT_PER_SOURCE' } as const;
export type BudgetField = keyof typeof BUDGET_VARIABLES;

/** EBS Snapshot Lock modes (EC2 API Reference, LockSnapshot: LockMode). */
export const LOCK_MODES = ['governance', 'compliance'] as const;
export type LockMode = (typeof LOCK_MODES)[number];

export interface RestoreTestConfig {
  enabled: boolean;
  everyNth: number;
  instanceClass?: string;
  timeoutMinutes: number;
  recheckSeconds: number;
  vpcCidr: string;
  /** EBS: the zone test volumes are created in (RESTORE_AVAILABILITY_ZONE); unset: the home region's `a` zone. */
  availabilityZone?: string;
  /** EBS: lock each copy whose restore test passed (LOCK_MODE); unset: no lock. */
  lockMode?: LockMode;
  /** EBS: days a verified copy stays locked (LOCK_DAYS); unset: the step's default. */
  lockDays?: number;
  /** Must be true for lockMode compliance (LOCK_COMPLIANCE_OPT_IN). */
  lockComplianceOptIn?: boolean;
  /**
   * Read-only SQL checks the restore step runs on each restored database (DATA_CHECKS,
   * DATA_CHECK_TIMEOUT_SECONDS); absent: none, and none of their network (data-checks.ts).
   */
  dataChecks?: DataChecksConfig;
}

/** The expectations a probe may have; exactly one per probe. */
export const PROBE_EXPECTATIONS = ['min', 'max', 'maxAgeMinutes'] as const;

/** One query and what its value must be. */
export interface DataCheckProbe {
  /** Unique within its database: reports name the probe by it. */
  name: string;
  sql: string;
  /** The value is a number of at least this. */
  min?: number;
  /** The value is a number of at most this. */
  max?: number;
  /** The value is a timestamp at most this many minutes before the snapshot's time (and not after it). */
  maxAgeMinutes?: number;
}

/** The checks of the restores of the resources whose id matches `resources` (the first entry that matches applies). */
export interface DataCheckDatabase {
  /** Regex on the resource id (the source database or cluster). */
  resources: string;
  /** The database to connect to; unset: the restored resource's DBName, else `postgres` (the step's default). */
  database?: string;
  /** `schema.table` names that must exist in the restore and hold rows. */
  tables?: string[];
  probes: DataCheckProbe[];
  /**
   * Against the source's figures, where the copy carries them (the source's dataChecks): the
   * same tables, and rows within this many percent (the step's default, 10, when unset); false: not compared.
   */
  compareWithSource?: false | { rowTolerancePercent: number };
  /**
   * Against the previous good copy of the same resource: no table fewer, rows down by at most this
   * many percent (the step's default, 50, when unset), no older newest data; else the copy is
   * reported suspicious and retention keeps the previous good one (`snapferry accept`); false: not compared.
   */
  compareWithPrevious?: false | { rowsDropPercent: number };
}

export interface DataChecksConfig {
  /** DATA_CHECK_TIMEOUT_SECONDS: the time limit of the checks' connections and queries. */
  timeoutSeconds: number;
  databases: DataCheckDatabase[];
  /**
   * The zones the interface endpoints are in: 2 (every restore-test subnet) or 1 (the first
   * one only: half the hourly cost, and no endpoint while that zone is down).
   */
  endpointZones: 1 | 2;
}

export interface TargetConfig {
  account: string;
  region: string;
  extraRegions: string[];
  /** The resource kinds the backup account copies and restores; default every kind. */
  kinds: Kind[];
  /**
   * A role of the backup account that alone may schedule the deletion of, disable or change the
   * policy of the backup keys (with CloudFormation's execution role for the policy): see target-key.ts.
   */
  breakGlassRoleArn?: string;
  copy: CopyConfig;
  restoreTest: RestoreTestConfig;
  /** Which copies the backup account keeps, per resource and region (expire-copies' RETENTION). */
  retention: RetentionRule[];
  expire: ExpireConfig;
  /** reconcile-copies' GRACE_MINUTES and RPO_MINUTES. */
  reconcile: TargetReconcileConfig;
}

export interface Config {
  logRetentionDays: number;
  lambdaMemoryMb: number;
  alarmEmail?: string;
  target: TargetConfig;
  sources: SourceConfig[];
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

// CloudWatch Logs accepts only these retention periods.
const RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];
const ACCOUNT = /^\d{12}$/;
const REGION = /^[a-z]{2}(-gov)?-[a-z]+-\d$/;

/**
 * Refuses a lone surrogate (a `\ud800` escape in the file): JavaScript strings may hold one,
 * but the steps' JSON parser refuses it in RETENTION and the data checks, and a variable
 * cannot carry it as UTF-8.
 */
function wellFormed(v: string, path: string): void {
  if (/\p{Cs}/u.test(v)) throw new ConfigError(`${path}: has a lone surrogate (not well-formed Unicode), got ${JSON.stringify(v)}`);
}

/** Letters the regex crate knows after a backslash (outside a class, inside one); it refuses any other letter, and every digit. */
const REGEX_CRATE_ESCAPES = { outside: 'dDsSwWpPaftnrvxuUbBAz', inside: 'dDsSwWpPaftnrvxuU' };
/** Hex digits after \x, \u, \U when not braced. */
const HEX_DIGITS: Record<string, number> = { x: 2, u: 4, U: 8 };
const ENGINE = 'the steps\' regex engine (Rust\'s regex crate)';

/**
 * Why Rust's regex crate, the steps' engine, refuses `v` or reads it otherwise, where
 * JavaScript's RegExp accepted it: JavaScript reads much of what it does not know as literal
 * characters (web-compatibility syntax). Undefined when no such construct is found. Not a
 * whole parser (unknown Unicode property names, for one, pass here): what it misses still
 * fails the step's init, and test/rust-parsers.test.ts feeds the tests' samples to the steps'
 * own parsers.
 */
export function regexCrateRefuses(v: string): string | undefined {
  let depth = 0; // open character classes: the regex crate nests them, JavaScript does not
  for (let i = 0; i < v.length; i++) {
    const c = v[i];
    const rest = v.slice(i + 1);
    if (c === '\\') {
      const e = rest[0] ?? '';
      const escape = JSON.stringify(`\\${e}`);
      if (/[0-9]/.test(e)) return `${escape}: ${ENGINE} has no backreferences or octal escapes`;
      // Any other escaped ASCII character that is no letter stands for itself in both.
      if (!/[\x00-\x7f]/.test(e)) return `${escape}: ${ENGINE} escapes ASCII characters only`;
      if (/[A-Za-z]/.test(e)) {
        if (!(depth > 0 ? REGEX_CRATE_ESCAPES.inside : REGEX_CRATE_ESCAPES.outside).includes(e)) {
          return `${escape}: an escape ${ENGINE} does not know${depth > 0 ? ' in a character class' : ''}`;
        }
        let used = 0;
        if (e in HEX_DIGITS) {
          const m = new RegExp(`^\\{([0-9A-Fa-f]+)\\}|^[0-9A-Fa-f]{${HEX_DIGITS[e]}}`).exec(rest.slice(1));
          const code = m === null ? NaN : parseInt(m[1] ?? m[0], 16);
          if (!(code <= 0x10ffff) || (code >= 0xd800 && code <= 0xdfff)) {
            return `${escape}: ${ENGINE} expects ${HEX_DIGITS[e]} hex digits or {hex} after it, naming a Unicode scalar value`;
          }
          used = m![0].length;
        } else if (e === 'p' || e === 'P') {
          const m = /^\{[^}]*\}|^[A-Za-z]/.exec(rest.slice(1));
          if (m === null) return `${escape}: ${ENGINE} expects a Unicode class after it, one letter or {name}`;
          used = m[0].length;
        } else if (e === 'b') {
          used = /^\{(start|end|start-half|end-half)\}/.exec(rest.slice(1))?.[0].length ?? 0;
        }
        // A class (\d, \w, \p{L}...) as a bound of a range: JavaScript reads the - as a literal.
        if (depth > 0 && 'dDsSwWpP'.includes(e) && /^-[^\]]/.test(rest.slice(1 + used))) {
          return `${JSON.stringify(`\\${e}${rest.slice(1, 2 + used)}`)}: ${ENGINE} has no range from a class; write \\- for a literal -`;
        }
        i += used;
      }
      i += 1;
    } else if (c === '(' && depth === 0) {
      const around = /^\?<?[=!]/.exec(rest);
      if (around !== null) return `${JSON.stringify(`(${around[0]}`)}: ${ENGINE} has no look-around or backreferences`;
    } else if (c === '[') {
      const open = /^\^?\]/.exec(rest);
      if (open !== null) {
        return `${JSON.stringify(`[${open[0]}`)}: JavaScript reads an empty class, ${ENGINE} a class that starts with a literal ]; write \\] for a literal`;
      }
      // Inside a class, an ASCII class ([:alpha:]) is one item, and a [ that ends a range (>-[) a literal: no nested class.
      const ascii = depth > 0 ? /^:\^?[a-z]+:\]/.exec(rest) : null;
      if (ascii !== null) i += ascii[0].length;
      else if (!(depth > 0 && /[^[^]-$/.test(v.slice(0, i)))) depth += 1;
    } else if (c === ']' && depth > 0) {
      depth -= 1;
    } else if (c === '-' && depth > 0 && /^\\[dDsSwWpP]/.test(rest) && !/(\[\^?|-.)$/.test(v.slice(0, i))) {
      // A - first in a class, or right after a range, is a literal in both.
      return `${JSON.stringify(`-${rest.slice(0, 2)}`)}: ${ENGINE} has no range to a class; write \\- for a literal -`;
    } else if (c === '{' && depth === 0) {
      // The regex crate reads { as a repetition, always (blanks allowed); JavaScript, where it is none, as a literal.
      const m = /^\s*\d+\s*(,\s*\d*\s*)?\}/.exec(rest);
      if (m === null) return `"{": ${ENGINE} reads it as a repetition, {n}, {n,} or {n,m}; write \\{ for a literal`;
      i += m[0].length;
    }
  }
  // JavaScript took a [ inside a class as a literal; the regex crate opened a nested class.
  return depth > 0 ? `"[": a character class left open: ${ENGINE} nests classes; write \\[ for a literal [ inside one` : undefined;
}

/** Reads one JSON object, remembering its path for error messages. */
class Fields {
  private readonly seen = new Set<string>(['$comment']);

  constructor(private readonly obj: Record<string, unknown>, readonly path: string) {}

  static of(value: unknown, path: string): Fields {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new ConfigError(`${path}: expected an object`);
    }
    return new Fields(value as Record<string, unknown>, path);
  }

  at(key: string): string {
    return this.path ? `${this.path}.${key}` : key;
  }

  raw(key: string): unknown {
    this.seen.add(key);
    return this.obj[key];
  }

  object(key: string): Fields {
    return Fields.of(this.raw(key), this.at(key));
  }

  string(key: string, pattern?: RegExp, what?: string): string {
    const v = this.raw(key);
    if (typeof v !== 'string' || (pattern && !pattern.test(v))) {
      throw new ConfigError(`${this.at(key)}: expected ${what ?? 'a string'}, got ${JSON.stringify(v)}`);
    }
    wellFormed(v, this.at(key));
    return v;
  }

  /** Refuses a field that was renamed, naming it and its new name. */
  renamed(oldKey: string, newKey: string, why: string): void {
    if (Object.prototype.hasOwnProperty.call(this.obj, oldKey)) {
      throw new ConfigError(`${this.at(oldKey)}: renamed to ${newKey} (${why})`);
    }
  }

  optionalString(key: string, pattern?: RegExp, what?: string): string | undefined {
    return this.raw(key) === undefined ? undefined : this.string(key, pattern, what);
  }

  regex(key: string): string | undefined {
    const v = this.optionalString(key);
    if (v !== undefined) {
      // JavaScript and the Rust regex crate agree on the common syntax; this catches typos,
      // the functions re-validate at init with the real engine.
      try {
        new RegExp(v);
      } catch (e) {
        throw new ConfigError(`${this.at(key)}: not a valid regular expression: ${(e as Error).message}`);
      }
      // What JavaScript accepts and the regex crate refuses (the step would fail at init), or reads otherwise.
      const refused = regexCrateRefuses(v);
      if (refused !== undefined) {
        throw new ConfigError(`${this.at(key)}: ${refused}`);
      }
    }
    return v;
  }

  /**
   * A string the stacks pass on as a variable of its own: the steps trim every variable, and a
   * blank one is unset, so surrounding blanks would give the step another value than the
   * one validated here.
   */
  trimmed(key: string, v: string | undefined): string | undefined {
    if (v !== undefined && v.trim() !== v) {
      throw new ConfigError(`${this.at(key)}: ${JSON.stringify(v)} has blanks around it, which the steps trim (blank: unset); leave them out`);
    }
    return v;
  }

  optionalInt(key: string, min: number, max: number): number | undefined {
    return this.raw(key) === undefined ? undefined : this.int(key, min, max);
  }

  optionalBool(key: string): boolean | undefined {
    return this.raw(key) === undefined ? undefined : this.bool(key);
  }

  /** The object's own keys but `$comment`, marked read: for an object whose keys are names (accounts), not fields. */
  keys(): string[] {
    const keys = Object.keys(this.obj).filter((k) => k !== '$comment');
    keys.forEach((k) => this.seen.add(k));
    return keys;
  }

  /** True if the object has the field (read or not). */
  has(key: string): boolean {
    return this.obj[key] !== undefined;
  }

  int(key: string, min: number, max: number): number {
    const v = this.raw(key);
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      throw new ConfigError(`${this.at(key)}: expected an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
    }
    return v;
  }

  bool(key: string): boolean {
    const v = this.raw(key);
    if (typeof v !== 'boolean') throw new ConfigError(`${this.at(key)}: expected true or false, got ${JSON.stringify(v)}`);
    return v;
  }

  strings(key: string, pattern?: RegExp, what?: string): string[] {
    const v = this.raw(key);
    if (!Array.isArray(v)) throw new ConfigError(`${this.at(key)}: expected a list, got ${JSON.stringify(v)}`);
    v.forEach((item, i) => {
      if (typeof item !== 'string' || (pattern && !pattern.test(item))) {
        throw new ConfigError(`${this.at(key)}[${i}]: expected ${what ?? 'a string'}, got ${JSON.stringify(item)}`);
      }
      wellFormed(item, `${this.at(key)}[${i}]`);
    });
    if (new Set(v).size !== v.length) throw new ConfigError(`${this.at(key)}: has duplicates`);
    return v as string[];
  }

  /** Call last: a misspelt optional field would otherwise be silently ignored. */
  done(): void {
    const unknown = Object.keys(this.obj).filter((k) => !this.seen.has(k));
    if (unknown.length > 0) throw new ConfigError(`${this.at(unknown[0])}: unknown field`);
  }
}

/** `target.copy.copySlots`: a count of 1 or more per kind named (AWS's copy quotas can be raised, not lowered to 0). */
function copySlots(f: Fields): Partial<Record<Kind, number>> {
  const slots: Partial<Record<Kind, number>> = {};
  for (const kind of KINDS) {
    if (f.has(kind)) slots[kind] = f.int(kind, 1, 1000);
  }
  f.done();
  return slots;
}

/** COPY_SLOTS as the copy step reads it: `kind=count,...`. */
export function copySlotsVariable(slots: Partial<Record<Kind, number>> | undefined): string | undefined {
  const pairs = KINDS.filter((k) => slots?.[k] !== undefined).map((k) => `${k}=${slots![k]}`);
  return pairs.length > 0 ? pairs.join(',') : undefined;
}

/**
 * Bounds of a budget: at least 1 (a source allowed no copy would have every share rejected:
 * take it out of the sources instead); at most the bounds of manualSnapshotQuota (held) and
 * copySlots (in flight), as AWS's quotas can be raised that far.
 */
const BUDGET_BOUNDS: Record<BudgetField, [number, number]> = { copiesHeld: [1, 100000], copiesInFlight: [1, 1000] };

/** The fields of one budget (the default, or a source's), each optional. */
function budgetFields(f: Fields): CopyBudget {
  const b: CopyBudget = {};
  for (const key of Object.keys(BUDGET_VARIABLES) as BudgetField[]) {
    const n = f.optionalInt(key, ...BUDGET_BOUNDS[key]);
    if (n !== undefined) b[key] = n;
  }
  return b;
}

/**
 * `target.copy.budgets`: a default for every source and budgets per source account. The
 * accounts are checked against `sources[].account` in parseConfig, once the sources are read.
 */
function copyBudgets(f: Fields): CopyBudgets {
  const budgets: CopyBudgets = budgetFields(f);
  if (f.has('sources')) {
    const s = f.object('sources');
    const accounts = s.keys();
    if (accounts.length === 0) throw new ConfigError(`${s.path}: expected at least one source account (leave it out for none)`);
    budgets.sources = {};
    for (const account of accounts) {
      if (!ACCOUNT.test(account)) {
        throw new ConfigError(`${s.at(account)}: expected a 12-digit AWS account id (a source account), got ${JSON.stringify(account)}`);
      }
      const a = s.object(account);
      const b = budgetFields(a);
      a.done();
      if (Object.keys(b).length === 0) {
        throw new ConfigError(`${a.path}: sets neither ${Object.keys(BUDGET_VARIABLES).join(' nor ')}; leave it out for the default`);
      }
      budgets.sources[account] = b;
    }
    s.done();
  }
  f.done();
  if (Object.keys(budgets).length === 0) {
    throw new ConfigError(`${f.path}: sets no budget; leave it out for the copy step's defaults (AWS's quotas divided among the sources)`);
  }
  return budgets;
}

/**
 * COPIES_HELD_PER_SOURCE or COPIES_IN_FLIGHT_PER_SOURCE as the copy step reads it: `N` (every
 * source) first, then `account=N` in account order; undefined (the variable left unset, the
 * step derives its default) when no budget sets the field.
 */
export function budgetVariable(budgets: CopyBudgets | undefined, field: BudgetField): string | undefined {
  if (budgets === undefined) return undefined;
  const items = budgets[field] === undefined ? [] : [String(budgets[field])];
  for (const account of Object.keys(budgets.sources ?? {}).sort()) {
    const n = budgets.sources![account][field];
    if (n !== undefined) items.push(`${account}=${n}`);
  }
  return items.length > 0 ? items.join(',') : undefined;
}

/** Both budget variables of the copy step, each left out (undefined) when nothing sets it. */
export function budgetEnvironment(budgets: CopyBudgets | undefined): Record<(typeof BUDGET_VARIABLES)[BudgetField], string | undefined> {
  return {
    COPIES_HELD_PER_SOURCE: budgetVariable(budgets, 'copiesHeld'),
    COPIES_IN_FLIGHT_PER_SOURCE: budgetVariable(budgets, 'copiesInFlight'),
  };
}

/**
 * An option group name as the copy step reads it in OPTION_GROUPS: 1 to 255 ASCII letters,
 * digits and hyphens (OptionGroupMapping::parse, services/copy-shared-snapshot).
 */
const OPTION_GROUP = /^[A-Za-z0-9-]{1,255}$/;
/** The prefix of RDS's default option groups (`default:mysql-8-0`). */
const DEFAULT_OPTION_GROUP = 'default:';

/**
 * Lambda allows 4 KB for all of a function's environment variables together (Lambda Developer
 * Guide, gettingstarted-limits); the mappings must leave room for the copy function's others.
 */
export const MAX_OPTION_GROUPS_CHARS = 2048;

/**
 * `target.copy.optionGroups`, checked as the copy step will read it (OPTION_GROUPS): each key
 * one of the target's extra regions, each mapping a non-default option group name to one in
 * that region. The object shape keeps each (region, source) once, as the step requires.
 */
function optionGroups(f: Fields, extraRegions: string[], kinds: Kind[]): OptionGroups {
  const regions = f.keys();
  if (regions.length === 0) throw new ConfigError(`${f.path}: expected at least one extra region (leave it out for none)`);
  // Only DB instance snapshots have option groups (Aurora's cluster snapshots and EBS snapshots have none).
  if (!kinds.includes('db-instance')) {
    throw new ConfigError(`${f.path}: option groups are those of DB instance snapshots (Aurora and EBS snapshots have none); target.kinds has no "db-instance"`);
  }
  const groups: OptionGroups = {};
  for (const region of regions) {
    if (!extraRegions.includes(region)) {
      throw new ConfigError(`${f.at(region)}: ${JSON.stringify(region)} is not one of target.extraRegions (${extraRegions.join(', ') || 'none'}); `
        + 'copies go to no other region, so the mapping would never apply (and the copy step refuses it: OPTION_GROUPS)');
    }
    const r = f.object(region);
    const sources = r.keys();
    if (sources.length === 0) throw new ConfigError(`${r.path}: maps no option group (leave the region out for none)`);
    groups[region] = {};
    for (const source of sources) {
      const destination = r.raw(source);
      if (source.startsWith(DEFAULT_OPTION_GROUP)) {
        throw new ConfigError(`${r.at(source)}: ${JSON.stringify(source)} is a default option group, which needs no mapping: the copy step `
          + `copies a DB snapshot of a default option group as it is (the copy gets the engine's default option group in ${region}); leave it out`);
      }
      if (!OPTION_GROUP.test(source)) {
        throw new ConfigError(`${r.at(source)}: expected the name of an option group the DB snapshots use (1 to 255 letters, digits and hyphens), `
          + `got ${JSON.stringify(source)}`);
      }
      if (typeof destination === 'string' && destination.startsWith(DEFAULT_OPTION_GROUP)) {
        throw new ConfigError(`${r.at(source)}: ${JSON.stringify(destination)} is a default option group, which has none of ${source}'s options `
          + `(a default option group needs no mapping); name an option group of ${region} with ${source}'s options`);
      }
      if (typeof destination !== 'string' || !OPTION_GROUP.test(destination)) {
        throw new ConfigError(`${r.at(source)}: expected the name of an option group in ${region} (1 to 255 letters, digits and hyphens), `
          + `got ${JSON.stringify(destination)}`);
      }
      groups[region][source] = destination;
    }
    r.done();
  }
  f.done();
  const chars = optionGroupsVariable(groups)!.length;
  if (chars > MAX_OPTION_GROUPS_CHARS) {
    throw new ConfigError(`${f.path}: ${chars} characters as OPTION_GROUPS, more than ${MAX_OPTION_GROUPS_CHARS} `
      + '(Lambda allows 4 KB for all of a function\'s environment variables); map fewer option groups or shorten their names');
  }
  return groups;
}

/**
 * OPTION_GROUPS as the copy step reads it: `region:source=destination`, comma-separated, by
 * region, then by source option group; undefined (the variable left unset: no mapping) when
 * nothing is mapped.
 */
export function optionGroupsVariable(groups: OptionGroups | undefined): string | undefined {
  const items = Object.keys(groups ?? {}).sort().flatMap((region) =>
    Object.keys(groups![region]).sort().map((source) => `${region}:${source}=${groups![region][source]}`));
  return items.length > 0 ? items.join(',') : undefined;
}

const TAG_SELECTOR = /^[^=]+(=.*)?$/;
/** A resource id in SELECT_IDENTIFIERS, which the steps split at commas and trim. */
const IDENTIFIER = /^[^,\s]+$/;

function selection(f: Fields, kinds: Kind[]): Selection {
  const s: Selection = {
    identifiers: f.strings('identifiers', IDENTIFIER, 'a resource id (no comma or blank: SELECT_IDENTIFIERS is a comma-separated list)'),
    regex: f.trimmed('regex', f.regex('regex')),
    tag: f.trimmed('tag', f.optionalString('tag', TAG_SELECTOR, '"key" or "key=value"')),
    instanceTag: f.trimmed('instanceTag', f.optionalString('instanceTag', TAG_SELECTOR, '"key" or "key=value"')),
  };
  f.done();
  // It selects EC2 instances, whose volumes only the ebs kind snapshots.
  if (s.instanceTag !== undefined && !kinds.includes('ebs')) {
    throw new ConfigError(`${f.at('instanceTag')}: selects the EBS volumes of tagged EC2 instances; the source's kinds have no "ebs"`);
  }
  // create-snapshot and share-snapshot select nothing when nothing is configured.
  if (s.identifiers.length === 0 && s.regex === undefined && s.tag === undefined && s.instanceTag === undefined) {
    throw new ConfigError(`${f.path}: selects nothing; set identifiers, regex (".*" for all), tag or (ebs) instanceTag`);
  }
  return s;
}

/** A non-empty list of distinct known kinds. */
function kindsOf(f: Fields, key: string): Kind[] {
  const kinds = f.strings(key, new RegExp(`^(${KINDS.join('|')})$`), KINDS.join(', ')) as Kind[];
  if (kinds.length === 0) throw new ConfigError(`${f.at(key)}: expected at least one kind`);
  return kinds;
}

function source(f: Fields): SourceConfig {
  const account = f.string('account', ACCOUNT, 'a 12-digit AWS account id');
  const region = f.string('region', REGION, 'an AWS region name');
  const kinds = kindsOf(f, 'kinds');
  const minIntervalMinutes = f.int('minIntervalMinutes', 1, 10080);
  const s: SourceConfig = {
    account,
    region,
    kinds,
    selection: selection(f.object('selection'), kinds),
    minIntervalMinutes,
    // RDS allows 100 manual snapshots per region by default; the quota can be raised
    // (RDS User Guide, CHAP_Limits).
    manualSnapshotQuota: f.int('manualSnapshotQuota', 1, 100000),
    recheckSeconds: f.int('recheckSeconds', 1, 900),
    // A source stack expires snapshots in its own region only.
    retention: retention(f, 'expire-snapshots', [region]),
    expire: expire(f, 'expire-snapshots'),
    reconcile: sourceReconcile(f, minIntervalMinutes),
  };
  if (f.has('dataChecks')) {
    if (!kinds.includes('db-instance') && !kinds.includes('db-cluster')) {
      throw new ConfigError(`${f.at('dataChecks')}: source data checks measure databases; kinds has neither "db-instance" nor "db-cluster"`);
    }
    s.dataChecks = sourceDataChecks(f.object('dataChecks'));
  }
  f.done();
  return s;
}

const SECRET_ARN = /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+$/;

/** `sources[].dataChecks`: validated as share-snapshot will read it (SOURCE_DATA_CHECKS). */
function sourceDataChecks(f: Fields): SourceDataChecksConfig {
  const timeoutSeconds = f.optionalInt('timeoutSeconds', 1, 300) ?? Number(stepDefault('share-snapshot', 'DATA_CHECK_TIMEOUT_SECONDS'));
  const list = f.raw('databases');
  if (!Array.isArray(list) || list.length === 0) {
    throw new ConfigError(`${f.at('databases')}: expected a non-empty list of databases to measure (leave dataChecks out to turn them off), got ${JSON.stringify(list)}`);
  }
  const databases = list.map((v, i) => {
    const d = Fields.of(v, `${f.at('databases')}[${i}]`);
    const resources = d.regex('resources');
    if (resources === undefined) throw new ConfigError(`${d.at('resources')}: expected a regex on the resource id, got undefined`);
    const db: SourceDataCheckDatabase = { resources };
    const database = d.optionalString('database', /\S/, 'a database name');
    if (database !== undefined) db.database = database;
    const secret = d.optionalString('secret', SECRET_ARN, 'a Secrets Manager secret ARN');
    if (secret !== undefined) db.secret = secret;
    d.done();
    return db;
  });
  const c: SourceDataChecksConfig = {
    databases,
    timeoutSeconds,
    vpcId: f.string('vpcId', /^vpc-([0-9a-f]{8}|[0-9a-f]{17})$/, 'a VPC id'),
    subnetIds: f.strings('subnetIds', /^subnet-([0-9a-f]{8}|[0-9a-f]{17})$/, 'a subnet id'),
    databaseSecurityGroupId: f.string('databaseSecurityGroupId', /^sg-([0-9a-f]{8}|[0-9a-f]{17})$/, 'a security group id'),
  };
  if (c.subnetIds.length === 0) throw new ConfigError(`${f.at('subnetIds')}: expected at least one subnet`);
  f.done();
  return c;
}

/** SOURCE_DATA_CHECKS: the databases as share-snapshot reads them (the network fields are the stack's). */
export function sourceDataChecksJson(c: SourceDataChecksConfig): string {
  return JSON.stringify({ databases: c.databases.map((d) => ({ ...d })) });
}

/** The `reconcile` object of a source or of the target, or an empty one when it is absent (every field optional). */
function reconcileFields(f: Fields): Fields {
  return f.has('reconcile') ? f.object('reconcile') : Fields.of({}, f.at('reconcile'));
}

/** Bounds of GRACE_MINUTES: a minute to a week. */
const GRACE_MINUTES = [1, 10080] as const;

/** A source's `reconcile` (reconcile-snapshots); each field optional, its default the step's own. */
function sourceReconcile(f: Fields, minIntervalMinutes: number): SourceReconcileConfig {
  const r = reconcileFields(f);
  const step = 'reconcile-snapshots';
  const c: SourceReconcileConfig = {
    graceMinutes: r.optionalInt('graceMinutes', ...GRACE_MINUTES) ?? Number(stepDefault(step, 'GRACE_MINUTES')),
    // As minIntervalMinutes: up to a week.
    scheduleMinutes: r.optionalInt('scheduleMinutes', 1, 10080) ?? Number(stepDefault(step, 'SCHEDULE_MINUTES')),
  };
  r.done();
  // create-snapshot skips a resource with a snapshot younger than minIntervalMinutes: a schedule
  // shorter than that would find every resource overdue between two of its snapshots.
  if (c.scheduleMinutes < minIntervalMinutes) {
    throw new ConfigError(`${r.at('scheduleMinutes')}: ${c.scheduleMinutes}${r.has('scheduleMinutes') ? '' : ' (the default)'} is less than `
      + `minIntervalMinutes ${minIntervalMinutes}: create-snapshot snapshots a resource at most every ${minIntervalMinutes} minutes, `
      + `so reconcile-snapshots would report it overdue (no snapshot younger than twice the schedule) between two snapshots; `
      + `set it to at least ${minIntervalMinutes}`);
  }
  return c;
}

/** The target's `reconcile` (reconcile-copies); each field optional, its default the step's own. The RPO is checked against the sources in parseConfig. */
function targetReconcile(f: Fields): TargetReconcileConfig {
  const r = reconcileFields(f);
  const step = 'reconcile-copies';
  const c: TargetReconcileConfig = {
    graceMinutes: r.optionalInt('graceMinutes', ...GRACE_MINUTES) ?? Number(stepDefault(step, 'GRACE_MINUTES')),
    // 15 minutes to a year.
    rpoMinutes: r.optionalInt('rpoMinutes', 15, 525600) ?? Number(stepDefault(step, 'RPO_MINUTES')),
  };
  r.done();
  return c;
}

function target(f: Fields): TargetConfig {
  const account = f.string('account', ACCOUNT, 'a 12-digit AWS account id');
  const region = f.string('region', REGION, 'an AWS region name');
  const extraRegions = f.strings('extraRegions', REGION, 'an AWS region name');
  if (extraRegions.includes(region)) throw new ConfigError(`${f.at('extraRegions')}: must not contain the home region ${region}`);
  // Optional: the backup account copies and restores every kind unless told otherwise.
  const kinds = f.has('kinds') ? kindsOf(f, 'kinds') : [...KINDS];
  const breakGlassRoleArn = f.optionalString('breakGlassRoleArn', new RegExp(`^arn:aws[a-z-]*:iam::${account}:role/[\\w+=,.@/-]+$`),
    `the ARN of an IAM role of the backup account ${account}`);

  const c = f.object('copy');
  c.renamed('reservedConcurrency', 'maxConcurrency', "the SQS event source's maximum concurrency, 2 to 1000, replaces reserved concurrency");
  const copy: CopyConfig = {
    identifierRegex: c.trimmed('identifierRegex', c.regex('identifierRegex')),
    descriptionRegex: c.trimmed('descriptionRegex', c.regex('descriptionRegex')),
    copySlots: c.has('copySlots') ? copySlots(c.object('copySlots')) : undefined,
    budgets: c.has('budgets') ? copyBudgets(c.object('budgets')) : undefined,
    optionGroups: c.has('optionGroups') ? optionGroups(c.object('optionGroups'), extraRegions, kinds) : undefined,
    recheckSeconds: c.int('recheckSeconds', 1, 900),
    // The SQS event source mapping's maximum concurrency (ScalingConfig.MaximumConcurrency),
    // not reserved concurrency: with reserved concurrency Lambda's throttled polls still count
    // as receives, and SQS dead-letters messages no invocation ever saw. 2 is the mapping's
    // minimum, 1000 its maximum. A small number suffices: RDS allows 20 copies in progress
    // per destination region (RDS User Guide, USER_CopySnapshot, Limitations), so at batch
    // size 10, 2 invocations already keep 20 copy requests in flight; more only buys quota errors.
    maxConcurrency: c.int('maxConcurrency', 2, 1000),
  };
  c.done();

  const r = f.object('restoreTest');
  const restoreTest: RestoreTestConfig = {
    enabled: r.bool('enabled'),
    everyNth: r.int('everyNth', 1, 10000),
    // Unset: the smallest class each engine offers (Aurora has no micro class).
    instanceClass: r.optionalString('instanceClass', /^db\.[a-z0-9-]+\.[a-z0-9]+$/, 'a DB instance class like db.t4g.micro'),
    timeoutMinutes: r.int('timeoutMinutes', 10, 1440),
    recheckSeconds: r.int('recheckSeconds', 1, 900),
    vpcCidr: r.string('vpcCidr', /^(\d{1,3}\.){3}\d{1,3}\/(1[6-9]|2[0-7])$/, 'an IPv4 CIDR from /16 to /27'),
    // A zone of the home region (test volumes are restored there): eu-west-1a, or a Local Zone's us-west-2-lax-1a.
    availabilityZone: r.optionalString('availabilityZone', new RegExp(`^${region}(-[a-z]+-\\d+)?[a-z]$`), `an availability zone of ${region}, like ${region}a`),
    lockMode: r.optionalString('lockMode', new RegExp(`^(${LOCK_MODES.join('|')})$`), LOCK_MODES.map((m) => `"${m}"`).join(' or ')) as LockMode | undefined,
    // EBS Snapshot Lock durations: 1 day to 36,500 days (EC2 API Reference, LockSnapshot: LockDuration).
    lockDays: r.optionalInt('lockDays', 1, 36500),
    lockComplianceOptIn: r.optionalBool('lockComplianceOptIn'),
    dataChecks: r.has('dataChecks') ? dataChecks(r.object('dataChecks')) : undefined,
  };
  r.done();
  locks(r, restoreTest, kinds);
  if (restoreTest.dataChecks !== undefined) {
    // They run in restore tests of databases: refused where none would run, as their endpoints would be billed all the same.
    if (!restoreTest.enabled) {
      throw new ConfigError(`${r.at('dataChecks')}: data checks run in restore tests; with restoreTest.enabled false none would run `
        + '(and their VPC endpoints would still be billed); leave dataChecks out');
    }
    if (!kinds.includes('db-instance') && !kinds.includes('db-cluster')) {
      throw new ConfigError(`${r.at('dataChecks')}: data checks query restored databases; target.kinds has neither "db-instance" nor "db-cluster"`);
    }
  }
  if (restoreTest.availabilityZone !== undefined && !kinds.includes('ebs')) {
    throw new ConfigError(`${r.at('availabilityZone')}: the zone of EBS test volumes; target.kinds has no "ebs"`);
  }
  // Copies are in the home region and the extra regions: a rule for any other would never apply.
  const retentionRules = retention(f, 'expire-copies', [region, ...extraRegions]);
  const expireConfig = expire(f, 'expire-copies');
  const reconcile = targetReconcile(f);
  f.done();
  return { account, region, extraRegions, kinds, breakGlassRoleArn, copy, restoreTest, retention: retentionRules, expire: expireConfig, reconcile };
}

/**
 * Lambda allows 4 KB for all of a function's environment variables together (Lambda Developer
 * Guide, gettingstarted-limits). The restore function's others, names included, take about
 * 700 bytes with ARNs and queue URLs at their longest (QUEUE_URL, DLQ_URL, TARGET_KMS_KEY_ARN
 * are the long ones): DATA_CHECKS gets what leaves a kilobyte for them.
 */
export const MAX_DATA_CHECKS_BYTES = 3072;

/** A table as `schema.table`: both non-empty, one dot (the names as stored; the step looks them up as they are). */
const TABLE = /^[^.]+\.[^.]+$/;
/** Ten years: a bound, not a recommendation. */
const MAX_AGE_MINUTES = 5256000;

/** `restoreTest.dataChecks`: validated as the restore step will read it (DATA_CHECKS). */
function dataChecks(f: Fields): DataChecksConfig {
  // The step's bounds (its init refuses others); the stack also keeps it under the function's timeout.
  const timeoutSeconds = f.optionalInt('timeoutSeconds', 1, 300) ?? Number(stepDefault('restore', 'DATA_CHECK_TIMEOUT_SECONDS'));
  const zones = f.optionalInt('endpointZones', 1, 2) ?? 2;
  const list = f.raw('databases');
  if (!Array.isArray(list) || list.length === 0) {
    throw new ConfigError(`${f.at('databases')}: expected a non-empty list of databases to check (leave dataChecks out to turn data checks off), got ${JSON.stringify(list)}`);
  }
  const databases = list.map((v, i) => dataCheckDatabase(Fields.of(v, `${f.at('databases')}[${i}]`)));
  f.done();
  const c: DataChecksConfig = { timeoutSeconds, databases, endpointZones: zones as 1 | 2 };
  const bytes = Buffer.byteLength(dataChecksJson(c), 'utf8');
  if (bytes > MAX_DATA_CHECKS_BYTES) {
    throw new ConfigError(`${f.path}: ${bytes} bytes as DATA_CHECKS, more than ${MAX_DATA_CHECKS_BYTES} (Lambda allows 4 KB for all of a `
      + 'function\'s environment variables, and the restore function\'s others need the rest); check fewer databases, or shorten the SQL');
  }
  return c;
}

function dataCheckDatabase(f: Fields): DataCheckDatabase {
  const resources = f.regex('resources');
  if (resources === undefined) throw new ConfigError(`${f.at('resources')}: expected a regex on the resource id (".*" for every database), got undefined`);
  const d: DataCheckDatabase = { resources, probes: [] };
  const database = f.optionalString('database', /\S/, 'a database name');
  if (database !== undefined) d.database = database;
  if (f.has('tables')) {
    d.tables = f.strings('tables', TABLE, 'a table as schema.table');
    if (d.tables.length === 0) throw new ConfigError(`${f.at('tables')}: expected at least one table (leave it out for none)`);
  }
  const probes = f.raw('probes');
  if (probes !== undefined && !Array.isArray(probes)) throw new ConfigError(`${f.at('probes')}: expected a list of probes, got ${JSON.stringify(probes)}`);
  d.probes = (probes ?? []).map((p, i) => dataCheckProbe(Fields.of(p, `${f.at('probes')}[${i}]`)));
  if (f.has('compareWithSource')) {
    const compare = f.raw('compareWithSource');
    if (compare === false) {
      d.compareWithSource = false;
    } else {
      const c = f.object('compareWithSource');
      const tolerance = c.raw('rowTolerancePercent');
      if (typeof tolerance !== 'number' || !(tolerance >= 0 && tolerance <= 100)) {
        throw new ConfigError(`${c.at('rowTolerancePercent')}: expected a number from 0 to 100, got ${JSON.stringify(tolerance)}`);
      }
      c.done();
      d.compareWithSource = { rowTolerancePercent: tolerance };
    }
  }
  if (f.has('compareWithPrevious')) {
    const compare = f.raw('compareWithPrevious');
    if (compare === false) {
      d.compareWithPrevious = false;
    } else {
      const c = f.object('compareWithPrevious');
      const drop = c.raw('rowsDropPercent');
      if (typeof drop !== 'number' || !(drop >= 0 && drop <= 100)) {
        throw new ConfigError(`${c.at('rowsDropPercent')}: expected a number from 0 to 100, got ${JSON.stringify(drop)}`);
      }
      c.done();
      d.compareWithPrevious = { rowsDropPercent: drop };
    }
  }
  f.done();
  const names = d.probes.map((p) => p.name);
  const twice = names.findIndex((n, i) => names.indexOf(n) !== i);
  if (twice !== -1) {
    throw new ConfigError(`${f.at('probes')}[${twice}].name: ${JSON.stringify(names[twice])} is the name of probes[${names.indexOf(names[twice])}] too; `
      + 'a probe\'s name is unique within its database (reports name the probe by it)');
  }
  if (d.probes.length === 0 && d.tables === undefined && d.compareWithSource === undefined && d.compareWithPrevious === undefined) {
    throw new ConfigError(`${f.path}: checks nothing; give it tables, probes, compareWithSource, compareWithPrevious or more than one`);
  }
  return d;
}

function dataCheckProbe(f: Fields): DataCheckProbe {
  const p: DataCheckProbe = {
    name: f.string('name', /\S/, 'a non-empty name'),
    sql: f.string('sql', /\S/, 'a non-empty SQL query'),
  };
  const given = PROBE_EXPECTATIONS.filter((k) => f.has(k));
  if (given.length !== 1) {
    throw new ConfigError(`${given.length === 0 ? f.path : f.at(given[1])}: expected exactly one of ${PROBE_EXPECTATIONS.join(', ')}, `
      + `got ${given.length === 0 ? 'none' : given.join(' and ')}`);
  }
  for (const k of ['min', 'max'] as const) {
    const v = f.raw(k);
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new ConfigError(`${f.at(k)}: expected a number, got ${JSON.stringify(v)}`);
    p[k] = v;
  }
  const age = f.optionalInt('maxAgeMinutes', 1, MAX_AGE_MINUTES);
  if (age !== undefined) p.maxAgeMinutes = age;
  f.done();
  return p;
}

/**
 * DATA_CHECKS: the databases as the restore step reads them, snake_case, absent fields left
 * out (`$comment` and the infra-only fields are not passed on). timeoutSeconds is
 * DATA_CHECK_TIMEOUT_SECONDS, not part of it.
 */
export function dataChecksJson(c: DataChecksConfig): string {
  return JSON.stringify({
    databases: c.databases.map((d) => ({
      resources: d.resources,
      ...(d.database === undefined ? {} : { database: d.database }),
      ...(d.tables === undefined ? {} : { tables: d.tables }),
      probes: d.probes.map((p) => ({
        name: p.name,
        sql: p.sql,
        ...(p.min === undefined ? {} : { min: p.min }),
        ...(p.max === undefined ? {} : { max: p.max }),
        ...(p.maxAgeMinutes === undefined ? {} : { max_age_minutes: p.maxAgeMinutes }),
      })),
      ...(d.compareWithSource === undefined ? {} : {
        compare_with_source: d.compareWithSource === false ? false : { row_tolerance_percent: d.compareWithSource.rowTolerancePercent },
      }),
      ...(d.compareWithPrevious === undefined ? {} : {
        compare_with_previous: d.compareWithPrevious === false ? false : { rows_drop_percent: d.compareWithPrevious.rowsDropPercent },
      }),
    })),
  });
}

/** A step's default for a variable, from shared/environment.json: the config's defaults are the step's own. */
function stepDefault(step: string, name: string): string {
  const v = declaredFor(environmentContract(), step)?.find((x) => x.name === name)?.default;
  if (v === undefined || v === null) throw new Error(`shared/environment.json declares no default for ${step}'s ${name}`);
  return v;
}

/**
 * Lambda allows 4 KB for all of a function's environment variables together (Lambda Developer
 * Guide, gettingstarted-limits); the rules must leave room for the others.
 */
export const MAX_RETENTION_CHARS = 2048;

/**
 * `retention` of a source or of the target (absent: the step's default RETENTION), checked as
 * the expire step will read it: a list of rules, each with only known keys, a regex that
 * compiles, regions among `regions` (where the stack expires anything), at least one criterion.
 */
function retention(f: Fields, step: string, regions: string[]): RetentionRule[] {
  const key = 'retention';
  if (!f.has(key)) {
    return retentionRules(JSON.parse(stepDefault(step, 'RETENTION')), `${step}'s RETENTION default in shared/environment.json`, regions);
  }
  const rules = retentionRules(f.raw(key), f.at(key), regions);
  const chars = JSON.stringify(rules).length;
  if (chars > MAX_RETENTION_CHARS) {
    throw new ConfigError(`${f.at(key)}: ${chars} characters as RETENTION, more than ${MAX_RETENTION_CHARS} `
      + '(Lambda allows 4 KB for all of a function\'s environment variables); merge rules or shorten the regexes');
  }
  return rules;
}

function retentionRules(value: unknown, path: string, regions: string[]): RetentionRule[] {
  if (!Array.isArray(value)) throw new ConfigError(`${path}: expected a list of retention rules, got ${JSON.stringify(value)}`);
  const rules = value.map((v, i) => {
    const r = Fields.of(v, `${path}[${i}]`);
    const rule: RetentionRule = {};
    const resources = r.regex('resources');
    if (resources !== undefined) rule.resources = resources;
    if (r.has('regions')) {
      const names = r.strings('regions', REGION, 'an AWS region name');
      if (names.length === 0) throw new ConfigError(`${r.at('regions')}: expected at least one region (leave it out for every region)`);
      names.forEach((name, j) => {
        if (!regions.includes(name)) {
          throw new ConfigError(`${r.at('regions')}[${j}]: ${name} is not a region this stack expires snapshots in (${regions.join(', ')}); the rule would never apply`);
        }
      });
      rule.regions = names;
    }
    for (const c of RETENTION_CRITERIA) {
      // A snapshot of age 0 days is younger than nothing: max_age_days starts at 1.
      const n = r.optionalInt(c, c === 'max_age_days' ? 1 : 0, c === 'max_age_days' ? 36500 : 100000);
      if (n !== undefined) rule[c] = n;
    }
    r.done();
    if (!RETENTION_CRITERIA.some((c) => rule[c] !== undefined)) {
      throw new ConfigError(`${r.path}: no criterion; a rule needs at least one of ${RETENTION_CRITERIA.join(', ')}`);
    }
    return rule;
  });
  // The first matching rule applies: after one that matches everything, no rule ever does.
  const all = rules.findIndex((r) => r.resources === undefined && r.regions === undefined);
  if (all !== -1 && all < rules.length - 1) {
    throw new ConfigError(`${path}[${all + 1}]: never applies: ${path}[${all}] has neither resources nor regions, so it matches every snapshot first; put it last`);
  }
  return rules;
}

/** `expire` of a source or of the target; each field optional, its default the step's own. */
function expire(f: Fields, step: string): ExpireConfig {
  const e = f.has('expire') ? f.object('expire') : Fields.of({}, f.at('expire'));
  const int = (name: string) => Number(stepDefault(step, name));
  const c: ExpireConfig = {
    dryRun: e.optionalBool('dryRun') ?? stepDefault(step, 'EXPIRE_DRY_RUN') === 'true',
    allowDeleteAll: e.optionalBool('allowDeleteAll') ?? stepDefault(step, 'ALLOW_DELETE_ALL') === 'true',
    maxDeletesPerRun: e.optionalInt('maxDeletesPerRun', 1, 1000) ?? int('MAX_DELETES_PER_RUN'),
    quotaWarningPercent: e.optionalInt('quotaWarningPercent', 1, 100) ?? int('QUOTA_WARNING_PERCENT'),
  };
  e.done();
  return c;
}

/**
 * EBS Snapshot Lock of verified copies. A compliance lock is for good once its cool-off period
 * (up to 72 h) has passed: nobody, the root user included, can unlock the snapshot or shorten
 * the lock, and the copy is kept, and billed, until the lock expires (EBS User Guide,
 * snapshot-lock-concepts). So compliance needs an explicit opt-in, and the lock settings are
 * refused where they would mean nothing, rather than leave someone believing copies are locked.
 */
function locks(r: Fields, t: RestoreTestConfig, kinds: Kind[]): void {
  if (t.lockMode === undefined) {
    for (const key of ['lockDays', 'lockComplianceOptIn'] as const) {
      if (t[key] !== undefined) throw new ConfigError(`${r.at(key)}: only with lockMode (unset: copies are not locked)`);
    }
    return;
  }
  if (!kinds.includes('ebs')) {
    throw new ConfigError(`${r.at('lockMode')}: EBS Snapshot Lock locks EBS copies only (RDS and Aurora snapshots have no lock); target.kinds has no "ebs"`);
  }
  if (!t.enabled) {
    throw new ConfigError(`${r.at('lockMode')}: a copy is locked once its restore test passes; with restoreTest.enabled false no copy would ever be locked`);
  }
  if (t.lockMode === 'compliance' && t.lockComplianceOptIn !== true) {
    throw new ConfigError(`${r.at('lockMode')}: "compliance" needs lockComplianceOptIn: true. Once its cool-off period has passed, `
      + 'nobody, the account\'s root user included, can unlock a snapshot locked in compliance mode or shorten its lock: every verified copy '
      + `is kept, and billed, for the whole ${t.lockDays === undefined ? 'default duration (LOCK_DAYS)' : `${t.lockDays} days`}. Use "governance" to try locking first.`);
  }
  if (t.lockMode !== 'compliance' && t.lockComplianceOptIn !== undefined) {
    throw new ConfigError(`${r.at('lockComplianceOptIn')}: only with lockMode "compliance"`);
  }
}

export function parseConfig(json: unknown): Config {
  const f = Fields.of(json, '');
  const logRetentionDays = f.int('logRetentionDays', 1, 3653);
  if (!RETENTION_DAYS.includes(logRetentionDays)) {
    throw new ConfigError(`logRetentionDays: expected one of ${RETENTION_DAYS.join(', ')}, got ${logRetentionDays}`);
  }
  const config: Config = {
    logRetentionDays,
    lambdaMemoryMb: f.int('lambdaMemoryMb', 128, 10240),
    alarmEmail: f.optionalString('alarmEmail', /^[^@\s]+@[^@\s]+\.[^@\s]+$/, 'an email address'),
    target: target(f.object('target')),
    sources: [],
  };
  const sources = f.raw('sources');
  if (!Array.isArray(sources) || sources.length === 0) throw new ConfigError('sources: expected a non-empty list');
  config.sources = sources.map((s, i) => source(Fields.of(s, `sources[${i}]`)));
  f.done();

  // Each source's kinds must be copied by the backup account, or its snapshots would be shared
  // to a copy step without the permissions to copy them (straight to the DLQ).
  config.sources.forEach((s, i) => {
    const missing = s.kinds.filter((k) => !config.target.kinds.includes(k));
    if (missing.length > 0) {
      throw new ConfigError(`target.kinds: lacks ${missing.map((k) => `"${k}"`).join(', ')}, which sources[${i}].kinds has (the backup account could not copy those snapshots)`);
    }
  });

  // The recovery point is a resource's newest verified copy (restore tests off: its newest copy):
  // a new one comes every scheduleMinutes, or, with restore tests sampled, with one copy in
  // everyNth. An RPO no longer than that is missed between two of them by design, and its alarm
  // would never rest.
  const { restoreTest, reconcile } = config.target;
  const everyNth = restoreTest.enabled ? restoreTest.everyNth : 1;
  config.sources.forEach((s, i) => {
    const period = s.reconcile.scheduleMinutes * everyNth;
    if (reconcile.rpoMinutes <= period) {
      throw new ConfigError(`target.reconcile.rpoMinutes: ${reconcile.rpoMinutes} is not more than ${period} minutes, the age the `
        + `recovery point of sources[${i}] reaches between two backups by design (a snapshot every ${s.reconcile.scheduleMinutes} `
        + `minutes, sources[${i}].reconcile.scheduleMinutes${everyNth > 1 ? `, and only one copy in ${everyNth} restore-tested, `
          + 'target.restoreTest.everyNth' : ''}): the RPO alarm would keep firing; raise the RPO`);
    }
  });

  const accounts = config.sources.map((s) => s.account);
  accounts.forEach((a, i) => {
    if (a === config.target.account) throw new ConfigError(`sources[${i}].account: must differ from target.account (the backup account is isolated)`);
    if (accounts.indexOf(a) !== i) throw new ConfigError(`sources[${i}].account: ${a} is listed twice`);
  });

  // A budget of an account the copy step does not copy from (SOURCE_ACCOUNTS is sources[].account)
  // would never apply, and the step refuses it at init.
  for (const a of Object.keys(config.target.copy.budgets?.sources ?? {})) {
    if (!accounts.includes(a)) {
      throw new ConfigError(`target.copy.budgets.sources.${a}: not a source account (sources[].account: ${accounts.join(', ')}); `
        + 'the copy step copies only from those (SOURCE_ACCOUNTS), so the budget would never apply');
    }
  }
  return config;
}

export function loadConfig(file: string): Config {
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ConfigError(`${file}: ${(e as Error).message}`);
  }
  try {
    return parseConfig(json);
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigError(`${file}: ${e.message}`);
    throw e;
  }
}
