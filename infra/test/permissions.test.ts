// Every step's role must grant exactly what shared/permissions.json (the table the local host
// runs each step's role from too) gives it, plus what CDK adds on its own for the log group and
// the SQS event source: nothing more, nothing less. And a malformed table fails synth.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { Config, Kind } from '../lib/config';
import { DATA_CHECK_STEP } from '../lib/data-checks';
import { lambdaVpcAccess } from '../lib/iam';
import { forKinds, loadPermissions, Permissions, PERMISSIONS_FILE, renderStep } from '../lib/permissions';
import { functionName, RoutingFunction } from '../lib/routing';
import { ebsConfig, exampleConfig, list, newApp, only, routing, statementsOf, synthExample, templateFor } from './helpers';

const permissions = loadPermissions(PERMISSIONS_FILE, routing);
const copyOf = (): Permissions => structuredClone(permissions);

/** The example plus a second source in another region: the copy role's via-rds statements split per region. */
function twoRegionConfig(): Config {
  const c = exampleConfig();
  c.sources.push({ ...c.sources[0], account: '333333333333', region: 'us-east-1' });
  return c;
}
/** The example with source data checks: share-snapshot in the source's VPC, reading RDS's master secrets. */
function sourceDataConfig(): Config {
  const c = exampleConfig();
  c.sources[0].dataChecks = {
    databases: [{ resources: '.*' }], timeoutSeconds: 10, vpcId: 'vpc-0123456789abcdef0', subnetIds: ['subnet-0123456789abcdef0'], databaseSecurityGroupId: 'sg-0123456789abcdef0',
  };
  return c;
}
const configs: Record<string, Config> = {
  example: exampleConfig(), 'two source regions': twoRegionConfig(), 'ebs source': ebsConfig(), 'source data checks': sourceDataConfig(),
};
const synths = Object.fromEntries(Object.entries(configs).map(([name, c]) => [name, synthExample(c)]));
/** The kinds the stack of `fn` handles in `c`: the first source's, or the backup account's. */
const kindsOf = (c: Config, fn: RoutingFunction): Kind[] => (fn.account === 'source' ? c.sources[0].kinds : c.target.kinds);

/** What CDK grants by itself: log writes to the step's group, and the event source's polling (SqsEventSource). */
const cdkGrants = (p: Permissions) => [
  ...['logs:CreateLogStream', 'logs:PutLogEvents'].map((a) => `(log group) ${a}`),
  // CDK's grantConsumeMessages adds sqs:GetQueueUrl to what the mapping polls with.
  ...[...p.event_source.flatMap((s) => s.actions), 'sqs:GetQueueUrl'].map((a) => `(event source) ${a}`),
];

/**
 * What Lambda needs on the role of a function it attaches to a VPC (the restore step with data
 * checks): lambdaVpcAccess's statements, "<sid>: <action>". data-checks.test.ts checks what they allow.
 */
const lambdaVpcGrants = (): string[] => {
  const stack = new Stack(newApp(), 'Probe', { env: { account: '222222222222', region: 'eu-west-1' } });
  return lambdaVpcAccess(stack, { vpcId: 'vpc-1', subnetIds: ['subnet-1'], securityGroupId: 'sg-1' })
    .flatMap((st) => { const j = st.toStatementJson(); return list<string>(j.Action).map((a) => `${j.Sid}: ${a}`); });
};
/** Whether `fn`'s function runs in a VPC under `c`: the restore step with data checks, share-snapshot with source data checks. */
const inVpc = (c: Config, fn: RoutingFunction) => (fn.name === DATA_CHECK_STEP && c.target.restoreTest.dataChecks !== undefined)
  || (fn.name === 'share-snapshot' && c.sources[0].dataChecks !== undefined);
/** The scope that renders to nothing, and so no statement, without source data checks. */
const SOURCE_SECRETS = 'secretsmanager:source-database-secrets';

/**
 * "<sid>: <action>" for every action the step's role has, against permissions.json (the
 * statements for the stack's `kinds`); CDK's own statements (no sid) are named by their
 * resource. Differences both ways, as messages. Assumes every scope renders to something
 * (extraRegions non-empty), as in the example, but the source secrets' one, which renders only
 * with source data checks (`sourceData`).
 */
function differences(t: Template, fn: RoutingFunction, p: Permissions, kinds: readonly Kind[], vpc = false, sourceData = false): string[] {
  const declaredStatements = [...p.every_step, ...p.steps[fn.name]].filter((st) => forKinds(st, kinds))
    .filter((st) => sourceData || !st.resources.includes(SOURCE_SECRETS));
  const declared = new Set([...declaredStatements.flatMap((s) => s.actions.map((a) => `${s.sid}: ${a}`)), ...cdkGrants(p), ...(vpc ? lambdaVpcGrants() : [])]);
  const queue = only(t, 'AWS::SQS::Queue', { QueueName: fn.queue }).id;
  const logGroup = only(t, 'AWS::Logs::LogGroup', { LogGroupName: `/aws/lambda/${functionName(fn)}` }).id;
  // "<sid>: " for a statement of the table, "(log group) " or "(event source) " for CDK's own.
  const prefix = (st: { Sid?: string; Resource: unknown }) => {
    if (st.Sid !== undefined) {
      // A via-rds statement is split per region, the region appended to its sid (SourceSharingKeysUseEuWest1).
      const base = declaredStatements.find((s) => st.Sid === s.sid || (st.Sid!.startsWith(s.sid) && /^([A-Z][a-z]+)+\d+$/.test(st.Sid!.slice(s.sid.length))));
      return `${base?.sid ?? st.Sid}: `;
    }
    const r = JSON.stringify(st.Resource);
    if (r === JSON.stringify({ 'Fn::GetAtt': [logGroup, 'Arn'] })) return '(log group) ';
    if (r === JSON.stringify({ 'Fn::GetAtt': [queue, 'Arn'] })) return '(event source) ';
    return `(no sid, on ${r}) `;
  };
  const granted = new Set(statementsOf(t, functionName(fn)).flatMap((st) => list(st.Action).map((a) => prefix(st) + a)));
  return [
    ...[...granted].filter((g) => !declared.has(g)).map((g) => `${fn.name} grants ${g}, which permissions.json does not`),
    ...[...declared].filter((d) => !granted.has(d)).map((d) => `${fn.name} lacks ${d}, which permissions.json gives it`),
  ];
}

describe('shared/permissions.json', () => {
  for (const [name, s] of Object.entries(synths)) {
    for (const fn of routing.functions) {
      const vpc = inVpc(configs[name], fn);
      test(`${name}: ${fn.name}'s role grants exactly permissions.json (every_step and its own, for its kinds) plus CDK's log and event source grants${vpc ? ', and Lambda\'s VPC access (data checks)' : ''}`, () => {
        const sourceData = configs[name].sources[0].dataChecks !== undefined;
        assert.deepEqual(differences(templateFor(s, fn.account), fn, permissions, kindsOf(configs[name], fn), vpc, sourceData), []);
      });
    }
  }

  test('each role has the event source\'s actions (permissions.json event_source) on its own queue', () => {
    const t = (fn: RoutingFunction) => templateFor(synths.example, fn.account);
    for (const fn of routing.functions) {
      const queue = only(t(fn), 'AWS::SQS::Queue', { QueueName: fn.queue }).id;
      const onQueue = statementsOf(t(fn), functionName(fn))
        .filter((st) => JSON.stringify(st.Resource) === JSON.stringify({ 'Fn::GetAtt': [queue, 'Arn'] }))
        .flatMap((st) => list(st.Action));
      for (const a of permissions.event_source.flatMap((s) => s.actions)) assert.ok(onQueue.includes(a), `${fn.name}: ${a}`);
    }
  });

  test('the comparison catches a change: one action removed from a copy of the table', () => {
    const p = copyOf();
    const st = p.steps['copy-shared-snapshot'].find((s) => s.sid === 'Describe')!;
    st.actions = st.actions.filter((a) => a !== 'rds:DescribeDBClusterSnapshots');
    const fn = routing.functions.find((f) => f.name === 'copy-shared-snapshot')!;
    const kinds = kindsOf(configs.example, fn);
    assert.deepEqual(differences(synths.example.target, fn, loadPermissions(p, routing), kinds, inVpc(configs.example, fn)),
      ['copy-shared-snapshot grants Describe: rds:DescribeDBClusterSnapshots, which permissions.json does not']);
    // And the other way: an action the table gives that the role does not have.
    const q = copyOf();
    q.every_step.find((s) => s.sid === 'OwnQueues')!.actions.push('sqs:PurgeQueue');
    assert.ok(differences(synths.example.target, fn, loadPermissions(q, routing), kinds, inVpc(configs.example, fn))
      .includes('copy-shared-snapshot lacks OwnQueues: sqs:PurgeQueue, which permissions.json gives it'));
  });
});

describe('kinds: a statement for some resource kinds only where the stack handles one of them', () => {
  // Lambda's own network interface calls (a function in a VPC: restore with data checks) are no EBS permission.
  const lambdaVpcSids = new Set(lambdaVpcGrants().map((g) => g.split(':')[0]));
  const ec2Statements = (t: Template, fnName: string) => statementsOf(t, fnName).filter((st) => !lambdaVpcSids.has(st.Sid ?? '')
    && (list(st.Action).some((a) => a.startsWith('ec2:')) || JSON.stringify(st.Condition ?? {}).includes('ec2.')));
  const ebsSids = (step: string) => permissions.steps[step].filter((st) => st.kinds?.includes('ebs')).map((st) => st.sid);

  test('every EC2 statement of permissions.json is for kind ebs, and every step has some', () => {
    for (const fn of routing.functions) {
      assert.ok(ebsSids(fn.name).length > 0, fn.name);
      for (const st of permissions.steps[fn.name]) {
        const ec2 = st.actions.some((a) => a.startsWith('ec2:')) || (st.conditions ?? []).includes('via-ec2');
        assert.equal(ec2, st.kinds?.includes('ebs') ?? false, `${fn.name}.${st.sid}`);
      }
    }
  });

  test('a source stack with kinds [db-instance] renders no EC2 statement (and no EBS grant in its sharing key policy)', () => {
    const c = exampleConfig();
    c.sources[0].kinds = ['db-instance'];
    const s = synthExample(c);
    for (const fn of routing.functions.filter((f) => f.account === 'source')) {
      assert.deepEqual(ec2Statements(s.source, functionName(fn)), [], fn.name);
      assert.deepEqual(differences(s.source, fn, permissions, ['db-instance']), [], fn.name);
    }
    const keyPolicy = JSON.stringify(only(s.source, 'AWS::KMS::Key', {}).Properties.KeyPolicy);
    assert.ok(!keyPolicy.includes('ec2.'), keyPolicy);
  });

  test('a source stack with kinds [ebs] renders every EBS statement of its steps', () => {
    const c = exampleConfig();
    c.sources[0].kinds = ['ebs'];
    const s = synthExample(c);
    for (const fn of routing.functions.filter((f) => f.account === 'source')) {
      const sids = statementsOf(s.source, functionName(fn)).map((st) => st.Sid);
      for (const sid of ebsSids(fn.name)) assert.ok(sids.includes(sid), `${fn.name}: ${sid}`);
      assert.deepEqual(differences(s.source, fn, permissions, ['ebs']), [], fn.name);
    }
  });

  test('target.kinds: the backup account without ebs renders no EC2 statement; by default it has them all', () => {
    const c = exampleConfig();
    c.target.kinds = ['db-instance', 'db-cluster'];
    const s = synthExample(c);
    for (const fn of routing.functions.filter((f) => f.account === 'target')) {
      assert.deepEqual(ec2Statements(s.target, functionName(fn)), [], fn.name);
      const sids = statementsOf(synths.example.target, functionName(fn)).map((st) => st.Sid);
      for (const sid of ebsSids(fn.name)) assert.ok(sids.includes(sid), `${fn.name} (default kinds): ${sid}`);
    }
  });
});

describe('loadPermissions refuses a malformed table, naming the mistake', () => {
  const refuses = (change: (p: Permissions) => void, message: RegExp) => {
    const p = copyOf();
    change(p);
    assert.throws(() => loadPermissions(p, routing), message);
  };

  test('the shared table is valid', () => {
    assert.ok(loadPermissions(PERMISSIONS_FILE, routing));
  });

  test('an unknown scope', () => refuses((p) => { p.steps.restore[0].resources.push('rds:everything'); },
    /^Error: permissions: steps\.restore "Describe": unknown scope "rds:everything" \(not in "scopes"\)$/));

  test('a scope declared but not rendered by the stacks', () => refuses((p) => {
    p.scopes['rds:everything'] = 'all of it';
    p.steps.restore[0].resources.push('rds:everything');
  }, /scope "rds:everything" has no rendering in infra\/lib\/permissions\.ts/));

  test('scope account ("*") next to another scope', () => refuses((p) => { p.steps['create-snapshot'].find((s) => s.sid === 'Quotas')!.resources.push('rds:all'); },
    /^Error: permissions: steps\.create-snapshot "Quotas": scope "account" \("\*"\) must be the statement's only scope$/));

  test('an unknown condition', () => refuses((p) => { p.every_step[0].conditions = ['tag:whatever']; },
    /^Error: permissions: every_step "OwnQueues": unknown condition "tag:whatever" \(not in "conditions"\)$/));

  test('a step routing.json does not have', () => refuses((p) => { p.steps['delete-everything'] = []; },
    /^Error: permissions: unknown step "delete-everything" \(routing.json has create-snapshot, share-snapshot, copy-shared-snapshot, restore, expire-snapshots, expire-copies, reconcile-snapshots, reconcile-copies\)$/));

  test('a routing.json step without permissions', () => refuses((p) => { delete p.steps.restore; },
    /^Error: permissions: no permissions for routing.json's restore \(add it under "steps"\)$/));

  test('a sid twice in one role', () => refuses((p) => { p.steps.restore[1].sid = 'OwnQueues'; },
    /^Error: permissions: sid OwnQueues twice in the role of restore \(every_step included\)$/));

  test('bad kinds', () => {
    refuses((p) => { (p.steps.restore[0] as any).kinds = ['s3']; },
      /^Error: permissions: steps\.restore "Describe": kinds must be a non-empty list of distinct kinds \(db-instance, db-cluster, ebs\), not \["s3"\]$/);
    refuses((p) => { (p.steps.restore[0] as any).kinds = []; }, /steps\.restore "Describe": kinds must be a non-empty list/);
    refuses((p) => { (p.steps.restore[0] as any).kinds = ['ebs', 'ebs']; }, /steps\.restore "Describe": kinds must be a non-empty list of distinct kinds/);
    refuses((p) => { (p.steps.restore[0] as any).kinds = 'ebs'; }, /steps\.restore "Describe": kinds must be a non-empty list/);
  });

  test('scope ec2:all ("*") next to another scope', () => refuses((p) => { p.steps.restore.find((s) => s.sid === 'EbsDescribe')!.resources.push('ec2:volumes'); },
    /^Error: permissions: steps\.restore "EbsDescribe": scope "ec2:all" \("\*"\) must be the statement's only scope$/));

  test('via-rds and via-ec2 on one statement', () => refuses((p) => { p.steps.restore.find((s) => s.sid === 'EbsTargetKeyUse')!.conditions!.push('via-rds'); },
    /^Error: permissions: steps\.restore "EbsTargetKeyUse": via-rds and via-ec2 cannot both hold \(one kms:ViaService\)$/));

  test('bad regions and actions', () => {
    refuses((p) => { (p.steps.restore[0] as any).regions = 'everywhere'; }, /regions must be "home" or "pipeline"/);
    refuses((p) => { p.steps.restore[0].actions = ['DescribeDBInstances']; }, /actions must be a non-empty list of service:Action/);
  });

  test('a scope the stack does not have fails synth, naming the step and statement', () => {
    const stack = new Stack(newApp(), 'Probe', { env: { account: '222222222222', region: 'eu-west-1' } });
    const p = copyOf();
    p.steps.restore.push({ sid: 'Share', actions: ['kms:Decrypt'], resources: ['kms:sharing-key'], why: 'probe' });
    assert.throws(() => renderStep(stack, p, 'restore', {
      kinds: ['db-instance'], extraRegions: [], targetKeyArn: 'k', restoreSubnetGroup: 'g', queueArn: 'q', dlqArn: 'd', pipelineBusArn: 'b', stepQueueArns: {},
    }),
      /^Error: permissions\.json restore\.Share: needs the sharing key, which this stack does not have$/);
  });

  test('another step\'s queue the stack does not have fails synth, naming the step and statement', () => {
    const stack = new Stack(newApp(), 'Probe', { env: { account: '222222222222', region: 'eu-west-1' } });
    const scopes = {
      kinds: ['db-instance' as const], extraRegions: [], queueArn: 'q', dlqArn: 'd', pipelineBusArn: 'b', copyLedger: routing.copy_ledger,
      stepQueueArns: { 'copy-shared-snapshot': 'arn:aws:sqs:eu-west-1:222222222222:snapferry-copy-shared-snapshot' },
    };
    assert.throws(() => renderStep(stack, permissions, 'reconcile-copies', scopes),
      /^Error: permissions\.json reconcile-copies\.Repair: needs restore's queue, which this stack does not have$/);
    // With both, exactly those two queues, for SendMessage only.
    const both = { ...scopes, stepQueueArns: { ...scopes.stepQueueArns, restore: 'arn:aws:sqs:eu-west-1:222222222222:snapferry-restore' } };
    const repair = renderStep(stack, permissions, 'reconcile-copies', both).map((st) => stack.resolve(st.toStatementJson())).find((st) => st.Sid === 'Repair');
    assert.deepEqual(repair, { Sid: 'Repair', Effect: 'Allow', Action: 'sqs:SendMessage', Resource: Object.values(both.stepQueueArns) });
  });
});
