// The routing table shared with the local host (../shared/routing.json). The stacks build
// every queue, event source mapping and rule from it, so the cloud and the emulator
// cannot disagree about how events reach a step.
import * as fs from 'node:fs';
import * as path from 'node:path';

/** An EventBridge pattern exactly as EventBridge takes it (kebab-case keys). */
export type EventPattern = Record<string, unknown>;

export interface RoutingRule {
  name: string;
  bus: 'default' | 'pipeline';
  pattern?: EventPattern;
  schedule?: string;
  /** Deployed only in a stack handling one of these resource kinds; absent: always. */
  kinds?: string[];
}

export interface RoutingFunction {
  name: string;
  account: 'source' | 'target';
  queue: string;
  timeout_seconds: number;
  batch_size: number;
  rules: RoutingRule[];
}

export interface Routing {
  source: string;
  pipeline_bus: string;
  /** Each stack's queue of the events EventBridge could not deliver. */
  delivery_dlq: string;
  /**
   * The backup account's DynamoDB table of the copies in progress and waiting for a slot (home
   * region; partition key pk, sort key sk, both strings): the target stack creates it, and
   * permissions.json's scope 'dynamodb:copy-ledger' names it.
   */
  copy_ledger: string;
  max_receive_count: number;
  dlq_retention_days: number;
  visibility_timeout_factor: number;
  /** CloudWatch metrics the steps write (embedded metric format), each with the dimension Step = the function's name. */
  metrics: {
    namespace: string;
    /** A snapshot refused for a full manual snapshot quota (the steps that create or copy). */
    quota_full: string;
    /** A manual snapshot quota at least QUOTA_WARNING_PERCENT full (the steps that declare it: the expire steps). */
    quota_warning: string;
    /** A selected resource (source) or a source resource (backup account) whose backup is overdue (the reconcile steps; a count). */
    backup_overdue: string;
    /** The age of a resource's recovery point, in seconds (reconcile-copies; dimensions Step and Resource). */
    recovery_point: string;
    /** The largest recovery point age of one reconcile-copies run, in seconds (dimension Step only): the RPO alarm's metric. */
    recovery_point_max: string;
    /** How long a restore test took, in seconds (dimensions Step and Resource). */
    restore_seconds: string;
    /** The data recovery point a restore test's data checks measured: the snapshot's time minus the newest data found, in seconds (dimensions Step and Resource). */
    data_recovery_point: string;
    /** A snapshot share-snapshot shared without its source database's figures, which SOURCE_DATA_CHECKS asked for (a count; dimension Step). */
    source_data_unmeasured: string;
    resource_failed: string;
    budget_exceeded: string;
    /** A copy the restore step verified whose data fell against the previous good copy of its resource (a count; dimension Step). */
    restore_suspicious: string;
  };
  functions: RoutingFunction[];
  /** One rule per backup account on a source's pipeline bus: its "Snapshot Shared" events, to that account's bus. */
  cross_account: AccountRule;
  /** One rule per allowlisted source on the backup account's pipeline bus: its "Snapshot Copied" events, back to that source's bus. */
  copied_back: AccountRule;
}

/** A rule made once per account of the other side; `{account}` in its name and pattern is that account's id. */
export interface AccountRule {
  rule: string;
  bus: 'pipeline';
  pattern: EventPattern;
}

/** The keys of routing.json's `metrics` (its `$comment` aside). */
export const METRIC_KEYS = ['namespace', 'quota_full', 'quota_warning', 'backup_overdue', 'recovery_point', 'recovery_point_max', 'restore_seconds', 'data_recovery_point', 'source_data_unmeasured', 'resource_failed', 'budget_exceeded', 'restore_suspicious'] as const;

/** The per-account rule sections of routing.json. */
export const ACCOUNT_RULES = ['cross_account', 'copied_back'] as const;

/** infra/ itself; compiled files live in infra/dist/<dir>/, sources in infra/<dir>/. */
export const INFRA_DIR = path.resolve(__dirname, '..', path.basename(path.resolve(__dirname, '..')) === 'dist' ? '..' : '.');
export const ROUTING_FILE = path.resolve(INFRA_DIR, '..', 'shared', 'routing.json');

export function loadRouting(file: string = ROUTING_FILE): Routing {
  const routing = JSON.parse(fs.readFileSync(file, 'utf8')) as Routing;
  // A malformed table would otherwise surface as an obscure CloudFormation error at deploy time.
  const missing = METRIC_KEYS.filter((k) => typeof routing.metrics?.[k] !== 'string' || routing.metrics[k].trim() === '');
  if (missing.length > 0) {
    throw new Error(`${file}: metrics must name the namespace and every metric the stacks alarm on (${METRIC_KEYS.join(', ')}); missing ${missing.join(', ')}`);
  }
  // DynamoDB's table name rules (3 to 255 of a-z, A-Z, 0-9, '_', '-', '.'): caught here, not at deploy.
  if (typeof routing.copy_ledger !== 'string' || !/^[A-Za-z0-9_.-]{3,255}$/.test(routing.copy_ledger)) {
    throw new Error(`${file}: copy_ledger must be a DynamoDB table name (3 to 255 of A-Z, a-z, 0-9, _, -, .), not ${JSON.stringify(routing.copy_ledger)}`);
  }
  for (const key of ACCOUNT_RULES) {
    const r = routing[key];
    if (typeof r?.rule !== 'string' || !r.rule.includes('{account}') || r.bus !== 'pipeline'
      || r.pattern === null || typeof r.pattern !== 'object' || !JSON.stringify(r.pattern).includes('{account}')) {
      throw new Error(`${file}: ${key} must have a rule name and a pattern, both with {account}, on the pipeline bus`);
    }
  }
  for (const fn of routing.functions) {
    for (const rule of fn.rules) {
      if ((rule.pattern === undefined) === (rule.schedule === undefined)) {
        throw new Error(`${file}: rule ${rule.name} must have exactly one of pattern and schedule`);
      }
      if (rule.bus !== 'default' && rule.bus !== 'pipeline') {
        throw new Error(`${file}: rule ${rule.name} has unknown bus ${JSON.stringify(rule.bus)}`);
      }
    }
  }
  return routing;
}

/**
 * The Lambda function (and log group) name of a step: `snapferry-<name>`. Every step runs the
 * same binary (LAMBDA_PACKAGE in step.ts); its Handler, the step's name, picks the step.
 */
export function functionName(fn: RoutingFunction): string {
  return `snapferry-${fn.name}`;
}

export function dlqName(fn: RoutingFunction): string {
  return `${fn.queue}-dlq`;
}

/** A per-account rule of routing.json (`cross_account`, `copied_back`) for one account, `{account}` filled in. */
export function accountRule(routing: Routing, key: (typeof ACCOUNT_RULES)[number], account: string): { name: string; pattern: EventPattern } {
  const fill = (v: unknown): unknown =>
    typeof v === 'string' ? v.split('{account}').join(account)
      : Array.isArray(v) ? v.map(fill)
      : v !== null && typeof v === 'object' ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fill(x)]))
      : v;
  return { name: fill(routing[key].rule) as string, pattern: fill(routing[key].pattern) as EventPattern };
}

/** The cross-account forwarding rule for one target account (a source's "Snapshot Shared" to it), placeholders filled in. */
export function crossAccountRule(routing: Routing, account: string): { name: string; pattern: EventPattern } {
  return accountRule(routing, 'cross_account', account);
}

/** The rule returning one source account's "Snapshot Copied" events from the backup account to it, placeholders filled in. */
export function copiedBackRule(routing: Routing, account: string): { name: string; pattern: EventPattern } {
  return accountRule(routing, 'copied_back', account);
}
