// The deployment configuration: one JSON file (config/example.json shows every field).
// Validation happens here, before any construct exists, and every error names the field
// by its path so a typo never reaches CloudFormation.
import * as fs from 'node:fs';

export const KINDS = ['db-instance', 'db-cluster', 'ebs'] as const;
export type Kind = (typeof KINDS)[number];

export interface Selection {
  identifiers: string[];
  regex?: string;
  tag?: string;
}

export interface SourceConfig {
  account: string;
  region: string;
  kinds: Kind[];
  selection: Selection;
  minIntervalMinutes: number;
  manualSnapshotQuota: number;
  recheckSeconds: number;
}

export interface CopyConfig {
  identifierRegex?: string;
  descriptionRegex?: string;
  recheckSeconds: number;
  maxConcurrency: number;
}

export interface RestoreTestConfig {
  enabled: boolean;
  everyNth: number;
  instanceClass?: string;
  timeoutMinutes: number;
  recheckSeconds: number;
  vpcCidr: string;
}

export interface TargetConfig {
  account: string;
  region: string;
  extraRegions: string[];
  copy: CopyConfig;
  restoreTest: RestoreTestConfig;
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
    }
    return v;
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

function selection(f: Fields): Selection {
  const s: Selection = {
    identifiers: f.strings('identifiers'),
    regex: f.regex('regex'),
    tag: f.optionalString('tag', /^[^=]+(=.*)?$/, '"key" or "key=value"'),
  };
  f.done();
  // create-snapshot and share-snapshot select nothing when nothing is configured.
  if (s.identifiers.length === 0 && s.regex === undefined && s.tag === undefined) {
    throw new ConfigError(`${f.path}: selects nothing; set identifiers, regex (".*" for all) or tag`);
  }
  return s;
}

function source(f: Fields): SourceConfig {
  const s: SourceConfig = {
    account: f.string('account', ACCOUNT, 'a 12-digit AWS account id'),
    region: f.string('region', REGION, 'an AWS region name'),
    kinds: f.strings('kinds', new RegExp(`^(${KINDS.join('|')})$`), KINDS.join(', ')) as Kind[],
    selection: selection(f.object('selection')),
    minIntervalMinutes: f.int('minIntervalMinutes', 1, 10080),
    // RDS allows 100 manual snapshots per region by default; the quota can be raised
    // (RDS User Guide, CHAP_Limits).
    manualSnapshotQuota: f.int('manualSnapshotQuota', 1, 100000),
    recheckSeconds: f.int('recheckSeconds', 1, 900),
  };
  if (s.kinds.length === 0) throw new ConfigError(`${f.at('kinds')}: expected at least one kind`);
  // The functions know EBS, but the stacks grant no EC2 permissions and route no EBS events yet.
  if (s.kinds.includes('ebs')) throw new ConfigError(`${f.at('kinds')}: "ebs" cannot be deployed yet (no EC2 permissions or EBS rules in the stacks)`);
  f.done();
  return s;
}

function target(f: Fields): TargetConfig {
  const account = f.string('account', ACCOUNT, 'a 12-digit AWS account id');
  const region = f.string('region', REGION, 'an AWS region name');
  const extraRegions = f.strings('extraRegions', REGION, 'an AWS region name');
  if (extraRegions.includes(region)) throw new ConfigError(`${f.at('extraRegions')}: must not contain the home region ${region}`);

  const c = f.object('copy');
  c.renamed('reservedConcurrency', 'maxConcurrency', "the SQS event source's maximum concurrency, 2 to 1000, replaces reserved concurrency");
  const copy: CopyConfig = {
    identifierRegex: c.regex('identifierRegex'),
    descriptionRegex: c.regex('descriptionRegex'),
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
  };
  r.done();
  f.done();
  return { account, region, extraRegions, copy, restoreTest };
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

  const accounts = config.sources.map((s) => s.account);
  accounts.forEach((a, i) => {
    if (a === config.target.account) throw new ConfigError(`sources[${i}].account: must differ from target.account (the backup account is isolated)`);
    if (accounts.indexOf(a) !== i) throw new ConfigError(`sources[${i}].account: ${a} is listed twice`);
  });
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
