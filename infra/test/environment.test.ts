// Every function's environment must be what shared/environment.json (the contract the step
// code and the local host read too) declares for it: nothing undeclared, nothing required
// left out. The synthesized templates are checked, and so is the synth-time guard itself.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { Stack } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as sns from 'aws-cdk-lib/aws-sns';
import { DeliveryDlq } from '../lib/delivery';
import { declaredFor, EnvironmentContract, ENVIRONMENT_FILE, environmentContract, loadEnvironment } from '../lib/environment';
import { loadPermissions, PERMISSIONS_FILE } from '../lib/permissions';
import { functionName, Routing, RoutingFunction } from '../lib/routing';
import { Step } from '../lib/step';
import { stepsFor } from '../lib/steps';
import { exampleConfig, newApp, only, placeholderAssets, resources, routing, synthExample, templateFor } from './helpers';

const contract = environmentContract();
const config = exampleConfig();
const synth = synthExample(config);

/** The platform variables naming another step's queue (the reconcile steps' repairs): variable -> that step. */
const otherQueues: Record<string, Record<string, string>> = {
  'reconcile-snapshots': { SHARE_QUEUE_URL: 'share-snapshot' },
  'reconcile-copies': { COPY_QUEUE_URL: 'copy-shared-snapshot', RESTORE_QUEUE_URL: 'restore' },
};

const fnNamed = (name: string): RoutingFunction => {
  const fn = routing.functions.find((f) => f.name === name);
  assert.ok(fn, `routing.json has no function ${name}`);
  return fn;
};

describe('shared/environment.json', () => {
  test('declares exactly the functions routing.json has', () => {
    assert.deepEqual(Object.keys(contract.functions).sort(), routing.functions.map((f) => f.name).sort());
  });

  test('the platform variables are the ones the Step construct sets, and the reconcile steps\' other queues the stacks set', () => {
    for (const fn of routing.functions) {
      const platform = declaredFor(contract, fn.name)!.filter((v) => v.platform).map((v) => v.name);
      assert.deepEqual(platform.sort(), ['ACCOUNT_ID', 'DLQ_URL', 'PIPELINE_BUS', 'QUEUE_URL', ...Object.keys(otherQueues[fn.name] ?? {})].sort(), fn.name);
    }
  });
});

describe('synthesized environments against the contract', () => {
  for (const side of ['source', 'target'] as const) {
    test(`${side}: every function sets only declared variables and every required one`, () => {
      const fns = Object.values(resources(templateFor(synth, side), 'AWS::Lambda::Function'));
      assert.equal(fns.length, routing.functions.filter((f) => f.account === side).length);
      for (const f of fns) {
        const fn = routing.functions.find((x) => functionName(x) === f.Properties.FunctionName);
        assert.ok(fn, `${f.Properties.FunctionName} is not a routing.json function`);
        const declared = declaredFor(contract, fn.name);
        assert.ok(declared, `shared/environment.json does not declare ${fn.name}`);
        const vars: Record<string, unknown> = f.Properties.Environment?.Variables ?? {};
        const undeclared = Object.keys(vars).filter((k) => !declared.some((v) => v.name === k));
        assert.deepEqual(undeclared, [], `${fn.name} sets variables shared/environment.json does not declare for it`);
        const missing = declared.filter((v) => v.required && !(v.name in vars)).map((v) => v.name);
        assert.deepEqual(missing, [], `${fn.name} lacks required variables`);
        for (const [k, v] of Object.entries(vars)) {
          assert.ok(typeof v !== 'string' || v.trim() !== '', `${fn.name}: ${k} is blank (blank counts as unset: leave it out)`);
        }
      }
    });
  }

  for (const fn of routing.functions) {
    test(`${fn.name}: platform variables are its own queue, its DLQ, the pipeline bus and its account${fn.name in otherQueues ? ', and the queues it repairs through' : ''}`, () => {
      const t = templateFor(synth, fn.account);
      const vars = only(t, 'AWS::Lambda::Function', { FunctionName: functionName(fn) }).Properties.Environment.Variables;
      assert.deepEqual(vars.QUEUE_URL, { Ref: only(t, 'AWS::SQS::Queue', { QueueName: fn.queue }).id });
      assert.deepEqual(vars.DLQ_URL, { Ref: only(t, 'AWS::SQS::Queue', { QueueName: `${fn.queue}-dlq` }).id });
      assert.equal(vars.PIPELINE_BUS, routing.pipeline_bus);
      // The stack's own account, so the function's init makes no STS call to learn it.
      const account = fn.account === 'source' ? config.sources[0].account : config.target.account;
      assert.equal(vars.ACCOUNT_ID, account);
      // The other steps' queues, each the queue of the step it names, in the same stack: never a DLQ.
      for (const [variable, other] of Object.entries(otherQueues[fn.name] ?? {})) {
        const step = fnNamed(other);
        assert.equal(step.account, fn.account, `${fn.name}'s ${variable}`);
        assert.deepEqual(vars[variable], { Ref: only(t, 'AWS::SQS::Queue', { QueueName: step.queue }).id }, `${fn.name}'s ${variable}`);
      }
    });
  }

  // What the stacks set from the example config (which leaves SELECT_IDENTIFIERS,
  // DESCRIPTION_REGEX and the restore class unset, so they are left out), beyond the
  // platform variables.
  const selection = ['SELECT_REGEX', 'SELECT_TAG'];
  // Always set, defaults included (config.ts fills them in from shared/environment.json).
  const expire = ['RETENTION', 'ALLOW_DELETE_ALL', 'EXPIRE_DRY_RUN', 'MAX_DELETES_PER_RUN', 'QUOTA_WARNING_PERCENT'];
  const fromConfig: Record<string, string[]> = {
    'create-snapshot': ['KINDS', ...selection, 'MIN_INTERVAL_MINUTES', 'MANUAL_SNAPSHOT_QUOTA'],
    'share-snapshot': ['TARGET_ACCOUNTS', 'SHARING_KMS_KEY_ARN', ...selection, 'RECHECK_SECONDS'],
    'copy-shared-snapshot': ['SOURCE_ACCOUNTS', 'TARGET_KMS_KEY_ARN', 'EXTRA_REGIONS', 'EXTRA_REGION_KMS_KEYS',
      'IDENTIFIER_REGEX', 'RECHECK_SECONDS'],
    restore: ['RESTORE_ENABLED', 'RESTORE_EVERY_NTH', 'RESTORE_SUBNET_GROUP', 'RESTORE_SECURITY_GROUP_IDS',
      'TARGET_KMS_KEY_ARN', 'RECHECK_SECONDS', 'RESTORE_TIMEOUT_MINUTES', 'DATA_CHECKS', 'DATA_CHECK_TIMEOUT_SECONDS'],
    'expire-snapshots': ['KINDS', 'TARGET_ACCOUNTS', ...expire],
    'expire-copies': ['KINDS', 'EXTRA_REGIONS', ...expire],
    'reconcile-snapshots': ['KINDS', ...selection, 'SCHEDULE_MINUTES', 'GRACE_MINUTES'],
    'reconcile-copies': ['EXTRA_REGIONS', 'GRACE_MINUTES', 'KINDS', 'RPO_MINUTES', 'RETENTION', 'RESTORE_ENABLED', 'RESTORE_EVERY_NTH'],
  };
  for (const fn of routing.functions) {
    test(`${fn.name}: the example config sets exactly its settings`, () => {
      const f = only(templateFor(synth, fn.account), 'AWS::Lambda::Function', { FunctionName: functionName(fn) });
      assert.ok(fromConfig[fn.name], `no expectation for ${fn.name}`);
      assert.deepEqual(Object.keys(f.Properties.Environment.Variables).sort(),
        ['QUEUE_URL', 'DLQ_URL', 'PIPELINE_BUS', 'ACCOUNT_ID', ...Object.keys(otherQueues[fn.name] ?? {}), ...fromConfig[fn.name]].sort());
    });
  }

  test('the reconcile steps\' values: what create-snapshot backs up, the restore step\'s sampling, the config\'s reconcile', () => {
    const env = (s: typeof synth, side: 'source' | 'target', name: string) =>
      only(templateFor(s, side), 'AWS::Lambda::Function', { FunctionName: name }).Properties.Environment.Variables;
    // reconcile-snapshots watches exactly what create-snapshot selects, KINDS included.
    const create = env(synth, 'source', 'snapferry-create-snapshot');
    const snapshots = env(synth, 'source', 'snapferry-reconcile-snapshots');
    for (const v of ['KINDS', 'SELECT_IDENTIFIERS', 'SELECT_REGEX', 'SELECT_TAG', 'SELECT_INSTANCE_TAG']) assert.deepEqual(snapshots[v], create[v], v);
    assert.deepEqual([snapshots.SCHEDULE_MINUTES, snapshots.GRACE_MINUTES], ['60', '60']);
    // reconcile-copies samples as restore does.
    const restore = env(synth, 'target', 'snapferry-restore');
    const copies = env(synth, 'target', 'snapferry-reconcile-copies');
    assert.deepEqual([copies.RESTORE_ENABLED, copies.RESTORE_EVERY_NTH], [restore.RESTORE_ENABLED, restore.RESTORE_EVERY_NTH]);
    // ...and repairs extra-region copies by the rules expire-copies deletes them by.
    assert.deepEqual(copies.RETENTION, env(synth, 'target', 'snapferry-expire-copies').RETENTION);
    assert.deepEqual([copies.EXTRA_REGIONS, copies.GRACE_MINUTES, copies.RPO_MINUTES, copies.RESTORE_EVERY_NTH], ['eu-central-1', '60', '1440', '7']);

    // Other values reach the template: another selection (identifiers, an instance tag), ebs, no extra regions, restore tests off.
    const c = exampleConfig();
    c.sources[0].kinds = ['db-instance', 'ebs'];
    c.sources[0].selection = { identifiers: ['orders', 'vol-0a1b2c3d4e5f60001'], instanceTag: 'backup' };
    c.sources[0].minIntervalMinutes = 120;
    c.sources[0].reconcile = { graceMinutes: 30, scheduleMinutes: 180 };
    c.target.extraRegions = [];
    c.target.restoreTest.enabled = false;
    c.target.restoreTest.everyNth = 3;
    c.target.reconcile = { graceMinutes: 90, rpoMinutes: 720 };
    const s = synthExample(c);
    const create2 = env(s, 'source', 'snapferry-create-snapshot');
    const snapshots2 = env(s, 'source', 'snapferry-reconcile-snapshots');
    assert.deepEqual([snapshots2.KINDS, snapshots2.SELECT_IDENTIFIERS, snapshots2.SELECT_INSTANCE_TAG, snapshots2.SELECT_REGEX, snapshots2.SELECT_TAG],
      ['db-instance,ebs', 'orders,vol-0a1b2c3d4e5f60001', 'backup', undefined, undefined]);
    for (const v of ['KINDS', 'SELECT_IDENTIFIERS', 'SELECT_REGEX', 'SELECT_TAG', 'SELECT_INSTANCE_TAG']) assert.deepEqual(snapshots2[v], create2[v], v);
    assert.deepEqual([snapshots2.SCHEDULE_MINUTES, snapshots2.GRACE_MINUTES], ['180', '30']);
    const copies2 = env(s, 'target', 'snapferry-reconcile-copies');
    assert.deepEqual([copies2.EXTRA_REGIONS, copies2.GRACE_MINUTES, copies2.RPO_MINUTES, copies2.RESTORE_ENABLED, copies2.RESTORE_EVERY_NTH],
      [undefined, '90', '720', 'false', '3']);
  });

  test('a configured restore class is passed on', () => {
    const c = exampleConfig();
    const withClass = { ...c, target: { ...c.target, restoreTest: { ...c.target.restoreTest, instanceClass: 'db.r6g.large' } } };
    const t = synthExample(withClass).target;
    const f = only(t, 'AWS::Lambda::Function', { FunctionName: 'snapferry-restore' });
    assert.equal(f.Properties.Environment.Variables.RESTORE_INSTANCE_CLASS, 'db.r6g.large');
  });

  test('the EBS settings are passed on: instance tag selection, the test volumes\' zone, EBS Snapshot Lock', () => {
    const c = exampleConfig();
    c.sources[0].kinds = ['ebs'];
    c.sources[0].selection.instanceTag = 'backup=snapferry';
    Object.assign(c.target.restoreTest, { availabilityZone: 'eu-west-1b', lockMode: 'compliance', lockDays: 90, lockComplianceOptIn: true });
    const s = synthExample(c);
    const env = (side: 'source' | 'target', name: string) =>
      only(templateFor(s, side), 'AWS::Lambda::Function', { FunctionName: name }).Properties.Environment.Variables;
    assert.equal(env('source', 'snapferry-create-snapshot').KINDS, 'ebs');
    assert.equal(env('source', 'snapferry-create-snapshot').SELECT_INSTANCE_TAG, 'backup=snapferry');
    assert.equal(env('source', 'snapferry-share-snapshot').SELECT_INSTANCE_TAG, 'backup=snapferry');
    const restore = env('target', 'snapferry-restore');
    assert.deepEqual([restore.RESTORE_AVAILABILITY_ZONE, restore.LOCK_MODE, restore.LOCK_DAYS, restore.LOCK_COMPLIANCE_OPT_IN],
      ['eu-west-1b', 'compliance', '90', 'true']);
    // Unset in the config: left out, the step uses its own default (no lock; LOCK_DAYS 35).
    const plain = only(synth.target, 'AWS::Lambda::Function', { FunctionName: 'snapferry-restore' }).Properties.Environment.Variables;
    for (const v of ['RESTORE_AVAILABILITY_ZONE', 'LOCK_MODE', 'LOCK_DAYS', 'LOCK_COMPLIANCE_OPT_IN']) assert.equal(plain[v], undefined, v);
  });

  test('values from the config', () => {
    const env = (side: 'source' | 'target', name: string) =>
      only(templateFor(synth, side), 'AWS::Lambda::Function', { FunctionName: name }).Properties.Environment.Variables;
    const s = config.sources[0];
    // Set from the config even where it equals the contract's default (db-instance,db-cluster).
    assert.equal(env('source', 'snapferry-create-snapshot').KINDS, s.kinds.join(','));
    assert.equal(env('source', 'snapferry-share-snapshot').TARGET_ACCOUNTS, config.target.account);
    assert.equal(env('source', 'snapferry-share-snapshot').SELECT_TAG, s.selection.tag);
    const copy = env('target', 'snapferry-copy-shared-snapshot');
    assert.equal(copy.SOURCE_ACCOUNTS, s.account);
    assert.equal(copy.EXTRA_REGIONS, 'eu-central-1');
    assert.equal(copy.EXTRA_REGION_KMS_KEYS, `eu-central-1=arn:aws:kms:eu-central-1:${config.target.account}:alias/snapferry-target`);
    assert.equal(env('target', 'snapferry-restore').RESTORE_ENABLED, 'true');
  });

  test('the copy step\'s budgets per source: set as configured, left unset (the step\'s derived defaults) when not', () => {
    const copyEnv = (s: typeof synth) =>
      only(s.target, 'AWS::Lambda::Function', { FunctionName: 'snapferry-copy-shared-snapshot' }).Properties.Environment.Variables;
    // The example configures none: neither variable is even named.
    assert.equal(config.target.copy.budgets, undefined);
    for (const v of ['COPIES_HELD_PER_SOURCE', 'COPIES_IN_FLIGHT_PER_SOURCE']) assert.ok(!(v in copyEnv(synth)), v);

    const c = exampleConfig();
    c.sources.push({ ...structuredClone(c.sources[0]), account: '333333333333' });
    c.target.copy.budgets = { copiesHeld: 50, sources: { 333333333333: { copiesHeld: 5, copiesInFlight: 1 }, 111111111111: { copiesHeld: 80 } } };
    const env = copyEnv(synthExample(c));
    assert.deepEqual([env.SOURCE_ACCOUNTS, env.COPIES_HELD_PER_SOURCE, env.COPIES_IN_FLIGHT_PER_SOURCE],
      ['111111111111,333333333333', '50,111111111111=80,333333333333=5', '333333333333=1']);

    // One variable configured, the other left unset.
    const d = exampleConfig();
    d.target.copy.budgets = { copiesInFlight: 2 };
    const one = copyEnv(synthExample(d));
    assert.equal(one.COPIES_IN_FLIGHT_PER_SOURCE, '2');
    assert.ok(!('COPIES_HELD_PER_SOURCE' in one));
  });

  test('the copy step\'s option groups: OPTION_GROUPS as configured (by region, then source), left out when not', () => {
    const copyEnv = (s: typeof synth) =>
      only(s.target, 'AWS::Lambda::Function', { FunctionName: 'snapferry-copy-shared-snapshot' }).Properties.Environment.Variables;
    // The example configures none: the variable is not even named.
    assert.equal(config.target.copy.optionGroups, undefined);
    assert.ok(!('OPTION_GROUPS' in copyEnv(synth)));

    const c = exampleConfig();
    c.target.extraRegions = ['eu-north-1', 'eu-central-1'];
    c.target.copy.optionGroups = {
      'eu-north-1': { 'orders-tz': 'orders-tz-stockholm' },
      'eu-central-1': { 'orders-tz': 'orders-tz-dr', 'Billing-2': 'billing-2-dr' },
    };
    const mapped = synthExample(c);
    const env = copyEnv(mapped);
    assert.equal(env.OPTION_GROUPS, 'eu-central-1:Billing-2=billing-2-dr,eu-central-1:orders-tz=orders-tz-dr,eu-north-1:orders-tz=orders-tz-stockholm');
    assert.equal(env.EXTRA_REGIONS, 'eu-north-1,eu-central-1');
    // Only the copy step reads it.
    for (const fn of routing.functions.filter((f) => f.name !== 'copy-shared-snapshot' && f.account === 'target')) {
      const other = only(mapped.target, 'AWS::Lambda::Function', { FunctionName: functionName(fn) }).Properties.Environment.Variables;
      assert.ok(!('OPTION_GROUPS' in other), fn.name);
    }

    // Mapped to nothing: left out, as when not configured.
    const d = exampleConfig();
    d.target.copy.optionGroups = { 'eu-central-1': {} };
    assert.ok(!('OPTION_GROUPS' in copyEnv(synthExample(d))));
  });

  test('the expire steps\' values: retention as the JSON the step parses, the expire settings, kinds, accounts and regions', () => {
    const env = (side: 'source' | 'target', name: string) =>
      only(templateFor(synth, side), 'AWS::Lambda::Function', { FunctionName: name }).Properties.Environment.Variables;
    const s = config.sources[0];
    const snapshots = env('source', 'snapferry-expire-snapshots');
    assert.deepEqual(JSON.parse(snapshots.RETENTION), [{ resources: '^prod-orders$', keep_last: 4 }, { keep_last: 2 }]);
    assert.deepEqual([snapshots.KINDS, snapshots.TARGET_ACCOUNTS, snapshots.EXPIRE_DRY_RUN, snapshots.ALLOW_DELETE_ALL, snapshots.MAX_DELETES_PER_RUN, snapshots.QUOTA_WARNING_PERCENT],
      [s.kinds.join(','), config.target.account, 'true', 'false', '100', '80']);
    const copies = env('target', 'snapferry-expire-copies');
    assert.deepEqual(JSON.parse(copies.RETENTION), [
      { regions: ['eu-central-1'], keep_last: 3, weekly: 4 },
      { keep_last: 7, daily: 7, weekly: 4, monthly: 12, yearly: 3 },
    ]);
    assert.deepEqual([copies.KINDS, copies.EXTRA_REGIONS, copies.EXPIRE_DRY_RUN], ['db-instance,db-cluster,ebs', 'eu-central-1', 'true']);

    // Other values reach the template; without extra regions EXTRA_REGIONS is left out.
    const c = exampleConfig();
    c.target.extraRegions = [];
    c.target.retention = [{ resources: '^orders-', max_age_days: 30 }];
    c.target.expire = { dryRun: false, allowDeleteAll: true, maxDeletesPerRun: 7, quotaWarningPercent: 95 };
    c.sources[0].kinds = ['ebs'];
    const t = synthExample(c);
    const other = only(t.target, 'AWS::Lambda::Function', { FunctionName: 'snapferry-expire-copies' }).Properties.Environment.Variables;
    assert.deepEqual([other.RETENTION, other.EXPIRE_DRY_RUN, other.ALLOW_DELETE_ALL, other.MAX_DELETES_PER_RUN, other.QUOTA_WARNING_PERCENT, other.EXTRA_REGIONS],
      ['[{"resources":"^orders-","max_age_days":30}]', 'false', 'true', '7', '95', undefined]);
    assert.equal(only(t.source, 'AWS::Lambda::Function', { FunctionName: 'snapferry-expire-snapshots' }).Properties.Environment.Variables.KINDS, 'ebs');
  });
});

describe('synth-time guard', () => {
  const assetsDir = placeholderAssets();
  /** Builds one step in a throwaway stack. */
  const build = (name: string, environment: Record<string, string | undefined>, withContract?: EnvironmentContract, platform?: Record<string, string>) => {
    const stack = new Stack(newApp(), 'Probe', { env: { account: '111111111111', region: 'eu-west-1' } });
    const alarmTopic = new sns.Topic(stack, 'Topic');
    return new Step(stack, 'Step', {
      routing, fn: fnNamed(name), assetsDir, environment, contract: withContract, platform,
      pipelineBus: new events.EventBus(stack, 'Bus', { eventBusName: routing.pipeline_bus }),
      deliveryDlq: new DeliveryDlq(stack, 'DeliveryDlq', { routing, alarmTopic }),
      alarmTopic,
      memoryMb: 128, logRetentionDays: 1,
    });
  };
  const share = { TARGET_ACCOUNTS: '222222222222', SHARING_KMS_KEY_ARN: 'arn:aws:kms:eu-west-1:111111111111:key/k' };

  test('the probe itself builds when the environment is valid', () => {
    build('share-snapshot', share);
  });

  test('refuses a variable the contract does not declare for the step', () => {
    assert.throws(() => build('share-snapshot', { ...share, MAX_COPIES: '3' }),
      /^Error: step share-snapshot: environment variable MAX_COPIES is not declared for it in shared\/environment\.json$/);
    // Declared for another step is not declared for this one.
    assert.throws(() => build('create-snapshot', { SOURCE_ACCOUNTS: '222222222222' }),
      /step create-snapshot: environment variable SOURCE_ACCOUNTS is not declared/);
  });

  test('refuses to leave out a required variable, or to set it blank', () => {
    assert.throws(() => build('share-snapshot', { SHARING_KMS_KEY_ARN: share.SHARING_KMS_KEY_ARN }),
      /^Error: step share-snapshot: required environment variable TARGET_ACCOUNTS not set \(shared\/environment\.json\)$/);
    assert.throws(() => build('share-snapshot', { ...share, TARGET_ACCOUNTS: ' ' }), /step share-snapshot: .*TARGET_ACCOUNTS not set/);
    assert.throws(() => build('restore', {}), /step restore: required environment variable TARGET_KMS_KEY_ARN not set/);
  });

  test('refuses a setting that overrides a platform variable', () => {
    assert.throws(() => build('share-snapshot', { ...share, QUEUE_URL: 'https://example.com/q' }),
      /step share-snapshot: QUEUE_URL is a platform variable \(set by the Step construct\), not a setting/);
    // Another step's queue is set by the stack (StepSettings.queueUrls), not from the config.
    assert.throws(() => build('reconcile-snapshots', { SHARE_QUEUE_URL: 'https://example.com/q' }),
      /step reconcile-snapshots: SHARE_QUEUE_URL is a platform variable \(set by the Step construct\), not a setting/);
  });

  test('the other steps\' queues: required, declared as platform, never the Step construct\'s own', () => {
    assert.throws(() => build('reconcile-copies', {}),
      /^Error: step reconcile-copies: required environment variables COPY_QUEUE_URL, RESTORE_QUEUE_URL not set \(shared\/environment\.json\)$/);
    assert.throws(() => build('reconcile-copies', {}, undefined, { COPY_QUEUE_URL: 'q' }),
      /^Error: step reconcile-copies: required environment variable RESTORE_QUEUE_URL not set/);
    build('reconcile-copies', {}, undefined, { COPY_QUEUE_URL: 'q', RESTORE_QUEUE_URL: 'r' });
    assert.throws(() => build('reconcile-copies', {}, undefined, { COPY_QUEUE_URL: 'q', RESTORE_QUEUE_URL: 'r', SHARE_QUEUE_URL: 's' }),
      /step reconcile-copies: the Step construct sets SHARE_QUEUE_URL, which shared\/environment\.json does not declare for it/);
    assert.throws(() => build('reconcile-copies', {}, undefined, { COPY_QUEUE_URL: 'q', RESTORE_QUEUE_URL: 'r', GRACE_MINUTES: '5' }),
      /step reconcile-copies: the Step construct sets GRACE_MINUTES, which shared\/environment\.json does not mark as platform/);
    assert.throws(() => build('reconcile-copies', {}, undefined, { COPY_QUEUE_URL: 'q', RESTORE_QUEUE_URL: 'r', QUEUE_URL: 'mine' }),
      /^Error: step reconcile-copies: QUEUE_URL is set by the Step construct itself, not by the stack$/);
    assert.throws(() => build('reconcile-copies', {}, undefined, { COPY_QUEUE_URL: 'q', RESTORE_QUEUE_URL: 'r', ACCOUNT_ID: '222222222222' }),
      /^Error: step reconcile-copies: ACCOUNT_ID is set by the Step construct itself, not by the stack$/);
  });

  test('stepsFor: another step\'s queue must be a step of the same stack, and no cycle', () => {
    const stack = new Stack(newApp(), 'Probe', { env: { account: '111111111111', region: 'eu-west-1' } });
    const alarmTopic = new sns.Topic(stack, 'Topic');
    const common = {
      assetsDir, memoryMb: 128, logRetentionDays: 1, alarmTopic,
      pipelineBus: new events.EventBus(stack, 'Bus', { eventBusName: routing.pipeline_bus }),
      deliveryDlq: new DeliveryDlq(stack, 'DeliveryDlq', { routing, alarmTopic }),
    };
    const scopes = { kinds: ['db-instance' as const], extraRegions: [], sharingKeyArn: 'k' };
    const permissions = loadPermissions(PERMISSIONS_FILE, routing);
    // A stack with reconcile-snapshots but not share-snapshot.
    const alone: Routing = { ...routing, functions: [fnNamed('reconcile-snapshots')] };
    assert.throws(() => stepsFor(stack, 'source', alone, { 'reconcile-snapshots': { environment: {}, queueUrls: { SHARE_QUEUE_URL: 'share-snapshot' } } },
      common, scopes, permissions),
    /^Error: the source stack sets reconcile-snapshots's SHARE_QUEUE_URL to the queue of "share-snapshot", which is not another step of this stack \(reconcile-snapshots\)$/);
    assert.throws(() => stepsFor(stack, 'source', alone, { 'reconcile-snapshots': { environment: {}, queueUrls: { SHARE_QUEUE_URL: 'reconcile-snapshots' } } },
      common, scopes, permissions), /sets reconcile-snapshots's SHARE_QUEUE_URL to the queue of "reconcile-snapshots", which is not another step/);
    const pair: Routing = { ...routing, functions: [fnNamed('share-snapshot'), fnNamed('reconcile-snapshots')] };
    assert.throws(() => stepsFor(stack, 'source', pair, {
      'share-snapshot': { environment: share, queueUrls: { RECONCILE_QUEUE_URL: 'reconcile-snapshots' } },
      'reconcile-snapshots': { environment: {}, queueUrls: { SHARE_QUEUE_URL: 'share-snapshot' } },
    }, common, scopes, permissions), /^Error: the source stack's steps name each other's queues in a cycle: share-snapshot, reconcile-snapshots$/);
  });

  test('refuses a step the contract does not know, and a platform variable it does not declare', () => {
    const { 'share-snapshot': _, ...functions } = contract.functions;
    assert.throws(() => build('share-snapshot', share, { ...contract, functions }),
      /step share-snapshot: shared\/environment\.json declares no variables for it/);
    const common = contract.common.filter((v) => v.name !== 'DLQ_URL');
    assert.throws(() => build('share-snapshot', share, { ...contract, common }),
      /step share-snapshot: the Step construct sets DLQ_URL, which shared\/environment\.json does not declare for it/);
  });

  test('loading refuses a malformed contract', () => {
    const raw = JSON.parse(fs.readFileSync(ENVIRONMENT_FILE, 'utf8'));
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'snapferry-env-')), 'environment.json');
    const load = (mutate: (c: any) => void) => {
      const c = structuredClone(raw);
      mutate(c);
      fs.writeFileSync(file, JSON.stringify(c));
      return () => loadEnvironment(file);
    };
    assert.doesNotThrow(load(() => {}));
    assert.throws(load((c) => c.functions.restore.push({ ...c.common[0] })), /QUEUE_URL is declared twice for restore/);
    const named = (vars: any[], name: string) => vars.find((v) => v.name === name);
    assert.throws(load((c) => { named(c.functions.restore, 'TARGET_KMS_KEY_ARN').default = 'k'; }),
      /"TARGET_KMS_KEY_ARN": a required variable cannot have a default/);
    assert.throws(load((c) => { named(c.common, 'RECHECK_SECONDS').required = 'no'; }),
      /"RECHECK_SECONDS": required and platform must be true or false/);
    assert.throws(load((c) => { c.functions.restore.push({ ...named(c.common, 'QUEUE_URL'), name: 'queue_url' }); }),
      /"queue_url": name must be an UPPER_SNAKE_CASE string/);
  });
});
