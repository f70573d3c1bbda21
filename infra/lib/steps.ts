// Builds the steps routing.json assigns to one account, each with its settings and the
// permissions shared/permissions.json gives it.
import { Stack } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { ExpireConfig, RetentionRule } from './config';
import { acknowledgeWildcards } from './nag';
import { loadPermissions, Permissions, PERMISSIONS_FILE, renderStep, StackScopes } from './permissions';
import { Routing } from './routing';
import { Step, StepProps, StepVpc } from './step';

/**
 * What differs between steps: their environment (checked by the Step construct against
 * shared/environment.json), their concurrency, their alarms beyond the DLQ, errors and throttles.
 * Their IAM statements are not here: they come from shared/permissions.json.
 */
export interface StepSettings {
  readonly environment: Record<string, string | undefined>;
  /**
   * Platform variables naming other steps' queues: variable -> the routing.json name of a step
   * of the same stack, whose queue URL it is set to (the reconcile steps send repairs there).
   */
  readonly queueUrls?: Record<string, string>;
  readonly maxConcurrency?: number;
  readonly quotaAlarm?: boolean;
  readonly quotaWarningAlarm?: boolean;
  readonly sweepAlarm?: boolean;
  readonly budgetAlarm?: boolean;
  readonly suspiciousAlarm?: boolean;
  readonly backupOverdueAlarm?: boolean;
  readonly rpoMinutes?: number;
  /** The function's VPC (the restore step with data checks); absent: none. */
  readonly vpc?: StepVpc;
}

/**
 * The reconcile steps' event source concurrency, as the expire steps': the hourly schedule sends
 * one message; a late or redelivered one must not start a crowd of runs that list every snapshot
 * against the same API quotas. Two runs at once are harmless: a repair is a message to a step
 * that is idempotent (sent twice, the second finds the work done), and each repaired snapshot is
 * marked (snapferry:reconciled-at) so the next runs do not repeat it within a day.
 */
export const RECONCILE_CONCURRENCY = 2;

/**
 * The expire steps' event source concurrency: the SQS event source mapping's minimum (2). The
 * hourly schedule sends one message, and "Snapshot Copied" events (expire-snapshots) and the
 * follow-up messages of a run that reached MAX_DELETES_PER_RUN add more; a backlog of them
 * must not fan out into many invocations listing and deleting in parallel against the same
 * API quotas. Two runs at once are harmless: a deletion is idempotent, and deleting a snapshot
 * the rules do not keep changes nothing the rules keep.
 */
export const EXPIRE_CONCURRENCY = 2;

/** An expire step's variables from its account's `retention` and `expire` (config.ts). */
export function expireEnvironment(c: { retention: RetentionRule[]; expire: ExpireConfig }): Record<string, string> {
  return {
    // The rules exactly as validated (config.ts keeps only known keys): the step parses the same JSON.
    RETENTION: JSON.stringify(c.retention),
    ALLOW_DELETE_ALL: String(c.expire.allowDeleteAll),
    EXPIRE_DRY_RUN: String(c.expire.dryRun),
    MAX_DELETES_PER_RUN: String(c.expire.maxDeletesPerRun),
    QUOTA_WARNING_PERCENT: String(c.expire.quotaWarningPercent),
  };
}

type Common = Omit<StepProps, 'routing' | 'fn' | 'environment' | 'platform' | 'maxConcurrency' | 'quotaAlarm' | 'quotaWarningAlarm'
  | 'sweepAlarm' | 'budgetAlarm' | 'suspiciousAlarm' | 'backupOverdueAlarm' | 'rpoMinutes' | 'vpc'>;

export function stepsFor(
  scope: Construct, account: 'source' | 'target', routing: Routing,
  settings: Record<string, StepSettings>, common: Common, scopes: StackScopes,
  permissions: Permissions = loadPermissions(PERMISSIONS_FILE, routing),
): Step[] {
  const fns = routing.functions.filter((f) => f.account === account);
  // A step added to routing.json must get its settings here before it can deploy.
  const missing = fns.filter((f) => !(f.name in settings)).map((f) => f.name);
  if (missing.length > 0) throw new Error(`routing.json has ${account} functions the ${account} stack does not configure: ${missing.join(', ')}`);
  const extra = Object.keys(settings).filter((n) => !fns.some((f) => f.name === n));
  if (extra.length > 0) throw new Error(`the ${account} stack configures functions routing.json does not have: ${extra.join(', ')}`);

  for (const fn of fns) {
    for (const [variable, other] of Object.entries(settings[fn.name].queueUrls ?? {})) {
      if (other === fn.name || !fns.some((f) => f.name === other)) {
        throw new Error(`the ${account} stack sets ${fn.name}'s ${variable} to the queue of ${JSON.stringify(other)}, `
          + `which is not another step of this stack (${fns.map((f) => f.name).join(', ')})`);
      }
    }
  }

  // A step whose environment names another step's queue is built after that step: the queue
  // exists only once its step does. Then the statements, once every queue exists: a step's
  // role may name other steps' queues (permissions.json 'sqs:share-queue').
  const built = new Map<string, Step>();
  while (built.size < fns.length) {
    const ready = fns.filter((fn) => !built.has(fn.name) && Object.values(settings[fn.name].queueUrls ?? {}).every((o) => built.has(o)));
    if (ready.length === 0) {
      throw new Error(`the ${account} stack's steps name each other's queues in a cycle: ${fns.filter((f) => !built.has(f.name)).map((f) => f.name).join(', ')}`);
    }
    for (const fn of ready) {
      const s = settings[fn.name];
      // A rule for kinds this stack does not handle would feed the step events its role cannot act on.
      const rules = fn.rules.filter((r) => r.kinds === undefined || r.kinds.some((k) => (scopes.kinds as readonly string[]).includes(k)));
      const platform = Object.fromEntries(Object.entries(s.queueUrls ?? {}).map(([variable, other]) => [variable, built.get(other)!.queue.queueUrl]));
      built.set(fn.name, new Step(scope, pascal(fn.name), {
        ...common, routing, fn: { ...fn, rules }, environment: s.environment, platform, maxConcurrency: s.maxConcurrency,
        quotaAlarm: s.quotaAlarm, quotaWarningAlarm: s.quotaWarningAlarm, sweepAlarm: s.sweepAlarm, backupOverdueAlarm: s.backupOverdueAlarm, rpoMinutes: s.rpoMinutes,
        budgetAlarm: s.budgetAlarm, suspiciousAlarm: s.suspiciousAlarm, vpc: s.vpc,
      }));
    }
  }

  const stepQueueArns = Object.fromEntries([...built].map(([name, step]) => [name, step.queue.queueArn]));
  return fns.map((fn) => {
    const step = built.get(fn.name)!;
    const statements = [...renderStep(Stack.of(scope), permissions, fn.name, {
      ...scopes, queueArn: step.queue.queueArn, dlqArn: step.dlq.queueArn, pipelineBusArn: common.pipelineBus.eventBusArn, stepQueueArns,
    }), ...step.vpcStatements];
    statements.forEach((st) => step.role.addToPrincipalPolicy(st));
    acknowledgeWildcards(step.role, statements);
    return step;
  });
}

const pascal = (s: string) => s.replace(/(^|-)([a-z])/g, (_, __, c: string) => c.toUpperCase());
