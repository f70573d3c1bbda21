// Builds the steps routing.json assigns to one account, each with its settings and the
// permissions shared/permissions.json gives it.
import { Stack } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { ExpireConfig, RetentionRule } from './config';
import { acknowledgeWildcards } from './nag';
import { loadPermissions, Permissions, PERMISSIONS_FILE, renderStep, StackScopes } from './permissions';
import { Routing } from './routing';
import { Step, StepProps } from './step';

/**
 * What differs between steps: their environment (checked by the Step construct against
 * shared/environment.json), their concurrency, whether they alarm on a full or nearly full snapshot quota.
 * Their IAM statements are not here: they come from shared/permissions.json.
 */
export interface StepSettings {
  readonly environment: Record<string, string | undefined>;
  readonly maxConcurrency?: number;
  readonly quotaAlarm?: boolean;
  readonly quotaWarningAlarm?: boolean;
}

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

type Common = Omit<StepProps, 'routing' | 'fn' | 'environment' | 'maxConcurrency' | 'quotaAlarm' | 'quotaWarningAlarm'>;

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

  return fns.map((fn) => {
    const s = settings[fn.name];
    // A rule for kinds this stack does not handle would feed the step events its role cannot act on.
    const rules = fn.rules.filter((r) => r.kinds === undefined || r.kinds.some((k) => (scopes.kinds as readonly string[]).includes(k)));
    const step = new Step(scope, pascal(fn.name), {
      ...common, routing, fn: { ...fn, rules }, environment: s.environment, maxConcurrency: s.maxConcurrency, quotaAlarm: s.quotaAlarm,
      quotaWarningAlarm: s.quotaWarningAlarm,
    });
    const statements = renderStep(Stack.of(scope), permissions, fn.name, {
      ...scopes, queueArn: step.queue.queueArn, dlqArn: step.dlq.queueArn, pipelineBusArn: common.pipelineBus.eventBusArn,
    });
    statements.forEach((st) => step.role.addToPrincipalPolicy(st));
    acknowledgeWildcards(step.role, statements);
    return step;
  });
}

const pascal = (s: string) => s.replace(/(^|-)([a-z])/g, (_, __, c: string) => c.toUpperCase());
