// Each step's IAM permissions, from ../shared/permissions.json: the table the local host runs
// each step's role from too, so a call the emulator allows is one the deployed role allows.
// The JSON names its resources and conditions ('rds:managed-snapshots', 'via-rds'); this file
// turns each name into ARNs and IAM conditions for one stack.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Kind, KINDS } from './config';
import { Arns, createAction, Ec2Type, grantForAwsResource, MANAGED_TAG, PREFIX, RdsType, requestTag, resourceTag, RESTORE_TEST_TAG, viaEc2, viaRds } from './iam';
import { INFRA_DIR, Routing } from './routing';

export interface PermissionStatement {
  sid: string;
  actions: string[];
  /** Scope names (permissions.json 'scopes'). */
  resources: string[];
  /** Condition names (permissions.json 'conditions'); all must hold. */
  conditions?: string[];
  /** 'home' (default): the stack's region; 'pipeline': home and every extra region. */
  regions?: 'home' | 'pipeline';
  /** The resource kinds the statement is for: rendered only where one of them is handled. Absent: every kind. */
  kinds?: Kind[];
  why: string;
}

export interface Permissions {
  scopes: Record<string, string>;
  conditions: Record<string, string>;
  every_step: PermissionStatement[];
  event_source: PermissionStatement[];
  steps: Record<string, PermissionStatement[]>;
}

/** What the names stand for in one stack. A scope the stack lacks (the sharing key in the target stack) fails at synth. */
export interface StackScopes {
  /**
   * The resource kinds this stack handles (a source's `kinds`, the target's `target.kinds`): a
   * statement with `kinds` is rendered only when one of its kinds is among them.
   */
  readonly kinds: readonly Kind[];
  /** The target's extra regions ('pipeline' = the stack's region and these); none in a source stack. */
  readonly extraRegions: string[];
  /** The allowlisted source accounts, each in its region (the backup account's stack). */
  readonly sources?: { account: string; region: string }[];
  readonly sharingKeyArn?: string;
  readonly targetKeyArn?: string;
  /** The alias every backup key carries (extra-region keys are found by it). */
  readonly extraRegionKeyAlias?: string;
  readonly restoreSubnetGroup?: string;
  /**
   * The copy ledger's table name (routing.json copy_ledger): only the backup account's stack,
   * which creates the table, has one.
   */
  readonly copyLedger?: string;
  /**
   * With source data checks (a source's dataChecks): the secrets they name besides those RDS
   * manages. Absent: no source data checks, so the secrets scope is empty and no statement names it.
   */
  readonly sourceDatabaseSecrets?: string[];
}

export interface StepScopes extends StackScopes {
  readonly queueArn: string;
  readonly dlqArn: string;
  readonly pipelineBusArn: string;
  /**
   * The queue of every step in the same stack, by its routing.json name (the reconcile steps
   * send their repairs to other steps' queues). A step the stack lacks fails at synth.
   */
  readonly stepQueueArns: Readonly<Record<string, string>>;
}

export const PERMISSIONS_FILE = path.resolve(INFRA_DIR, '..', 'shared', 'permissions.json');

/** An ARN and the region it is in (via-rds names RDS in the key's region). */
interface Located { arn: string; region: string }

type Scope = (stack: Stack, s: StepScopes, regions: string[]) => Located[];

/**
 * The scopes rendered as "*": for actions with no resource type, which IAM authorizes only on
 * "*". Each must be its statement's only scope; test/security.test.ts allows "*" for their
 * actions only, and lib/nag.ts acknowledges it only for the actions it lists.
 */
export const ANY_RESOURCE_SCOPES = ['account', 'ec2:all'];

/** The scope naming the copy ledger table (routing.json copy_ledger). */
export const COPY_LEDGER_SCOPE = 'dynamodb:copy-ledger';

const need = <T>(value: T | undefined, what: string): T => {
  if (value === undefined) throw new Error(`needs ${what}, which this stack does not have`);
  return value;
};

/** Every scope name permissions.json may use, and what it is in a stack. */
const SCOPES: Record<string, Scope> = {
  // Calls with no resource type (rds:DescribeAccountAttributes): IAM authorizes them only on *.
  // test/security.test.ts allows * for the actions of statements with this scope and no other.
  'account': (stack) => [{ arn: '*', region: stack.region }],
  // EC2's Describe* calls support no resource-level permissions (Service Authorization Reference, Amazon EC2).
  'ec2:all': (stack) => [{ arn: '*', region: stack.region }],
  'ec2:volumes': (stack, _, regions) => ec2(stack, regions, 'volume', stack.account),
  'ec2:instances': (stack, _, regions) => ec2(stack, regions, 'instance', stack.account),
  // EBS snapshot ARNs have no account (arn:aws:ec2:<region>::snapshot/<id>): the conditions make them ours.
  'ec2:snapshots': (stack, _, regions) => ec2(stack, regions, 'snapshot', ''),
  // Each source's snapshots are in that source's region, whatever the statement's regions.
  'ec2:source-snapshots': (stack, s) => unique(need(s.sources, 'the allowlisted sources').flatMap(({ region }) => ec2(stack, [region], 'snapshot', ''))),
  'rds:all': (stack, _, regions) => regions.map((r) => ({ arn: new Arns(stack).rdsAll(r), region: r })),
  'rds:databases': (stack, _, regions) => rds(stack, regions, ['db', 'cluster'], '*'),
  'rds:any-snapshot': (stack, _, regions) => rds(stack, regions, ['snapshot', 'cluster-snapshot'], '*'),
  'rds:managed-snapshots': (stack, _, regions) => rds(stack, regions, ['snapshot', 'cluster-snapshot'], `${PREFIX}*`),
  // Each source's snapshots are where that source is, whatever the statement's regions.
  'rds:source-snapshots': (stack, s) => need(s.sources, 'the allowlisted sources').flatMap(({ account, region }) => (['snapshot', 'cluster-snapshot'] as const)
    .map((type) => ({ arn: new Arns(stack).rds(type, '*', region, account), region }))),
  'rds:restore-tests': (stack, _, regions) => rds(stack, regions, ['db', 'cluster'], `${PREFIX}*`),
  // A restore names the default option and parameter groups of the snapshot's engine version.
  'rds:restore-network': (stack, s, regions) => [
    ...rds(stack, regions, ['subgrp'], need(s.restoreSubnetGroup, 'the restore-test subnet group')),
    ...rds(stack, regions, ['og', 'pg', 'cluster-pg'], '*'),
  ],
  'kms:sharing-key': (stack, s) => [{ arn: need(s.sharingKeyArn, 'the sharing key'), region: stack.region }],
  'kms:own-keys': (stack, _, regions) => regions.map((r) => ({ arn: new Arns(stack).kmsKeys(r, stack.account), region: r })),
  'kms:target-key': (stack, s) => [{ arn: need(s.targetKeyArn, 'the target key'), region: stack.region }],
  // Found by their alias (condition alias:backup): no reference across regions.
  'kms:extra-region-keys': (stack, s) => s.extraRegions.map((r) => ({ arn: new Arns(stack).kmsKeys(r, stack.account), region: r })),
  'kms:source-sharing-keys': (stack, s) => unique(need(s.sources, 'the allowlisted sources').map(({ account, region }) => ({ arn: new Arns(stack).kmsKeys(region, account), region }))),
  // The one table, in the home region whatever the statement's regions (no replica elsewhere; the
  // steps run at home), as shared/src/permissions.rs renders it: arn:<partition>:dynamodb:<region>:<account>:table/<copy_ledger>.
  [COPY_LEDGER_SCOPE]: (stack, s) => [{
    arn: `arn:${stack.partition}:dynamodb:${stack.region}:${stack.account}:table/${need(s.copyLedger, 'the copy ledger')}`, region: stack.region,
  }],
  'sqs:own-queues': (stack, s) => [s.queueArn, s.dlqArn].map((arn) => ({ arn, region: stack.region })),
  'sqs:own-queue': (stack, s) => [{ arn: s.queueArn, region: stack.region }],
  // Another step's queue, never its DLQ: a repair restarts that step's work.
  'sqs:share-queue': (stack, s) => stepQueues(stack, s, ['share-snapshot']),
  'sqs:copy-and-restore-queues': (stack, s) => stepQueues(stack, s, ['copy-shared-snapshot', 'restore']),
  'events:pipeline-bus': (stack, s) => [{ arn: s.pipelineBusArn, region: stack.region }],
  // RDS names the secrets it manages for master users rds!<kind>-<id>; only with source data checks.
  'secretsmanager:source-database-secrets': (stack, s) => (s.sourceDatabaseSecrets === undefined ? [] : [
    { arn: `arn:${stack.partition}:secretsmanager:${stack.region}:${stack.account}:secret:rds!*`, region: stack.region },
    ...s.sourceDatabaseSecrets.map((arn) => ({ arn, region: stack.region })),
  ]),
};

type Condition = (region: string, s: StepScopes) => Record<string, Record<string, unknown>>;

/** Every condition name permissions.json may use; `region` is the region of the statement's resources. */
const CONDITIONS: Record<string, Condition> = {
  'request-tag:managed': () => requestTag(MANAGED_TAG),
  'resource-tag:managed': () => resourceTag(MANAGED_TAG),
  'request-tag:restore-test': () => requestTag(RESTORE_TEST_TAG),
  'resource-tag:restore-test': () => resourceTag(RESTORE_TEST_TAG),
  'via-rds': (region) => viaRds(region),
  'via-ec2': (region) => viaEc2(region),
  'create-action:snapshot': () => createAction(['CreateSnapshot', 'CreateSnapshots', 'CopySnapshot']),
  'create-action:volume': () => createAction(['CreateVolume']),
  'grant-for-aws-resource': () => grantForAwsResource,
  // kms:ResourceAliases is multivalued (a key may have several aliases): it needs a set operator.
  'alias:backup': (_, s) => ({ 'ForAnyValue:StringEquals': { 'kms:ResourceAliases': need(s.extraRegionKeyAlias, 'the backup key alias') } }),
};

/** The queues of other steps of the same stack, by their routing.json names. */
function stepQueues(stack: Stack, s: StepScopes, steps: string[]): Located[] {
  return steps.map((step) => ({
    arn: need(Object.prototype.hasOwnProperty.call(s.stepQueueArns, step) ? s.stepQueueArns[step] : undefined, `${step}'s queue`),
    region: stack.region,
  }));
}

function rds(stack: Stack, regions: string[], types: RdsType[], name: string): Located[] {
  return regions.flatMap((region) => types.map((type) => ({ arn: new Arns(stack).rds(type, name, region), region })));
}

function ec2(stack: Stack, regions: string[], type: Ec2Type, account: string): Located[] {
  return regions.map((region) => ({ arn: new Arns(stack).ec2(type, '*', region, account), region }));
}

/** The conditions naming the service KMS is called through (kms:ViaService), one region each. */
const VIA = ['via-rds', 'via-ec2'];

function unique(xs: Located[]): Located[] {
  return xs.filter((x, i) => xs.findIndex((y) => y.arn === x.arn) === i);
}

/**
 * permissions.json (or the same table as an object), checked: every scope and condition a
 * statement names must be declared there and rendered here, sids unique per role, and the
 * steps exactly routing.json's functions. A mistake fails synth with a message naming it
 * instead of deploying a role that cannot do its work, or can do more.
 */
export function loadPermissions(from: string | object, routing: Routing): Permissions {
  const where = typeof from === 'string' ? from : 'permissions';
  const p = (typeof from === 'string' ? JSON.parse(fs.readFileSync(from, 'utf8')) : from) as Permissions;
  const isMap = (x: unknown) => x !== null && typeof x === 'object' && !Array.isArray(x);
  for (const key of ['scopes', 'conditions', 'steps'] as const) {
    if (!isMap(p[key])) throw new Error(`${where}: ${key} must be an object`);
  }

  const check = (at: string, statements: unknown) => {
    if (!Array.isArray(statements)) throw new Error(`${where}: ${at} must be a list of statements`);
    for (const st of statements as PermissionStatement[]) {
      const here = `${where}: ${at} ${JSON.stringify(st?.sid)}`;
      if (typeof st?.sid !== 'string' || !/^[A-Za-z0-9]+$/.test(st.sid)) throw new Error(`${here}: sid must be alphanumeric`);
      if (!Array.isArray(st.actions) || st.actions.length === 0 || !st.actions.every((a) => /^[a-z0-9-]+:[A-Za-z0-9]+\*?$/.test(a))) {
        throw new Error(`${here}: actions must be a non-empty list of service:Action`);
      }
      if (!Array.isArray(st.resources) || st.resources.length === 0) throw new Error(`${here}: resources must be a non-empty list of scopes`);
      for (const r of st.resources) {
        if (!(r in p.scopes)) throw new Error(`${here}: unknown scope ${JSON.stringify(r)} (not in "scopes")`);
        if (!(r in SCOPES)) throw new Error(`${here}: scope ${JSON.stringify(r)} has no rendering in infra/lib/permissions.ts`);
      }
      // "*" covers any ARN: next to it another scope would mean nothing, and its actions would get "*" too.
      const any = st.resources.find((r) => ANY_RESOURCE_SCOPES.includes(r));
      if (any !== undefined && st.resources.length > 1) throw new Error(`${here}: scope ${JSON.stringify(any)} ("*") must be the statement's only scope`);
      for (const c of st.conditions ?? []) {
        if (!(c in p.conditions)) throw new Error(`${here}: unknown condition ${JSON.stringify(c)} (not in "conditions")`);
        if (!(c in CONDITIONS)) throw new Error(`${here}: condition ${JSON.stringify(c)} has no rendering in infra/lib/permissions.ts`);
      }
      if (st.regions !== undefined && st.regions !== 'home' && st.regions !== 'pipeline') {
        throw new Error(`${here}: regions must be "home" or "pipeline", not ${JSON.stringify(st.regions)}`);
      }
      if (st.kinds !== undefined) {
        const known = KINDS as readonly string[];
        if (!Array.isArray(st.kinds) || st.kinds.length === 0 || !st.kinds.every((k) => known.includes(k)) || new Set(st.kinds).size !== st.kinds.length) {
          throw new Error(`${here}: kinds must be a non-empty list of distinct kinds (${KINDS.join(', ')}), not ${JSON.stringify(st.kinds)}`);
        }
      }
      if (VIA.filter((c) => st.conditions?.includes(c)).length > 1) throw new Error(`${here}: ${VIA.join(' and ')} cannot both hold (one kms:ViaService)`);
      if (typeof st.why !== 'string' || st.why.trim() === '') throw new Error(`${here}: why must say why`);
    }
  };
  check('every_step', p.every_step);
  check('event_source', p.event_source);
  const names = routing.functions.map((f) => f.name);
  for (const [step, statements] of Object.entries(p.steps)) {
    if (!names.includes(step)) throw new Error(`${where}: unknown step ${JSON.stringify(step)} (routing.json has ${names.join(', ')})`);
    check(`steps.${step}`, statements);
    const sids = [...p.every_step, ...statements].map((s) => s.sid);
    const twice = sids.find((s, i) => sids.indexOf(s) !== i);
    if (twice !== undefined) throw new Error(`${where}: sid ${twice} twice in the role of ${step} (every_step included)`);
  }
  const missing = names.filter((n) => !(n in p.steps));
  if (missing.length > 0) throw new Error(`${where}: no permissions for routing.json's ${missing.join(', ')} (add it under "steps")`);
  return p;
}

/** Whether a statement is for a stack handling `kinds`: it names no kinds, or one of them. */
export function forKinds(st: PermissionStatement, kinds: readonly Kind[]): boolean {
  return st.kinds === undefined || st.kinds.some((k) => kinds.includes(k));
}

/** A step's statements: every_step's, then its own, those for the stack's kinds, rendered for its stack. */
export function renderStep(stack: Stack, permissions: Permissions, step: string, scopes: StepScopes): iam.PolicyStatement[] {
  return [...permissions.every_step, ...permissions.steps[step]].filter((st) => forKinds(st, scopes.kinds)).flatMap((st) => {
    try {
      return renderStatement(stack, st, scopes);
    } catch (e) {
      throw new Error(`permissions.json ${step}.${st.sid}: ${(e as Error).message}`);
    }
  });
}

function renderStatement(stack: Stack, st: PermissionStatement, scopes: StepScopes): iam.PolicyStatement[] {
  const regions = st.regions === 'pipeline' ? [stack.region, ...scopes.extraRegions] : [stack.region];
  // unique: EBS snapshot ARNs have no account, so two scopes can name the same ARN.
  const resources = unique(st.resources.flatMap((name) => SCOPES[name](stack, scopes, regions)));
  // A scope can be empty here (extra-region keys without extra regions): no statement then.
  if (resources.length === 0) return [];
  const conditions = st.conditions ?? [];
  // kms:ViaService names one region: one statement per region of the resources (sids suffixed
  // with the region when there are several, sids being unique per policy).
  const groups = conditions.some((c) => VIA.includes(c)) ? [...new Set(resources.map((r) => r.region))] : [stack.region];
  return groups.map((region) => new iam.PolicyStatement({
    sid: groups.length > 1 ? st.sid + region.replace(/(^|-)([a-z0-9])/g, (_, __, c: string) => c.toUpperCase()) : st.sid,
    actions: st.actions,
    resources: resources.filter((r) => groups.length === 1 || r.region === region).map((r) => r.arn),
    conditions: conditions.length > 0 ? merge(conditions.map((c) => CONDITIONS[c](region, scopes))) : undefined,
  }));
}

/** All conditions of a statement must hold: keys under the same operator go into one block. */
function merge(blocks: Record<string, Record<string, unknown>>[]): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  for (const block of blocks) {
    for (const [op, keys] of Object.entries(block)) {
      for (const key of Object.keys(keys)) {
        if (out[op] && key in out[op]) throw new Error(`two conditions on ${op} ${key}`);
      }
      out[op] = { ...out[op], ...keys };
    }
  }
  return out;
}
