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
  max_receive_count: number;
  dlq_retention_days: number;
  visibility_timeout_factor: number;
  /** CloudWatch metrics the steps write (embedded metric format), each with the dimension Step = the function's name. */
  metrics: { namespace: string; quota_full: string };
  functions: RoutingFunction[];
  cross_account: { rule: string; bus: 'pipeline'; pattern: EventPattern };
}

/** infra/ itself; compiled files live in infra/dist/<dir>/, sources in infra/<dir>/. */
export const INFRA_DIR = path.resolve(__dirname, '..', path.basename(path.resolve(__dirname, '..')) === 'dist' ? '..' : '.');
export const ROUTING_FILE = path.resolve(INFRA_DIR, '..', 'shared', 'routing.json');

export function loadRouting(file: string = ROUTING_FILE): Routing {
  const routing = JSON.parse(fs.readFileSync(file, 'utf8')) as Routing;
  // A malformed table would otherwise surface as an obscure CloudFormation error at deploy time.
  if (typeof routing.metrics?.namespace !== 'string' || typeof routing.metrics.quota_full !== 'string') {
    throw new Error(`${file}: metrics must name the namespace and the quota_full metric`);
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

/** The cross-account forwarding rule for one target account, placeholders filled in. */
export function crossAccountRule(routing: Routing, account: string): { name: string; pattern: EventPattern } {
  const fill = (v: unknown): unknown =>
    typeof v === 'string' ? v.split('{account}').join(account)
      : Array.isArray(v) ? v.map(fill)
      : v !== null && typeof v === 'object' ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fill(x)]))
      : v;
  return { name: fill(routing.cross_account.rule) as string, pattern: fill(routing.cross_account.pattern) as EventPattern };
}
