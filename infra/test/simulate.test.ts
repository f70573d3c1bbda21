// The synthesized policies, evaluated the way IAM evaluates them (@cloud-copilot/iam-simulate):
// each step may make the calls it makes, with the ARNs and context keys they carry, and the same
// calls on something that is not snapferry's are refused. The other tests read the policies'
// text; these ask whether a given request is allowed, which is what a wrong condition operator,
// a resource that never matches or a missing key policy statement gets wrong.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import { runSimulation } from '@cloud-copilot/iam-simulate';
import { Template } from 'aws-cdk-lib/assertions';
import { forwarderRoleArn } from '../lib/iam';
import { loadPermissions, PERMISSIONS_FILE } from '../lib/permissions';
import { functionName } from '../lib/routing';
import { TARGET_KEY_ALIAS } from '../lib/target-key';
import { ebsConfig, only, resources, routing, stepRole, synthExample } from './helpers';

// The example with the source backing up EBS volumes too, and measuring its databases
// (sources[].dataChecks), so every statement of every step is rendered.
const config = ebsConfig();
const SOURCE_SECRET = `arn:aws:secretsmanager:${config.sources[0].region}:111111111111:secret:orders-reader-AbCdEf`;
config.sources[0].dataChecks = {
  databases: [{ resources: '^prod-orders$', secret: SOURCE_SECRET }, { resources: '.*' }],
  timeoutSeconds: 10,
  vpcId: 'vpc-0123456789abcdef0',
  subnetIds: ['subnet-0123456789abcdef0'],
  databaseSecurityGroupId: 'sg-0123456789abcdef0',
};
const synth = synthExample(config);
const SRC = config.sources[0].account; // 111111111111
const BAK = config.target.account; // 222222222222
const OTHER = '333333333333'; // neither: not an allowlisted source
const SR = config.sources[0].region;
const R = config.target.region;
const XR = config.target.extraRegions[0];
assert.deepEqual([SRC, BAK], ['111111111111', '222222222222'], 'the cases below assume the example accounts');

type Policy = { Version: string; Statement: unknown[] };
type Principal = { arn: string; policies: { name: string; policy: Policy }[] };
const policy = (Statement: unknown[]): Policy => ({ Version: '2012-10-17', Statement });

/**
 * Resolves the CloudFormation intrinsics a policy holds into the values CloudFormation would
 * give them in `account`/`region`: made up (key ids), but shaped as AWS shapes them.
 */
function resolver(t: Template, account: string, region: string): (v: unknown) => any {
  const all = t.toJSON().Resources as Record<string, any>;
  const arn = (service: string, rest: string) => `arn:aws:${service}:${region}:${account}:${rest}`;
  const getAtt = (id: string, att: string): string => {
    const r = all[id];
    const p = r?.Properties ?? {};
    switch (`${r?.Type}.${att}`) {
      case 'AWS::SQS::Queue.Arn': return arn('sqs', p.QueueName);
      case 'AWS::Events::EventBus.Arn': return arn('events', `event-bus/${p.Name}`);
      case 'AWS::KMS::Key.Arn': return arn('kms', `key/${keyId(account, region, id)}`);
      case 'AWS::Logs::LogGroup.Arn': return arn('logs', `log-group:${p.LogGroupName}:*`);
      case 'AWS::IAM::Role.Arn': return `arn:aws:iam::${account}:role/${p.RoleName ?? id}`;
      case 'AWS::EC2::SecurityGroup.GroupId': return ec2Id('sg', account, region, id);
      default: throw new Error(`no value for Fn::GetAtt ${id}.${att} (${r?.Type})`);
    }
  };
  const ref = (id: string): string => {
    const pseudo: Record<string, string> = { 'AWS::Partition': 'aws', 'AWS::AccountId': account, 'AWS::Region': region, 'AWS::URLSuffix': 'amazonaws.com' };
    if (id in pseudo) return pseudo[id];
    const r = all[id];
    switch (r?.Type) {
      case 'AWS::SQS::Queue': return `https://sqs.${region}.amazonaws.com/${account}/${r.Properties.QueueName}`;
      case 'AWS::Events::EventBus': return r.Properties.Name;
      case 'AWS::RDS::DBSubnetGroup': return r.Properties.DBSubnetGroupName;
      case 'AWS::EC2::Subnet': return ec2Id('subnet', account, region, id);
      case 'AWS::EC2::VPC': return ec2Id('vpc', account, region, id);
      default: throw new Error(`no value for Ref ${id} (${r?.Type})`);
    }
  };
  const resolve = (v: unknown): any => {
    if (Array.isArray(v)) return v.map(resolve);
    if (v === null || typeof v !== 'object') return v;
    const entries = Object.entries(v);
    if (entries.length === 1) {
      const [[k, x]] = entries as [string, any][];
      if (k === 'Ref') return ref(x);
      if (k === 'Fn::GetAtt') return getAtt(x[0], x[1]);
      if (k === 'Fn::Join') return (resolve(x[1]) as string[]).join(x[0]);
      if (k.startsWith('Fn::')) throw new Error(`cannot resolve ${k}`);
    }
    return Object.fromEntries(entries.map(([k, x]) => [k, resolve(x)]));
  };
  return resolve;
}

/** An EC2 id as EC2 makes them (`subnet-` and 17 hex digits), the same for the same resource wherever it is referred to. */
function ec2Id(prefix: string, account: string, region: string, logicalId: string): string {
  return `${prefix}-${createHash('sha256').update(`${account}/${region}/${logicalId}`).digest('hex').slice(0, 17)}`;
}

/** A key id as KMS makes them (a UUID), the same for the same key wherever it is referred to. */
function keyId(account: string, region: string, logicalId: string): string {
  const h = createHash('sha256').update(`${account}/${region}/${logicalId}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

const stacks = [
  { t: synth.source, account: SRC, region: SR },
  { t: synth.target, account: BAK, region: R },
  ...synth.regions.map((t, i) => ({ t, account: BAK, region: config.target.extraRegions[i] })),
].map((s) => ({ ...s, resolve: resolver(s.t, s.account, s.region) }));
const [source, target] = stacks;

/** The resolved identity policies attached to a role of a stack, and the role's ARN. */
function rolePrincipal(s: typeof source, roleId: string): Principal {
  const policies = Object.entries(resources(s.t, 'AWS::IAM::Policy'))
    .filter(([, p]) => p.Properties.Roles.some((r: any) => r.Ref === roleId))
    .map(([name, p]) => ({ name, policy: s.resolve(p.Properties.PolicyDocument) as Policy }));
  return { arn: s.resolve({ 'Fn::GetAtt': [roleId, 'Arn'] }), policies };
}

/** Another principal whose own policies allow everything: only the resource's policy decides. */
const admin = (arn: string): Principal => ({ arn, policies: [{ name: 'admin', policy: policy([{ Effect: 'Allow', Action: '*', Resource: '*' }]) }] });

const principals: Record<string, Principal> = {
  ...Object.fromEntries(routing.functions.map((fn) => {
    const s = fn.account === 'source' ? source : target;
    return [fn.name, rolePrincipal(s, stepRole(s.t, functionName(fn)))];
  })),
  forwarder: rolePrincipal(source, only(source.t, 'AWS::IAM::Role', { RoleName: `snapferry-forward-${SR}` }).id),
  'source admin': admin(`arn:aws:iam::${SRC}:role/admin`),
  'backup admin': admin(`arn:aws:iam::${BAK}:role/admin`),
  'other admin': admin(`arn:aws:iam::${OTHER}:role/admin`),
  'other forwarder': admin(forwarderRoleArn('aws', OTHER, SR)),
  // The backup account's role for the copied_back rules.
  'backup forwarder': rolePrincipal(target, only(target.t, 'AWS::IAM::Role', { RoleName: `snapferry-forward-${R}` }).id),
};
assert.equal(principals.forwarder.arn, forwarderRoleArn('aws', SRC, SR));
assert.equal(principals['backup forwarder'].arn, forwarderRoleArn('aws', BAK, R));

// The resources' own policies, as deployed: every key's key policy, both accounts' bus policies.
const keyArn = (s: typeof source) => s.resolve({ 'Fn::GetAtt': [only(s.t, 'AWS::KMS::Key', {}).id, 'Arn'] });
const resourcePolicies = new Map<string, Policy>(stacks.flatMap((s) => Object.keys(resources(s.t, 'AWS::KMS::Key')).map((id) =>
  [s.resolve({ 'Fn::GetAtt': [id, 'Arn'] }), s.resolve(resources(s.t, 'AWS::KMS::Key')[id].Properties.KeyPolicy)] as [string, Policy])));
const sharingKey = keyArn(source);
const targetKey = keyArn(target);
const extraKey = keyArn(stacks[2]);
const targetBus = target.resolve({ 'Fn::GetAtt': [only(target.t, 'AWS::Events::EventBus', { Name: routing.pipeline_bus }).id, 'Arn'] });
resourcePolicies.set(targetBus, policy(Object.values(resources(target.t, 'AWS::Events::EventBusPolicy')).map((p) => target.resolve(p.Properties.Statement))));
const sourceBus = source.resolve({ 'Fn::GetAtt': [only(source.t, 'AWS::Events::EventBus', { Name: routing.pipeline_bus }).id, 'Arn'] });
resourcePolicies.set(sourceBus, policy(Object.values(resources(source.t, 'AWS::Events::EventBusPolicy')).map((p) => source.resolve(p.Properties.Statement))));

/**
 * EBS snapshot ARNs carry no account (arn:aws:ec2:<region>::snapshot/<id>): the owner of each
 * snapshot a case names, by ARN (ebsSnapshot registers it).
 */
const snapshotOwners = new Map<string, string>();
const ownerOf = (resource: string): string | undefined => resource.split(':')[4] || snapshotOwners.get(resource);

/** The policy of a resource no stack creates: a key with the default key policy, or another account's snapshot shared with the backup account. */
function standInPolicy(resource: string): Policy | undefined {
  const [, , service] = resource.split(':');
  const account = ownerOf(resource);
  // Any other key of that account (aws/rds or a database's own key): the default key policy.
  if (service === 'kms') return policy([{ Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${account}:root` }, Action: 'kms:*', Resource: '*' }]);
  // Another account's snapshot, shared (restore attribute) with the backup account: RDS lets that account copy it.
  if (service === 'rds' && account !== BAK && /:(cluster-)?snapshot:/.test(resource)) {
    return policy([{ Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${BAK}:root` }, Action: ['rds:CopyDBSnapshot', 'rds:CopyDBClusterSnapshot'], Resource: '*' }]);
  }
  // Another account's EBS snapshot whose createVolumePermission names the backup account: EC2 lets it copy it (or create a volume from it).
  if (service === 'ec2' && account !== BAK && /::snapshot\//.test(resource)) {
    return policy([{ Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${BAK}:root` }, Action: ['ec2:CopySnapshot', 'ec2:CreateVolume'], Resource: '*' }]);
  }
  return undefined;
}

type Context = Record<string, string | string[]>;
/** [who, expected, action, resource, request context, known gap: why the policy refuses it today although the step makes the call] */
type Case = [who: string, want: 'allow' | 'deny', action: string, resource: string, context?: Context, gap?: string];

const rds = (account: string, type: string, name: string, region = account === BAK ? R : SR) => `arn:aws:rds:${region}:${account}:${type}:${name}`;
const src = (type: string, name: string) => rds(SRC, type, name);
const bak = (type: string, name: string, region = R) => rds(BAK, type, name, region);
const queue = (name: string, account: string, region: string) => `arn:aws:sqs:${region}:${account}:${name}`;
/** A key of the source account a database is encrypted with (aws/rds or its own). */
const dbKey = `arn:aws:kms:${SR}:${SRC}:key/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d`;

const TAG: Context = { 'aws:RequestTag/snapferry:managed': 'true' }; // creates something tagged as ours
const OURS: Context = { 'aws:ResourceTag/snapferry:managed': 'true' }; // acts on something tagged as ours
const TEST: Context = { 'aws:RequestTag/snapferry:restore-test': 'true' };
const IS_TEST: Context = { 'aws:ResourceTag/snapferry:restore-test': 'true' };
const GRANT: Context = { 'kms:GrantIsForAWSResource': 'true' };
const via = (region: string): Context => ({ 'kms:ViaService': `rds.${region}.amazonaws.com` });
const viaEc2 = (region: string): Context => ({ 'kms:ViaService': `ec2.${region}.amazonaws.com` });
/** A service other than RDS and EC2 using a key on the caller's behalf. */
const viaS3 = (region: string): Context => ({ 'kms:ViaService': `s3.${region}.amazonaws.com` });
const created = (by: string): Context => ({ 'ec2:CreateAction': by });
const window = (days: number): Context => ({ 'kms:ScheduleKeyDeletionPendingWindowInDays': String(days) });

/** An EBS snapshot: its ARN has no account, so the owner is remembered for the simulation. */
function ebsSnapshot(id: string, owner: string, region: string): string {
  const arn = `arn:aws:ec2:${region}::snapshot/${id}`;
  assert.ok((snapshotOwners.get(arn) ?? owner) === owner, `${arn} owned twice`);
  snapshotOwners.set(arn, owner);
  return arn;
}
const ec2 = (account: string, region: string, type: 'volume' | 'instance', id: string) => `arn:aws:ec2:${region}:${account}:${type}/${id}`;
const srcVolume = ec2(SRC, SR, 'volume', 'vol-0a1b2c3d4e5f60001');
const srcInstance = ec2(SRC, SR, 'instance', 'i-0a1b2c3d4e5f60001');
/** In the source account: a snapshot someone else took (DLM, AWS Backup, by hand), snapferry's new snapshot or copy. */
const srcForeignSnap = ebsSnapshot('snap-0000000000000f001', SRC, SR);
const srcNewSnap = ebsSnapshot('snap-0000000000000a001', SRC, SR);
/** Shared by the allowlisted source; by a non-allowlisted account in a region no source is in. */
const sharedSnap = srcNewSnap;
const otherSnap = ebsSnapshot('snap-0000000000000e001', OTHER, 'us-east-1');
/** In the backup account: our copy at home and in the extra region; one that is not ours. */
const bakCopy = ebsSnapshot('snap-0000000000000b001', BAK, R);
const bakExtraCopy = ebsSnapshot('snap-0000000000000b002', BAK, XR);
const bakForeignSnap = ebsSnapshot('snap-0000000000000b0f1', BAK, R);
/** Snapshots tagged as ours, in a region neither stack covers: no step may delete them. */
const srcFarSnap = ebsSnapshot('snap-0000000000000a0e1', SRC, 'us-east-1');
const bakFarCopy = ebsSnapshot('snap-0000000000000b0e1', BAK, 'us-east-1');
const testVolume = ec2(BAK, R, 'volume', 'vol-0b1b2c3d4e5f60001');
const bakVolume = ec2(BAK, R, 'volume', 'vol-0b1b2c3d4e5f6000f');
const alias = (name: string): Context => ({ 'kms:ResourceAliases': [name] });
const event = (detailType: string): Context => ({ 'events:source': [routing.source], 'events:detail-type': [detailType] });

/** The steps a reconcile step repairs through, by a message in their queue (permissions.json 'sqs:share-queue', 'sqs:copy-and-restore-queues'). */
const repairs: Record<string, string[]> = {
  'reconcile-snapshots': ['share-snapshot'],
  'reconcile-copies': ['copy-shared-snapshot', 'restore'],
};
/** A step's queue (or, with `-dlq`, its DLQ) where the step is: its account and home region. */
const stepQueue = (step: string, suffix = '') => {
  const fn = routing.functions.find((f) => f.name === step);
  assert.ok(fn, `routing.json has no ${step}`);
  return fn.account === 'source' ? queue(`${fn.queue}${suffix}`, SRC, SR) : queue(`${fn.queue}${suffix}`, BAK, R);
};

/** The restore-test VPC, its subnets and security groups, as the target stack names them (data checks). */
const ec2Arn = (rest: string) => `arn:aws:ec2:${R}:${BAK}:${rest}`;
const eni = (id: string) => ec2Arn(`network-interface/${id}`);
const restoreTestVpc = target.resolve({ 'Fn::Join': ['', [ec2Arn('vpc/'), { Ref: only(target.t, 'AWS::EC2::VPC', {}).id }]] });
const restoreTestSubnets = Object.keys(resources(target.t, 'AWS::EC2::Subnet')).map((id) => target.resolve({ 'Fn::Join': ['', [ec2Arn('subnet/'), { Ref: id }]] }) as string);
const groupArn = (description: string) => target.resolve({ 'Fn::Join': ['', [ec2Arn('security-group/'),
  { 'Fn::GetAtt': [only(target.t, 'AWS::EC2::SecurityGroup', { GroupDescription: description }).id, 'GroupId'] }]] }) as string;
const restoreFunctionGroup = groupArn('snapferry restore function (data checks): to the restored databases and the VPC endpoints only');
/** The restored databases' group: Lambda may not put the function's interfaces in it. */
const restoreTestGroup = groupArn('snapferry restore tests: no ingress, no egress');
const IN_VPC: Context = { 'ec2:Vpc': restoreTestVpc };
assert.equal(restoreTestSubnets.length, 2);

/** The copy ledger (routing.json copy_ledger) where it is, in the backup account's home region; the same name elsewhere is not it. */
const table = (name: string, account = BAK, region = R) => `arn:aws:dynamodb:${region}:${account}:table/${name}`;
const ledger = table(routing.copy_ledger);

const cases: Case[] = [
  // create-snapshot (source account): reads anything, creates only tagged snapferry- snapshots.
  ['create-snapshot', 'allow', 'rds:DescribeDBInstances', src('db', 'prod-orders')],
  ['create-snapshot', 'allow', 'rds:DescribeDBClusters', src('cluster', 'prod-billing')],
  ['create-snapshot', 'allow', 'rds:DescribeDBSnapshots', src('snapshot', 'snapferry-prod-orders-1')],
  ['create-snapshot', 'allow', 'rds:DescribeDBClusterSnapshots', src('cluster-snapshot', 'snapferry-prod-billing-1')],
  ['create-snapshot', 'allow', 'rds:DescribeAccountAttributes', '*'],
  ['create-snapshot', 'allow', 'rds:CreateDBSnapshot', src('db', 'prod-orders'), TAG],
  ['create-snapshot', 'allow', 'rds:CreateDBSnapshot', src('snapshot', 'snapferry-prod-orders-1'), TAG],
  ['create-snapshot', 'allow', 'rds:CreateDBClusterSnapshot', src('cluster', 'prod-billing'), TAG],
  ['create-snapshot', 'allow', 'rds:CreateDBClusterSnapshot', src('cluster-snapshot', 'snapferry-prod-billing-1'), TAG],
  ['create-snapshot', 'allow', 'rds:AddTagsToResource', src('snapshot', 'snapferry-prod-orders-1'), TAG],
  ['create-snapshot', 'deny', 'rds:CreateDBSnapshot', src('snapshot', 'snapferry-prod-orders-1')],
  ['create-snapshot', 'deny', 'rds:CreateDBSnapshot', src('db', 'prod-orders')],
  ['create-snapshot', 'deny', 'rds:CreateDBSnapshot', src('snapshot', 'prod-orders-manual'), TAG],
  ['create-snapshot', 'deny', 'rds:DeleteDBSnapshot', src('snapshot', 'snapferry-prod-orders-1'), OURS],
  ['create-snapshot', 'deny', 'rds:ModifyDBSnapshotAttribute', src('snapshot', 'snapferry-prod-orders-1'), OURS],
  // Quotas is on "*", which matches every resource: it grants rds:DescribeAccountAttributes and
  // nothing else, neither another action with no resource type nor one on an ARN.
  ['create-snapshot', 'deny', 'rds:DescribeEvents', '*'],
  ['create-snapshot', 'deny', 'rds:DescribeDBLogFiles', src('db', 'prod-orders')],
  ['create-snapshot', 'deny', 'rds:DeleteDBSnapshot', src('snapshot', 'prod-orders-manual')],

  // share-snapshot (source account): copies any snapshot onto the sharing key, shares only its own copies.
  ['share-snapshot', 'allow', 'rds:DescribeDBInstances', src('db', 'prod-orders')],
  ['share-snapshot', 'allow', 'rds:DescribeDBClusters', src('cluster', 'prod-billing')],
  ['share-snapshot', 'allow', 'rds:DescribeDBSnapshots', src('snapshot', 'rds:prod-orders-2025-01-01-00-05')],
  ['share-snapshot', 'allow', 'rds:DescribeDBClusterSnapshots', src('cluster-snapshot', 'snapferry-prod-billing-1')],
  ['share-snapshot', 'allow', 'rds:DescribeDBSnapshotAttributes', src('snapshot', 'snapferry-prod-orders-1')],
  ['share-snapshot', 'allow', 'rds:DescribeDBClusterSnapshotAttributes', src('cluster-snapshot', 'snapferry-prod-billing-1')],
  ['share-snapshot', 'allow', 'rds:DescribeAccountAttributes', '*'],
  ['share-snapshot', 'allow', 'rds:CopyDBSnapshot', src('snapshot', 'rds:prod-orders-2025-01-01-00-05'), TAG],
  ['share-snapshot', 'allow', 'rds:CopyDBSnapshot', src('snapshot', 'snapferry-prod-orders-1'), TAG],
  ['share-snapshot', 'allow', 'rds:CopyDBClusterSnapshot', src('cluster-snapshot', 'rds:prod-billing-2025-01-01-00-05'), TAG],
  ['share-snapshot', 'allow', 'rds:CopyDBClusterSnapshot', src('cluster-snapshot', 'snapferry-prod-billing-1'), TAG],
  ['share-snapshot', 'allow', 'rds:AddTagsToResource', src('snapshot', 'snapferry-prod-orders-1'), TAG],
  ['share-snapshot', 'allow', 'rds:ModifyDBSnapshotAttribute', src('snapshot', 'snapferry-prod-orders-1'), OURS],
  ['share-snapshot', 'allow', 'rds:ModifyDBClusterSnapshotAttribute', src('cluster-snapshot', 'snapferry-prod-billing-1'), OURS],
  ['share-snapshot', 'allow', 'kms:Decrypt', sharingKey],
  ['share-snapshot', 'allow', 'kms:Encrypt', sharingKey],
  ['share-snapshot', 'allow', 'kms:DescribeKey', sharingKey],
  ['share-snapshot', 'allow', 'kms:ReEncryptTo', sharingKey],
  ['share-snapshot', 'allow', 'kms:GenerateDataKeyWithoutPlaintext', sharingKey],
  ['share-snapshot', 'allow', 'kms:CreateGrant', sharingKey, GRANT],
  ['share-snapshot', 'allow', 'kms:Decrypt', dbKey, via(SR)],
  ['share-snapshot', 'allow', 'kms:DescribeKey', dbKey, via(SR)],
  ['share-snapshot', 'allow', 'kms:CreateGrant', dbKey, { ...via(SR), ...GRANT }],
  // Source data checks: the master secrets RDS manages (rds!...) and the configured secret, no other.
  ['share-snapshot', 'allow', 'secretsmanager:GetSecretValue', `arn:aws:secretsmanager:${SR}:${SRC}:secret:rds!db-0a1b2c3d-4e5f-AbCdEf`],
  ['share-snapshot', 'allow', 'secretsmanager:GetSecretValue', SOURCE_SECRET],
  ['share-snapshot', 'deny', 'secretsmanager:GetSecretValue', `arn:aws:secretsmanager:${SR}:${SRC}:secret:prod-api-key-AbCdEf`],
  ['share-snapshot', 'deny', 'secretsmanager:GetSecretValue', `arn:aws:secretsmanager:${SR}:${OTHER}:secret:rds!db-0a1b2c3d-4e5f-AbCdEf`],
  ['restore', 'deny', 'secretsmanager:GetSecretValue', `arn:aws:secretsmanager:${R}:${BAK}:secret:rds!db-0a1b2c3d-4e5f-AbCdEf`],
  ['share-snapshot', 'deny', 'rds:CopyDBSnapshot', src('snapshot', 'snapferry-prod-orders-1')],
  ['share-snapshot', 'deny', 'rds:AddTagsToResource', src('snapshot', 'prod-orders-manual')],
  ['share-snapshot', 'deny', 'rds:ModifyDBSnapshotAttribute', src('snapshot', 'prod-orders-manual'), OURS],
  ['share-snapshot', 'deny', 'rds:ModifyDBSnapshotAttribute', src('snapshot', 'snapferry-prod-orders-1')],
  ['share-snapshot', 'deny', 'rds:ModifyDBClusterSnapshotAttribute', src('cluster-snapshot', 'rds:prod-billing-2025-01-01-00-05'), OURS],
  ['share-snapshot', 'deny', 'kms:CreateGrant', sharingKey],
  ['share-snapshot', 'deny', 'kms:Decrypt', dbKey],
  ['share-snapshot', 'deny', 'kms:CreateGrant', dbKey, via(SR)],
  ['share-snapshot', 'deny', 'rds:DescribeEvents', '*'],
  ['share-snapshot', 'deny', 'rds:DescribeDBLogFiles', src('db', 'prod-orders')],
  ['share-snapshot', 'deny', 'rds:DeleteDBSnapshot', src('snapshot', 'prod-orders-manual')],

  // copy-shared-snapshot (backup account): copies what the allowlisted sources shared, onto the backup keys.
  ['copy-shared-snapshot', 'allow', 'rds:DescribeDBSnapshots', bak('snapshot', 'snapferry-prod-orders-1')],
  ['copy-shared-snapshot', 'allow', 'rds:DescribeDBClusterSnapshots', bak('cluster-snapshot', 'snapferry-prod-billing-1', XR)],
  ['copy-shared-snapshot', 'allow', 'rds:DescribeAccountAttributes', '*'],
  ['copy-shared-snapshot', 'allow', 'rds:CopyDBSnapshot', src('snapshot', 'snapferry-prod-orders-1'), TAG],
  ['copy-shared-snapshot', 'allow', 'rds:CopyDBSnapshot', bak('snapshot', 'snapferry-prod-orders-1'), TAG],
  ['copy-shared-snapshot', 'allow', 'rds:CopyDBSnapshot', bak('snapshot', 'snapferry-prod-orders-1', XR), TAG],
  ['copy-shared-snapshot', 'allow', 'rds:CopyDBClusterSnapshot', src('cluster-snapshot', 'snapferry-prod-billing-1'), TAG],
  ['copy-shared-snapshot', 'allow', 'rds:CopyDBClusterSnapshot', bak('cluster-snapshot', 'snapferry-prod-billing-1'), TAG],
  ['copy-shared-snapshot', 'allow', 'rds:AddTagsToResource', bak('snapshot', 'snapferry-prod-orders-1'), TAG],
  ['copy-shared-snapshot', 'allow', 'rds:AddTagsToResource', bak('snapshot', 'snapferry-prod-orders-1', XR), OURS],
  ['copy-shared-snapshot', 'allow', 'rds:DeleteDBSnapshot', bak('snapshot', 'snapferry-prod-orders-1'), OURS],
  ['copy-shared-snapshot', 'allow', 'rds:DeleteDBClusterSnapshot', bak('cluster-snapshot', 'snapferry-prod-billing-1', XR), OURS],
  ['copy-shared-snapshot', 'allow', 'kms:Decrypt', targetKey],
  ['copy-shared-snapshot', 'allow', 'kms:GenerateDataKey', targetKey],
  ['copy-shared-snapshot', 'allow', 'kms:DescribeKey', targetKey],
  ['copy-shared-snapshot', 'allow', 'kms:CreateGrant', targetKey, GRANT],
  ['copy-shared-snapshot', 'allow', 'kms:Encrypt', extraKey, alias(TARGET_KEY_ALIAS)],
  ['copy-shared-snapshot', 'allow', 'kms:DescribeKey', extraKey, alias(TARGET_KEY_ALIAS)],
  ['copy-shared-snapshot', 'allow', 'kms:CreateGrant', extraKey, { ...alias(TARGET_KEY_ALIAS), ...GRANT }],
  ['copy-shared-snapshot', 'allow', 'kms:Decrypt', sharingKey, via(SR)],
  ['copy-shared-snapshot', 'allow', 'kms:ReEncryptFrom', sharingKey, via(SR)],
  ['copy-shared-snapshot', 'allow', 'kms:DescribeKey', sharingKey, via(SR)],
  ['copy-shared-snapshot', 'allow', 'kms:CreateGrant', sharingKey, { ...via(SR), ...GRANT }],
  ['copy-shared-snapshot', 'allow', 'kms:RevokeGrant', sharingKey, { ...via(SR), ...GRANT }],
  ['copy-shared-snapshot', 'allow', 'kms:ListGrants', sharingKey, { ...via(SR), ...GRANT }],
  ['copy-shared-snapshot', 'deny', 'rds:CopyDBSnapshot', rds(OTHER, 'snapshot', 'snapferry-prod-orders-1'), TAG],
  ['copy-shared-snapshot', 'deny', 'rds:CopyDBSnapshot', bak('snapshot', 'prod-orders-copy'), TAG],
  ['copy-shared-snapshot', 'deny', 'rds:CopyDBSnapshot', bak('snapshot', 'snapferry-prod-orders-1')],
  ['copy-shared-snapshot', 'deny', 'rds:DeleteDBSnapshot', bak('snapshot', 'snapferry-prod-orders-1')],
  ['copy-shared-snapshot', 'deny', 'rds:DeleteDBSnapshot', bak('snapshot', 'prod-orders-keep'), OURS],
  ['copy-shared-snapshot', 'deny', 'rds:ModifyDBSnapshotAttribute', bak('snapshot', 'snapferry-prod-orders-1'), OURS],
  ['copy-shared-snapshot', 'deny', 'kms:CreateGrant', targetKey],
  ['copy-shared-snapshot', 'deny', 'kms:Decrypt', extraKey, alias('alias/other')],
  ['copy-shared-snapshot', 'deny', 'kms:Decrypt', sharingKey],
  ['copy-shared-snapshot', 'deny', 'kms:Decrypt', sharingKey, via(XR)],
  ['copy-shared-snapshot', 'deny', 'kms:CreateGrant', sharingKey, via(SR)],
  ['copy-shared-snapshot', 'deny', 'rds:DescribeEvents', '*'],
  ['copy-shared-snapshot', 'deny', 'rds:DescribeDBLogFiles', bak('db', 'prod-orders')],
  ['copy-shared-snapshot', 'deny', 'rds:DeleteDBSnapshot', bak('snapshot', 'prod-orders-keep')],

  // restore (backup account): restore tests only, from our copies, into the isolated subnet group.
  ['restore', 'allow', 'rds:DescribeDBInstances', bak('db', 'snapferry-restore-prod-orders-1')],
  ['restore', 'allow', 'rds:DescribeDBClusters', bak('cluster', 'snapferry-restore-prod-billing-1')],
  ['restore', 'allow', 'rds:DescribeDBSnapshots', bak('snapshot', 'snapferry-prod-orders-1')],
  ['restore', 'allow', 'rds:DescribeDBClusterSnapshots', bak('cluster-snapshot', 'snapferry-prod-billing-1')],
  ['restore', 'allow', 'rds:RestoreDBInstanceFromDBSnapshot', bak('db', 'snapferry-restore-prod-orders-1'), TEST],
  ['restore', 'allow', 'rds:RestoreDBInstanceFromDBSnapshot', bak('snapshot', 'snapferry-prod-orders-1'), TEST],
  ['restore', 'allow', 'rds:RestoreDBInstanceFromDBSnapshot', bak('subgrp', 'snapferry-restore-test'), TEST],
  ['restore', 'allow', 'rds:RestoreDBInstanceFromDBSnapshot', bak('og', 'default:postgres-16'), TEST],
  ['restore', 'allow', 'rds:RestoreDBInstanceFromDBSnapshot', bak('pg', 'default.postgres16'), TEST],
  ['restore', 'allow', 'rds:RestoreDBClusterFromSnapshot', bak('cluster', 'snapferry-restore-prod-billing-1'), TEST],
  ['restore', 'allow', 'rds:RestoreDBClusterFromSnapshot', bak('cluster-snapshot', 'snapferry-prod-billing-1'), TEST],
  ['restore', 'allow', 'rds:RestoreDBClusterFromSnapshot', bak('subgrp', 'snapferry-restore-test'), TEST],
  ['restore', 'allow', 'rds:RestoreDBClusterFromSnapshot', bak('cluster-pg', 'default.aurora-postgresql16'), TEST],
  ['restore', 'allow', 'rds:CreateDBInstance', bak('db', 'snapferry-restore-prod-billing-1-instance'), TEST],
  ['restore', 'allow', 'rds:CreateDBInstance', bak('cluster', 'snapferry-restore-prod-billing-1'), TEST],
  ['restore', 'allow', 'rds:AddTagsToResource', bak('db', 'snapferry-restore-prod-orders-1'), TEST],
  ['restore', 'allow', 'rds:AddTagsToResource', bak('snapshot', 'snapferry-prod-orders-1'), OURS],
  ['restore', 'allow', 'rds:DeleteDBInstance', bak('db', 'snapferry-restore-prod-orders-1'), IS_TEST],
  ['restore', 'allow', 'rds:DeleteDBCluster', bak('cluster', 'snapferry-restore-prod-billing-1'), IS_TEST],
  // The data checks set a new master password on the restore test to log in to it (never on a production database).
  ['restore', 'allow', 'rds:ModifyDBInstance', bak('db', 'snapferry-restore-prod-orders-1'), IS_TEST],
  ['restore', 'allow', 'rds:ModifyDBCluster', bak('cluster', 'snapferry-restore-prod-billing-1'), IS_TEST],
  ['restore', 'allow', 'kms:Decrypt', targetKey],
  ['restore', 'allow', 'kms:Encrypt', targetKey],
  ['restore', 'allow', 'kms:ReEncryptTo', targetKey],
  ['restore', 'allow', 'kms:GenerateDataKeyWithoutPlaintext', targetKey],
  ['restore', 'allow', 'kms:DescribeKey', targetKey],
  ['restore', 'allow', 'kms:CreateGrant', targetKey, GRANT],
  ['restore', 'deny', 'rds:RestoreDBInstanceFromDBSnapshot', bak('subgrp', 'default'), TEST],
  ['restore', 'deny', 'rds:RestoreDBInstanceFromDBSnapshot', bak('db', 'snapferry-restore-prod-orders-1')],
  ['restore', 'deny', 'rds:RestoreDBInstanceFromDBSnapshot', bak('db', 'prod-orders'), TEST],
  ['restore', 'deny', 'rds:RestoreDBInstanceFromDBSnapshot', bak('snapshot', 'prod-orders-keep'), TEST],
  ['restore', 'deny', 'rds:CreateDBInstance', bak('db', 'prod-orders'), TEST],
  ['restore', 'deny', 'rds:DeleteDBInstance', bak('db', 'prod-orders')],
  ['restore', 'deny', 'rds:DeleteDBInstance', bak('db', 'prod-orders'), IS_TEST],
  ['restore', 'deny', 'rds:DeleteDBInstance', bak('db', 'snapferry-restore-prod-orders-1')],
  ['restore', 'deny', 'rds:DeleteDBCluster', bak('cluster', 'prod-billing')],
  ['restore', 'deny', 'rds:ModifyDBInstance', bak('db', 'prod-orders')],
  ['restore', 'deny', 'rds:ModifyDBInstance', bak('db', 'prod-orders'), IS_TEST],
  ['restore', 'deny', 'rds:ModifyDBInstance', bak('db', 'snapferry-restore-prod-orders-1')],
  ['restore', 'deny', 'rds:ModifyDBInstance', bak('db', 'snapferry-restore-prod-orders-1'), { 'aws:ResourceTag/snapferry:restore-test': 'false' }],
  ['restore', 'deny', 'rds:ModifyDBInstance', bak('db', 'snapferry-restore-prod-orders-1', XR), IS_TEST],
  ['restore', 'deny', 'rds:ModifyDBCluster', bak('cluster', 'prod-billing')],
  ['restore', 'deny', 'rds:ModifyDBCluster', bak('cluster', 'prod-billing'), IS_TEST],
  ['restore', 'deny', 'rds:ModifyDBCluster', bak('cluster', 'snapferry-restore-prod-billing-1')],
  ['restore', 'deny', 'rds:ModifyDBCluster', bak('cluster', 'snapferry-restore-prod-billing-1'), { 'aws:ResourceTag/snapferry:restore-test': 'false' }],
  ['restore', 'deny', 'rds:ModifyDBCluster', bak('cluster', 'snapferry-restore-prod-billing-1', XR), IS_TEST],
  ['restore', 'deny', 'rds:ModifyDBSnapshot', bak('snapshot', 'snapferry-prod-orders-1'), OURS],
  ['restore', 'deny', 'rds:DeleteDBSnapshot', bak('snapshot', 'snapferry-prod-orders-1'), OURS],
  ['restore', 'deny', 'kms:Decrypt', sharingKey, via(SR)],

  // restore with data checks (the example's): Lambda attaches the function to the restore-test VPC
  // with its role. New interfaces only in the restore-test subnets, only with the function's
  // security group; deleting or re-addressing one only in that VPC.
  ['restore', 'allow', 'ec2:DescribeNetworkInterfaces', '*'],
  ['restore', 'allow', 'ec2:DescribeSubnets', '*'],
  ['restore', 'allow', 'ec2:CreateNetworkInterface', eni('eni-0a1b2c3d4e5f60001')],
  ...restoreTestSubnets.map((subnet): Case => ['restore', 'allow', 'ec2:CreateNetworkInterface', subnet]),
  ['restore', 'allow', 'ec2:CreateNetworkInterface', restoreFunctionGroup],
  ['restore', 'deny', 'ec2:CreateNetworkInterface', ec2Arn('subnet/subnet-0f0f0f0f0f0f0f0f0')],
  ['restore', 'deny', 'ec2:CreateNetworkInterface', restoreTestGroup],
  ['restore', 'deny', 'ec2:CreateNetworkInterface', ec2Arn('security-group/sg-0f0f0f0f0f0f0f0f0')],
  ['restore', 'allow', 'ec2:DeleteNetworkInterface', eni('eni-0a1b2c3d4e5f60001'), IN_VPC],
  ['restore', 'allow', 'ec2:AssignPrivateIpAddresses', eni('eni-0a1b2c3d4e5f60001'), IN_VPC],
  ['restore', 'allow', 'ec2:UnassignPrivateIpAddresses', eni('eni-0a1b2c3d4e5f60001'), IN_VPC],
  ['restore', 'deny', 'ec2:DeleteNetworkInterface', eni('eni-0f0f0f0f0f0f0f0f0'), { 'ec2:Vpc': ec2Arn('vpc/vpc-0f0f0f0f0f0f0f0f0') }],
  ['restore', 'deny', 'ec2:DeleteNetworkInterface', eni('eni-0f0f0f0f0f0f0f0f0')],
  ['restore', 'deny', 'ec2:DeleteNetworkInterface', `arn:aws:ec2:${XR}:${BAK}:network-interface/eni-0a1b2c3d4e5f60001`, { 'ec2:Vpc': restoreTestVpc }],
  ['restore', 'deny', 'ec2:DetachNetworkInterface', eni('eni-0a1b2c3d4e5f60001'), IN_VPC],
  ['restore', 'deny', 'ec2:ModifyNetworkInterfaceAttribute', eni('eni-0a1b2c3d4e5f60001'), IN_VPC],
  ['restore', 'deny', 'ec2:AuthorizeSecurityGroupEgress', restoreFunctionGroup],
  ['restore', 'deny', 'ec2:DescribeVpcEndpoints', '*'],

  // expire-snapshots (source account): deletes, and withdraws the share of, only snapferry- snapshots tagged as ours, in its region.
  ['expire-snapshots', 'allow', 'rds:DescribeAccountAttributes', '*'],
  ['expire-snapshots', 'allow', 'rds:DescribeDBSnapshots', src('snapshot', 'snapferry-prod-orders-1')],
  ['expire-snapshots', 'allow', 'rds:DescribeDBClusterSnapshots', src('cluster-snapshot', 'snapferry-prod-billing-1')],
  ['expire-snapshots', 'allow', 'rds:DescribeDBSnapshotAttributes', src('snapshot', 'snapferry-prod-orders-1')],
  ['expire-snapshots', 'allow', 'rds:DescribeDBClusterSnapshotAttributes', src('cluster-snapshot', 'snapferry-prod-billing-1')],
  ['expire-snapshots', 'allow', 'rds:DeleteDBSnapshot', src('snapshot', 'snapferry-prod-orders-1'), OURS],
  ['expire-snapshots', 'allow', 'rds:DeleteDBClusterSnapshot', src('cluster-snapshot', 'snapferry-prod-billing-1'), OURS],
  ['expire-snapshots', 'allow', 'rds:ModifyDBSnapshotAttribute', src('snapshot', 'snapferry-prod-orders-1'), OURS],
  ['expire-snapshots', 'allow', 'rds:ModifyDBClusterSnapshotAttribute', src('cluster-snapshot', 'snapferry-prod-billing-1'), OURS],
  ['expire-snapshots', 'deny', 'rds:DeleteDBSnapshot', src('snapshot', 'snapferry-prod-orders-1')],
  ['expire-snapshots', 'deny', 'rds:DeleteDBSnapshot', src('snapshot', 'snapferry-prod-orders-1'), { 'aws:ResourceTag/snapferry:managed': 'false' }],
  ['expire-snapshots', 'deny', 'rds:DeleteDBSnapshot', src('snapshot', 'prod-orders-manual'), OURS],
  ['expire-snapshots', 'deny', 'rds:DeleteDBSnapshot', src('snapshot', 'rds:prod-orders-2025-01-01-00-05'), OURS],
  ['expire-snapshots', 'deny', 'rds:DeleteDBSnapshot', rds(SRC, 'snapshot', 'snapferry-prod-orders-1', 'us-east-1'), OURS],
  ['expire-snapshots', 'deny', 'rds:DeleteDBClusterSnapshot', src('cluster-snapshot', 'snapferry-prod-billing-1')],
  ['expire-snapshots', 'deny', 'rds:DeleteDBClusterSnapshot', src('cluster-snapshot', 'prod-billing-manual'), OURS],
  ['expire-snapshots', 'deny', 'rds:ModifyDBSnapshotAttribute', src('snapshot', 'snapferry-prod-orders-1')],
  ['expire-snapshots', 'deny', 'rds:ModifyDBSnapshotAttribute', src('snapshot', 'prod-orders-manual'), OURS],
  ['expire-snapshots', 'deny', 'rds:ModifyDBClusterSnapshotAttribute', src('cluster-snapshot', 'rds:prod-billing-2025-01-01-00-05'), OURS],
  ['expire-snapshots', 'deny', 'rds:DeleteDBInstance', src('db', 'prod-orders')],
  ['expire-snapshots', 'deny', 'rds:DeleteDBInstance', src('db', 'snapferry-prod-orders'), OURS],
  ['expire-snapshots', 'deny', 'rds:DeleteDBCluster', src('cluster', 'prod-billing'), OURS],
  ['expire-snapshots', 'deny', 'rds:CreateDBSnapshot', src('snapshot', 'snapferry-prod-orders-1'), TAG],
  ['expire-snapshots', 'deny', 'rds:CopyDBSnapshot', src('snapshot', 'snapferry-prod-orders-1'), TAG],
  // It tags what it released (snapferry:released-at), only on our own snapshots.
  ['expire-snapshots', 'allow', 'rds:AddTagsToResource', src('snapshot', 'snapferry-prod-orders-1'), OURS],
  ['expire-snapshots', 'allow', 'rds:AddTagsToResource', src('cluster-snapshot', 'snapferry-prod-billing-1'), OURS],
  ['expire-snapshots', 'deny', 'rds:AddTagsToResource', src('snapshot', 'snapferry-prod-orders-1')],
  ['expire-snapshots', 'deny', 'rds:AddTagsToResource', src('snapshot', 'prod-orders-manual'), OURS],
  ['expire-snapshots', 'deny', 'rds:AddTagsToResource', src('db', 'prod-orders'), OURS],
  ['expire-snapshots', 'deny', 'rds:DescribeEvents', '*'],
  ['expire-snapshots', 'deny', 'kms:Decrypt', sharingKey],

  // expire-copies (backup account): deletes only snapferry- copies tagged as ours, at home and in the extra regions.
  ['expire-copies', 'allow', 'rds:DescribeAccountAttributes', '*'],
  ['expire-copies', 'allow', 'rds:DescribeDBSnapshots', bak('snapshot', 'snapferry-prod-orders-1')],
  ['expire-copies', 'allow', 'rds:DescribeDBSnapshots', bak('snapshot', 'snapferry-prod-orders-1', XR)],
  ['expire-copies', 'allow', 'rds:DescribeDBClusterSnapshots', bak('cluster-snapshot', 'snapferry-prod-billing-1', XR)],
  ['expire-copies', 'allow', 'rds:DescribeDBInstances', bak('db', 'snapferry-restore-prod-orders-1')],
  ['expire-copies', 'allow', 'rds:DescribeDBClusters', bak('cluster', 'snapferry-restore-prod-billing-1')],
  ['expire-copies', 'allow', 'rds:DeleteDBSnapshot', bak('snapshot', 'snapferry-prod-orders-1'), OURS],
  ['expire-copies', 'allow', 'rds:DeleteDBSnapshot', bak('snapshot', 'snapferry-prod-orders-1', XR), OURS],
  ['expire-copies', 'allow', 'rds:DeleteDBClusterSnapshot', bak('cluster-snapshot', 'snapferry-prod-billing-1'), OURS],
  ['expire-copies', 'allow', 'rds:DeleteDBClusterSnapshot', bak('cluster-snapshot', 'snapferry-prod-billing-1', XR), OURS],
  ['expire-copies', 'deny', 'rds:DeleteDBSnapshot', bak('snapshot', 'snapferry-prod-orders-1')],
  ['expire-copies', 'deny', 'rds:DeleteDBSnapshot', bak('snapshot', 'snapferry-prod-orders-1', XR), { 'aws:ResourceTag/snapferry:managed': 'false' }],
  ['expire-copies', 'deny', 'rds:DeleteDBSnapshot', bak('snapshot', 'prod-orders-keep'), OURS],
  ['expire-copies', 'deny', 'rds:DeleteDBSnapshot', bak('snapshot', 'snapferry-prod-orders-1', 'us-east-1'), OURS],
  ['expire-copies', 'deny', 'rds:DeleteDBClusterSnapshot', bak('cluster-snapshot', 'prod-billing-keep', XR), OURS],
  ['expire-copies', 'deny', 'rds:DeleteDBSnapshot', rds(SRC, 'snapshot', 'snapferry-prod-orders-1'), OURS],
  ['expire-copies', 'deny', 'rds:ModifyDBSnapshotAttribute', bak('snapshot', 'snapferry-prod-orders-1'), OURS],
  ['expire-copies', 'deny', 'rds:DeleteDBInstance', bak('db', 'snapferry-restore-prod-orders-1'), IS_TEST],
  ['expire-copies', 'deny', 'rds:DeleteDBInstance', bak('db', 'prod-orders'), OURS],
  ['expire-copies', 'deny', 'rds:DeleteDBCluster', bak('cluster', 'snapferry-restore-prod-billing-1'), IS_TEST],
  ['expire-copies', 'deny', 'rds:CopyDBSnapshot', bak('snapshot', 'snapferry-prod-orders-1'), TAG],
  ['expire-copies', 'deny', 'rds:AddTagsToResource', bak('snapshot', 'snapferry-prod-orders-1'), OURS],
  ['expire-copies', 'deny', 'rds:DescribeEvents', '*'],
  ['expire-copies', 'deny', 'kms:Decrypt', targetKey],

  // EBS (kind ebs). create-snapshot: any selected volume or instance, into snapshots tagged as ours.
  ['create-snapshot', 'allow', 'ec2:DescribeVolumes', '*'],
  ['create-snapshot', 'allow', 'ec2:DescribeInstances', '*'],
  ['create-snapshot', 'allow', 'ec2:DescribeSnapshots', '*'],
  ['create-snapshot', 'allow', 'ec2:CreateSnapshot', srcVolume],
  ['create-snapshot', 'allow', 'ec2:CreateSnapshot', srcNewSnap, TAG],
  ['create-snapshot', 'allow', 'ec2:CreateSnapshots', srcInstance],
  ['create-snapshot', 'allow', 'ec2:CreateSnapshots', srcVolume],
  ['create-snapshot', 'allow', 'ec2:CreateSnapshots', srcNewSnap, TAG],
  ['create-snapshot', 'allow', 'ec2:CreateTags', srcNewSnap, created('CreateSnapshot')],
  ['create-snapshot', 'allow', 'ec2:CreateTags', srcNewSnap, created('CreateSnapshots')],
  ['create-snapshot', 'deny', 'ec2:CreateSnapshot', srcNewSnap],
  ['create-snapshot', 'deny', 'ec2:CreateSnapshot', srcNewSnap, { 'aws:RequestTag/snapferry:managed': 'false' }],
  ['create-snapshot', 'deny', 'ec2:CreateSnapshots', srcNewSnap],
  ['create-snapshot', 'deny', 'ec2:CreateSnapshot', ec2(OTHER, SR, 'volume', 'vol-0e1b2c3d4e5f60001')],
  ['create-snapshot', 'deny', 'ec2:CreateTags', srcForeignSnap],
  ['create-snapshot', 'deny', 'ec2:CreateTags', srcNewSnap, OURS],
  ['create-snapshot', 'deny', 'ec2:CreateTags', srcVolume, created('CreateVolume')],
  ['create-snapshot', 'deny', 'ec2:DeleteSnapshot', srcNewSnap, OURS],
  ['create-snapshot', 'deny', 'ec2:CopySnapshot', srcNewSnap, TAG],
  // EbsDescribe is on "*": only EC2's Describe* calls it names, nothing else with no resource type.
  ['create-snapshot', 'deny', 'ec2:DescribeImages', '*'],

  // share-snapshot: copies any snapshot of the account onto the sharing key, shares and deletes only its own.
  ['share-snapshot', 'allow', 'ec2:DescribeVolumes', '*'],
  ['share-snapshot', 'allow', 'ec2:DescribeInstances', '*'],
  ['share-snapshot', 'allow', 'ec2:DescribeSnapshots', '*'],
  ['share-snapshot', 'allow', 'ec2:DescribeSnapshotAttribute', srcNewSnap],
  ['share-snapshot', 'allow', 'ec2:CopySnapshot', srcForeignSnap, TAG],
  ['share-snapshot', 'allow', 'ec2:CopySnapshot', srcNewSnap, TAG],
  ['share-snapshot', 'allow', 'ec2:CreateTags', srcNewSnap, created('CopySnapshot')],
  ['share-snapshot', 'allow', 'ec2:ModifySnapshotAttribute', srcNewSnap, OURS],
  ['share-snapshot', 'allow', 'ec2:DeleteSnapshot', srcNewSnap, OURS],
  ['share-snapshot', 'allow', 'kms:Encrypt', sharingKey, viaEc2(SR)],
  ['share-snapshot', 'allow', 'kms:ReEncryptTo', sharingKey, viaEc2(SR)],
  ['share-snapshot', 'allow', 'kms:GenerateDataKeyWithoutPlaintext', sharingKey, viaEc2(SR)],
  ['share-snapshot', 'allow', 'kms:CreateGrant', sharingKey, { ...viaEc2(SR), ...GRANT }],
  ['share-snapshot', 'allow', 'kms:Decrypt', dbKey, viaEc2(SR)],
  ['share-snapshot', 'allow', 'kms:DescribeKey', dbKey, viaEc2(SR)],
  ['share-snapshot', 'allow', 'kms:ReEncryptFrom', dbKey, viaEc2(SR)],
  ['share-snapshot', 'allow', 'kms:CreateGrant', dbKey, { ...viaEc2(SR), ...GRANT }],
  ['share-snapshot', 'deny', 'ec2:CopySnapshot', srcNewSnap],
  ['share-snapshot', 'deny', 'ec2:CopySnapshot', srcNewSnap, { 'aws:RequestTag/snapferry:managed': 'false' }],
  ['share-snapshot', 'deny', 'ec2:ModifySnapshotAttribute', srcForeignSnap],
  ['share-snapshot', 'deny', 'ec2:ModifySnapshotAttribute', srcForeignSnap, { 'aws:ResourceTag/snapferry:managed': 'false' }],
  ['share-snapshot', 'deny', 'ec2:DeleteSnapshot', srcForeignSnap],
  ['share-snapshot', 'deny', 'ec2:CreateTags', srcForeignSnap],
  ['share-snapshot', 'deny', 'ec2:CreateTags', srcNewSnap, OURS],
  ['share-snapshot', 'deny', 'ec2:LockSnapshot', srcNewSnap, OURS],
  ['share-snapshot', 'deny', 'kms:Decrypt', dbKey, viaS3(SR)],
  ['share-snapshot', 'deny', 'kms:Decrypt', dbKey, viaEc2('us-east-1')],
  ['share-snapshot', 'deny', 'kms:ReEncryptTo', dbKey, viaEc2(SR)],
  ['share-snapshot', 'deny', 'kms:CreateGrant', dbKey, viaEc2(SR)],

  // copy-shared-snapshot: copies what the allowlisted source shared (and, to the extra region, our own copy), into copies tagged as ours.
  ['copy-shared-snapshot', 'allow', 'ec2:DescribeSnapshots', '*'],
  ['copy-shared-snapshot', 'allow', 'ec2:CopySnapshot', sharedSnap, TAG],
  ['copy-shared-snapshot', 'allow', 'ec2:CopySnapshot', bakCopy, TAG],
  ['copy-shared-snapshot', 'allow', 'ec2:CopySnapshot', bakExtraCopy, TAG],
  ['copy-shared-snapshot', 'allow', 'ec2:CreateTags', bakCopy, created('CopySnapshot')],
  ['copy-shared-snapshot', 'allow', 'ec2:CreateTags', bakExtraCopy, created('CopySnapshot')],
  ['copy-shared-snapshot', 'allow', 'ec2:CreateTags', bakCopy, OURS],
  ['copy-shared-snapshot', 'allow', 'ec2:CreateTags', bakExtraCopy, OURS],
  ['copy-shared-snapshot', 'allow', 'ec2:DeleteSnapshot', bakCopy, OURS],
  ['copy-shared-snapshot', 'allow', 'ec2:DeleteSnapshot', bakExtraCopy, OURS],
  ['copy-shared-snapshot', 'allow', 'kms:Decrypt', targetKey, viaEc2(R)],
  ['copy-shared-snapshot', 'allow', 'kms:CreateGrant', targetKey, { ...viaEc2(R), ...GRANT }],
  ['copy-shared-snapshot', 'allow', 'kms:GenerateDataKeyWithoutPlaintext', extraKey, { ...alias(TARGET_KEY_ALIAS), ...viaEc2(XR) }],
  ['copy-shared-snapshot', 'allow', 'kms:CreateGrant', extraKey, { ...alias(TARGET_KEY_ALIAS), ...viaEc2(XR), ...GRANT }],
  ['copy-shared-snapshot', 'allow', 'kms:Decrypt', sharingKey, viaEc2(SR)],
  ['copy-shared-snapshot', 'allow', 'kms:ReEncryptFrom', sharingKey, viaEc2(SR)],
  ['copy-shared-snapshot', 'allow', 'kms:DescribeKey', sharingKey, viaEc2(SR)],
  ['copy-shared-snapshot', 'allow', 'kms:CreateGrant', sharingKey, { ...viaEc2(SR), ...GRANT }],
  ['copy-shared-snapshot', 'allow', 'kms:ListGrants', sharingKey, { ...viaEc2(SR), ...GRANT }],
  ['copy-shared-snapshot', 'allow', 'kms:RevokeGrant', sharingKey, { ...viaEc2(SR), ...GRANT }],
  ['copy-shared-snapshot', 'deny', 'ec2:CopySnapshot', bakCopy],
  ['copy-shared-snapshot', 'deny', 'ec2:CopySnapshot', bakExtraCopy, { 'aws:RequestTag/snapferry:managed': 'false' }],
  ['copy-shared-snapshot', 'deny', 'ec2:CopySnapshot', otherSnap, TAG],
  ['copy-shared-snapshot', 'deny', 'ec2:DeleteSnapshot', bakForeignSnap],
  ['copy-shared-snapshot', 'deny', 'ec2:CreateTags', bakForeignSnap],
  ['copy-shared-snapshot', 'deny', 'ec2:ModifySnapshotAttribute', bakCopy, OURS],
  ['copy-shared-snapshot', 'deny', 'ec2:LockSnapshot', bakCopy, OURS],
  ['copy-shared-snapshot', 'deny', 'ec2:CreateVolume', testVolume, TEST],
  ['copy-shared-snapshot', 'deny', 'kms:Decrypt', sharingKey, viaEc2(XR)],
  ['copy-shared-snapshot', 'deny', 'kms:Decrypt', sharingKey, viaS3(SR)],
  ['copy-shared-snapshot', 'deny', 'kms:CreateGrant', sharingKey, viaEc2(SR)],
  ['copy-shared-snapshot', 'deny', 'kms:Decrypt', extraKey, { ...alias('alias/other'), ...viaEc2(XR) }],

  // restore: test volumes only, from our copies; locks only our copies.
  ['restore', 'allow', 'ec2:DescribeSnapshots', '*'],
  ['restore', 'allow', 'ec2:DescribeVolumes', '*'],
  ['restore', 'allow', 'ec2:CreateVolume', testVolume, TEST],
  ['restore', 'allow', 'ec2:CreateVolume', bakCopy, OURS],
  ['restore', 'allow', 'ec2:CreateTags', testVolume, created('CreateVolume')],
  ['restore', 'allow', 'ec2:CreateTags', bakCopy, OURS],
  ['restore', 'allow', 'ec2:DeleteVolume', testVolume, IS_TEST],
  ['restore', 'allow', 'ec2:LockSnapshot', bakCopy, OURS],
  ['restore', 'allow', 'kms:Decrypt', targetKey, viaEc2(R)],
  ['restore', 'allow', 'kms:GenerateDataKeyWithoutPlaintext', targetKey, viaEc2(R)],
  ['restore', 'allow', 'kms:ReEncryptFrom', targetKey, viaEc2(R)],
  ['restore', 'allow', 'kms:CreateGrant', targetKey, { ...viaEc2(R), ...GRANT }],
  ['restore', 'deny', 'ec2:CreateVolume', testVolume],
  ['restore', 'deny', 'ec2:CreateVolume', bakForeignSnap],
  ['restore', 'deny', 'ec2:DeleteVolume', bakVolume],
  ['restore', 'deny', 'ec2:DeleteVolume', bakVolume, { 'aws:ResourceTag/snapferry:restore-test': 'false' }],
  ['restore', 'deny', 'ec2:LockSnapshot', bakForeignSnap],
  ['restore', 'deny', 'ec2:LockSnapshot', bakForeignSnap, { 'aws:ResourceTag/snapferry:managed': 'false' }],
  ['restore', 'deny', 'ec2:CreateTags', bakForeignSnap],
  ['restore', 'deny', 'ec2:CreateTags', bakVolume],
  ['restore', 'deny', 'ec2:DeleteSnapshot', bakCopy, OURS],
  ['restore', 'deny', 'ec2:CopySnapshot', bakCopy, TAG],
  ['restore', 'deny', 'kms:CreateGrant', targetKey, viaEc2(R)],
  ['restore', 'deny', 'kms:Decrypt', sharingKey, viaEc2(SR)],

  // expire-snapshots, EBS: deletes, and withdraws the createVolumePermission of, only snapshots tagged as ours.
  ['expire-snapshots', 'allow', 'ec2:DescribeSnapshots', '*'],
  ['expire-snapshots', 'allow', 'ec2:DescribeLockedSnapshots', '*'],
  ['expire-snapshots', 'allow', 'ec2:DescribeSnapshotAttribute', srcNewSnap],
  ['expire-snapshots', 'allow', 'ec2:DeleteSnapshot', srcNewSnap, OURS],
  ['expire-snapshots', 'allow', 'ec2:ModifySnapshotAttribute', srcNewSnap, OURS],
  ['expire-snapshots', 'deny', 'ec2:DeleteSnapshot', srcForeignSnap],
  ['expire-snapshots', 'deny', 'ec2:DeleteSnapshot', srcForeignSnap, { 'aws:ResourceTag/snapferry:managed': 'false' }],
  ['expire-snapshots', 'deny', 'ec2:DeleteSnapshot', srcFarSnap, OURS],
  ['expire-snapshots', 'deny', 'ec2:ModifySnapshotAttribute', srcForeignSnap],
  ['expire-snapshots', 'deny', 'ec2:DeleteVolume', srcVolume],
  ['expire-snapshots', 'deny', 'ec2:DeleteVolume', srcVolume, OURS],
  ['expire-snapshots', 'allow', 'ec2:CreateTags', srcNewSnap, OURS],
  ['expire-snapshots', 'deny', 'ec2:CreateTags', srcForeignSnap],
  ['expire-snapshots', 'deny', 'ec2:CreateTags', srcVolume, OURS],
  ['expire-snapshots', 'deny', 'ec2:CopySnapshot', srcNewSnap, TAG],
  ['expire-snapshots', 'deny', 'ec2:UnlockSnapshot', srcNewSnap, OURS],

  // expire-copies, EBS: deletes only copies tagged as ours, at home and in the extra regions; never unlocks one.
  ['expire-copies', 'allow', 'ec2:DescribeSnapshots', '*'],
  ['expire-copies', 'allow', 'ec2:DescribeVolumes', '*'],
  ['expire-copies', 'allow', 'ec2:DescribeLockedSnapshots', '*'],
  ['expire-copies', 'allow', 'ec2:DeleteSnapshot', bakCopy, OURS],
  ['expire-copies', 'allow', 'ec2:DeleteSnapshot', bakExtraCopy, OURS],
  ['expire-copies', 'deny', 'ec2:DeleteSnapshot', bakForeignSnap],
  ['expire-copies', 'deny', 'ec2:DeleteSnapshot', bakForeignSnap, { 'aws:ResourceTag/snapferry:managed': 'false' }],
  ['expire-copies', 'deny', 'ec2:DeleteSnapshot', bakFarCopy, OURS],
  ['expire-copies', 'deny', 'ec2:DeleteVolume', testVolume, IS_TEST],
  ['expire-copies', 'deny', 'ec2:DeleteVolume', bakVolume, OURS],
  ['expire-copies', 'deny', 'ec2:UnlockSnapshot', bakCopy, OURS],
  ['expire-copies', 'deny', 'ec2:LockSnapshot', bakCopy, OURS],
  ['expire-copies', 'deny', 'ec2:ModifySnapshotAttribute', bakCopy, OURS],
  ['expire-copies', 'deny', 'ec2:CreateTags', bakCopy, OURS],
  ['expire-copies', 'deny', 'ec2:CopySnapshot', bakCopy, TAG],

  // reconcile-snapshots (source account): reads what create-snapshot selects and snapferry's
  // snapshots; repairs only through share-snapshot's queue; marks only our snapshots; deletes,
  // shares, creates and copies nothing.
  ['reconcile-snapshots', 'allow', 'rds:DescribeDBInstances', src('db', 'prod-orders')],
  ['reconcile-snapshots', 'allow', 'rds:DescribeDBClusters', src('cluster', 'prod-billing')],
  ['reconcile-snapshots', 'allow', 'rds:DescribeDBSnapshots', src('snapshot', 'snapferry-prod-orders-1')],
  ['reconcile-snapshots', 'allow', 'rds:DescribeDBClusterSnapshots', src('cluster-snapshot', 'snapferry-prod-billing-1')],
  ['reconcile-snapshots', 'allow', 'rds:DescribeDBSnapshotAttributes', src('snapshot', 'snapferry-prod-orders-1')],
  ['reconcile-snapshots', 'allow', 'rds:DescribeDBClusterSnapshotAttributes', src('cluster-snapshot', 'snapferry-prod-billing-1')],
  ['reconcile-snapshots', 'allow', 'rds:AddTagsToResource', src('snapshot', 'snapferry-prod-orders-1'), OURS],
  ['reconcile-snapshots', 'allow', 'rds:AddTagsToResource', src('cluster-snapshot', 'snapferry-prod-billing-1'), OURS],
  ['reconcile-snapshots', 'allow', 'sqs:SendMessage', stepQueue('share-snapshot')],
  ['reconcile-snapshots', 'deny', 'rds:AddTagsToResource', src('snapshot', 'snapferry-prod-orders-1')],
  ['reconcile-snapshots', 'deny', 'rds:AddTagsToResource', src('snapshot', 'snapferry-prod-orders-1'), { 'aws:ResourceTag/snapferry:managed': 'false' }],
  ['reconcile-snapshots', 'deny', 'rds:AddTagsToResource', src('snapshot', 'prod-orders-manual'), OURS],
  ['reconcile-snapshots', 'deny', 'rds:AddTagsToResource', src('snapshot', 'rds:prod-orders-2025-01-01-00-05'), OURS],
  ['reconcile-snapshots', 'deny', 'rds:AddTagsToResource', src('db', 'prod-orders'), OURS],
  ['reconcile-snapshots', 'deny', 'rds:AddTagsToResource', rds(SRC, 'snapshot', 'snapferry-prod-orders-1', 'us-east-1'), OURS],
  // Repairs go to share-snapshot's queue only: not the backup account's queues (nor queues of
  // their names here); the other queues and DLQs of its own account are refused below, for every step.
  ['reconcile-snapshots', 'deny', 'sqs:SendMessage', stepQueue('copy-shared-snapshot')],
  ['reconcile-snapshots', 'deny', 'sqs:SendMessage', stepQueue('restore')],
  ['reconcile-snapshots', 'deny', 'sqs:SendMessage', queue('snapferry-copy-shared-snapshot', SRC, SR)],
  ['reconcile-snapshots', 'deny', 'sqs:SendMessage', queue('snapferry-restore', SRC, SR)],
  ['reconcile-snapshots', 'deny', 'sqs:ReceiveMessage', stepQueue('share-snapshot')],
  ['reconcile-snapshots', 'deny', 'sqs:DeleteMessage', stepQueue('share-snapshot')],
  ['reconcile-snapshots', 'deny', 'sqs:PurgeQueue', stepQueue('share-snapshot')],
  ['reconcile-snapshots', 'deny', 'rds:DeleteDBSnapshot', src('snapshot', 'snapferry-prod-orders-1'), OURS],
  ['reconcile-snapshots', 'deny', 'rds:DeleteDBClusterSnapshot', src('cluster-snapshot', 'snapferry-prod-billing-1'), OURS],
  ['reconcile-snapshots', 'deny', 'rds:DeleteDBInstance', src('db', 'prod-orders')],
  ['reconcile-snapshots', 'deny', 'rds:DeleteDBCluster', src('cluster', 'prod-billing')],
  ['reconcile-snapshots', 'deny', 'rds:ModifyDBSnapshotAttribute', src('snapshot', 'snapferry-prod-orders-1'), OURS],
  ['reconcile-snapshots', 'deny', 'rds:CreateDBSnapshot', src('snapshot', 'snapferry-prod-orders-1'), TAG],
  ['reconcile-snapshots', 'deny', 'rds:CopyDBSnapshot', src('snapshot', 'snapferry-prod-orders-1'), TAG],
  ['reconcile-snapshots', 'deny', 'rds:DescribeAccountAttributes', '*'],
  ['reconcile-snapshots', 'deny', 'kms:Decrypt', sharingKey],
  // EBS: reads, marks only snapshots tagged as ours in its region.
  ['reconcile-snapshots', 'allow', 'ec2:DescribeVolumes', '*'],
  ['reconcile-snapshots', 'allow', 'ec2:DescribeInstances', '*'],
  ['reconcile-snapshots', 'allow', 'ec2:DescribeSnapshots', '*'],
  ['reconcile-snapshots', 'allow', 'ec2:DescribeSnapshotAttribute', srcNewSnap],
  ['reconcile-snapshots', 'allow', 'ec2:CreateTags', srcNewSnap, OURS],
  ['reconcile-snapshots', 'deny', 'ec2:CreateTags', srcForeignSnap],
  ['reconcile-snapshots', 'deny', 'ec2:CreateTags', srcForeignSnap, { 'aws:ResourceTag/snapferry:managed': 'false' }],
  ['reconcile-snapshots', 'deny', 'ec2:CreateTags', srcFarSnap, OURS],
  ['reconcile-snapshots', 'deny', 'ec2:CreateTags', srcVolume, OURS],
  ['reconcile-snapshots', 'deny', 'ec2:DeleteSnapshot', srcNewSnap, OURS],
  ['reconcile-snapshots', 'deny', 'ec2:DeleteVolume', srcVolume, OURS],
  ['reconcile-snapshots', 'deny', 'ec2:ModifySnapshotAttribute', srcNewSnap, OURS],
  ['reconcile-snapshots', 'deny', 'ec2:CreateSnapshot', srcVolume],
  ['reconcile-snapshots', 'deny', 'ec2:CopySnapshot', srcNewSnap, TAG],
  ['reconcile-snapshots', 'deny', 'ec2:DescribeImages', '*'],

  // reconcile-copies (backup account): reads the copies at home and in the extra regions;
  // repairs only through copy-shared-snapshot's and restore's queues; marks only our copies;
  // deletes, restores, copies and locks nothing.
  ['reconcile-copies', 'allow', 'rds:DescribeDBSnapshots', bak('snapshot', 'snapferry-prod-orders-1')],
  ['reconcile-copies', 'allow', 'rds:DescribeDBSnapshots', bak('snapshot', 'snapferry-prod-orders-1', XR)],
  ['reconcile-copies', 'allow', 'rds:DescribeDBClusterSnapshots', bak('cluster-snapshot', 'snapferry-prod-billing-1')],
  ['reconcile-copies', 'allow', 'rds:DescribeDBClusterSnapshots', bak('cluster-snapshot', 'snapferry-prod-billing-1', XR)],
  ['reconcile-copies', 'allow', 'rds:AddTagsToResource', bak('snapshot', 'snapferry-prod-orders-1'), OURS],
  ['reconcile-copies', 'allow', 'rds:AddTagsToResource', bak('cluster-snapshot', 'snapferry-prod-billing-1', XR), OURS],
  ['reconcile-copies', 'allow', 'sqs:SendMessage', stepQueue('copy-shared-snapshot')],
  ['reconcile-copies', 'allow', 'sqs:SendMessage', stepQueue('restore')],
  ['reconcile-copies', 'deny', 'rds:AddTagsToResource', bak('snapshot', 'snapferry-prod-orders-1')],
  ['reconcile-copies', 'deny', 'rds:AddTagsToResource', bak('snapshot', 'snapferry-prod-orders-1', XR), { 'aws:ResourceTag/snapferry:managed': 'false' }],
  ['reconcile-copies', 'deny', 'rds:AddTagsToResource', bak('snapshot', 'prod-orders-keep'), OURS],
  ['reconcile-copies', 'deny', 'rds:AddTagsToResource', bak('snapshot', 'snapferry-prod-orders-1', 'us-east-1'), OURS],
  ['reconcile-copies', 'deny', 'rds:AddTagsToResource', bak('db', 'snapferry-restore-prod-orders-1'), OURS],
  // Repairs go to the copy and restore queues at home only: not a source's queue (nor one of its
  // name here), not an extra region's; their DLQs and the other queues are refused below, for every step.
  ['reconcile-copies', 'deny', 'sqs:SendMessage', stepQueue('share-snapshot')],
  ['reconcile-copies', 'deny', 'sqs:SendMessage', queue('snapferry-share-snapshot', BAK, R)],
  ['reconcile-copies', 'deny', 'sqs:SendMessage', queue('snapferry-copy-shared-snapshot', BAK, XR)],
  ['reconcile-copies', 'deny', 'sqs:ReceiveMessage', stepQueue('restore')],
  ['reconcile-copies', 'deny', 'sqs:DeleteMessage', stepQueue('copy-shared-snapshot')],
  ['reconcile-copies', 'deny', 'sqs:PurgeQueue', stepQueue('copy-shared-snapshot')],
  ['reconcile-copies', 'deny', 'rds:DeleteDBSnapshot', bak('snapshot', 'snapferry-prod-orders-1'), OURS],
  ['reconcile-copies', 'deny', 'rds:DeleteDBClusterSnapshot', bak('cluster-snapshot', 'snapferry-prod-billing-1', XR), OURS],
  ['reconcile-copies', 'deny', 'rds:DeleteDBInstance', bak('db', 'snapferry-restore-prod-orders-1'), IS_TEST],
  ['reconcile-copies', 'deny', 'rds:DeleteDBCluster', bak('cluster', 'snapferry-restore-prod-billing-1'), IS_TEST],
  ['reconcile-copies', 'deny', 'rds:CopyDBSnapshot', bak('snapshot', 'snapferry-prod-orders-1'), TAG],
  ['reconcile-copies', 'deny', 'rds:RestoreDBInstanceFromDBSnapshot', bak('snapshot', 'snapferry-prod-orders-1'), TEST],
  ['reconcile-copies', 'deny', 'rds:ModifyDBSnapshotAttribute', bak('snapshot', 'snapferry-prod-orders-1'), OURS],
  ['reconcile-copies', 'deny', 'kms:Decrypt', targetKey],
  ['reconcile-copies', 'deny', 'kms:Decrypt', sharingKey, via(SR)],
  // EBS: reads the copies, marks only copies tagged as ours at home and in the extra regions.
  ['reconcile-copies', 'allow', 'ec2:DescribeSnapshots', '*'],
  ['reconcile-copies', 'allow', 'ec2:CreateTags', bakCopy, OURS],
  ['reconcile-copies', 'allow', 'ec2:CreateTags', bakExtraCopy, OURS],
  ['reconcile-copies', 'deny', 'ec2:CreateTags', bakForeignSnap],
  ['reconcile-copies', 'deny', 'ec2:CreateTags', bakForeignSnap, { 'aws:ResourceTag/snapferry:managed': 'false' }],
  ['reconcile-copies', 'deny', 'ec2:CreateTags', bakFarCopy, OURS],
  ['reconcile-copies', 'deny', 'ec2:CreateTags', testVolume, IS_TEST],
  ['reconcile-copies', 'deny', 'ec2:DeleteSnapshot', bakCopy, OURS],
  ['reconcile-copies', 'deny', 'ec2:DeleteVolume', testVolume, IS_TEST],
  ['reconcile-copies', 'deny', 'ec2:CopySnapshot', bakCopy, TAG],
  ['reconcile-copies', 'deny', 'ec2:CreateVolume', bakCopy, OURS],
  ['reconcile-copies', 'deny', 'ec2:LockSnapshot', bakCopy, OURS],
  ['reconcile-copies', 'deny', 'ec2:UnlockSnapshot', bakCopy, OURS],
  ['reconcile-copies', 'deny', 'ec2:DescribeVolumes', '*'],

  // The copy ledger (backup account, home region): copy-shared-snapshot takes slots and budgets
  // (conditional writes in one TransactWriteItems, each item authorized as its own action) and
  // reads them with Query; expire-copies only counts a deleted copy out; reconcile-copies corrects
  // it. Nothing else: not another table, not the same name in another region or account, no
  // Scan, no batch writes, no table management; no other step touches it.
  ...['dynamodb:Query', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'].map((a): Case => ['copy-shared-snapshot', 'allow', a, ledger]),
  ['copy-shared-snapshot', 'deny', 'dynamodb:PutItem', table('snapferry-other')],
  ['copy-shared-snapshot', 'deny', 'dynamodb:PutItem', table(routing.copy_ledger, BAK, XR)],
  ['copy-shared-snapshot', 'deny', 'dynamodb:PutItem', table(routing.copy_ledger, SRC, SR)],
  ['copy-shared-snapshot', 'deny', 'dynamodb:Query', `${ledger}/index/by-source`],
  ...['dynamodb:Scan', 'dynamodb:GetItem', 'dynamodb:BatchWriteItem', 'dynamodb:DeleteTable', 'dynamodb:UpdateTable', 'dynamodb:RestoreTableToPointInTime']
    .map((a): Case => ['copy-shared-snapshot', 'deny', a, ledger]),
  ['expire-copies', 'allow', 'dynamodb:UpdateItem', ledger],
  ...['dynamodb:Query', 'dynamodb:PutItem', 'dynamodb:DeleteItem', 'dynamodb:Scan'].map((a): Case => ['expire-copies', 'deny', a, ledger]),
  ['expire-copies', 'deny', 'dynamodb:UpdateItem', table(routing.copy_ledger, BAK, XR)],
  ...['dynamodb:Query', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'].map((a): Case => ['reconcile-copies', 'allow', a, ledger]),
  ...['dynamodb:PutItem', 'dynamodb:Scan', 'dynamodb:DeleteTable'].map((a): Case => ['reconcile-copies', 'deny', a, ledger]),
  ['reconcile-copies', 'deny', 'dynamodb:DeleteItem', table('snapferry-other')],
  ...['dynamodb:Query', 'dynamodb:UpdateItem'].map((a): Case => ['restore', 'deny', a, ledger]),
  // The source accounts' steps: neither the backup account's ledger nor a table of that name of their own.
  ...routing.functions.filter((f) => f.account === 'source').flatMap((f): Case[] => [
    [f.name, 'deny', 'dynamodb:UpdateItem', ledger],
    [f.name, 'deny', 'dynamodb:PutItem', table(routing.copy_ledger, SRC, SR)],
  ]),

  // Every step: its own queue and DLQ, its account's pipeline bus; not another step's queue
  // (but the ones a reconcile step repairs through), no other step's DLQ, not the default bus.
  ...routing.functions.flatMap((fn): Case[] => {
    const [account, region] = fn.account === 'source' ? [SRC, SR] : [BAK, R];
    const others = routing.functions.filter((f) => f.account === fn.account && f !== fn);
    return [
      [fn.name, 'allow', 'sqs:SendMessage', queue(fn.queue, account, region)],
      [fn.name, 'allow', 'sqs:SendMessage', queue(`${fn.queue}-dlq`, account, region)],
      [fn.name, 'allow', 'sqs:ChangeMessageVisibility', queue(fn.queue, account, region)],
      [fn.name, 'allow', 'events:PutEvents', `arn:aws:events:${region}:${account}:event-bus/${routing.pipeline_bus}`],
      ...others.filter((o) => !(repairs[fn.name] ?? []).includes(o.name)).map((o): Case => [fn.name, 'deny', 'sqs:SendMessage', queue(o.queue, account, region)]),
      ...others.map((o): Case => [fn.name, 'deny', 'sqs:SendMessage', queue(`${o.queue}-dlq`, account, region)]),
      ...others.map((o): Case => [fn.name, 'deny', 'sqs:ChangeMessageVisibility', queue(o.queue, account, region)]),
      [fn.name, 'deny', 'events:PutEvents', `arn:aws:events:${region}:${account}:event-bus/default`],
    ];
  }),

  // The backup account's pipeline bus: only each source's forwarding role, only "Snapshot Shared".
  ['forwarder', 'allow', 'events:PutEvents', targetBus, event('Snapshot Shared')],
  ['forwarder', 'deny', 'events:PutEvents', targetBus, event('Backup Requested')],
  ['forwarder', 'deny', 'events:PutEvents', targetBus],
  ['source admin', 'deny', 'events:PutEvents', targetBus, event('Snapshot Shared')],
  ['other forwarder', 'deny', 'events:PutEvents', targetBus, event('Snapshot Shared')],
  ['backup forwarder', 'deny', 'events:PutEvents', targetBus, event('Snapshot Shared')],

  // The way back (copied_back): a source's pipeline bus admits only the backup account's forwarding role, only "Snapshot Copied".
  ['backup forwarder', 'allow', 'events:PutEvents', sourceBus, event('Snapshot Copied')],
  ['backup forwarder', 'deny', 'events:PutEvents', sourceBus, event('Snapshot Shared')],
  ['backup forwarder', 'deny', 'events:PutEvents', sourceBus, event('Backup Requested')],
  ['backup forwarder', 'deny', 'events:PutEvents', sourceBus, { 'events:source': ['aws.rds'], 'events:detail-type': ['Snapshot Copied'] }],
  // One PutEvents call with a "Snapshot Copied" entry and another: every entry must be admitted.
  ['backup forwarder', 'deny', 'events:PutEvents', sourceBus, { 'events:source': [routing.source], 'events:detail-type': ['Snapshot Copied', 'Backup Requested'] }],
  ['backup forwarder', 'deny', 'events:PutEvents', sourceBus],
  ['backup forwarder', 'deny', 'events:PutEvents', `arn:aws:events:${SR}:${SRC}:event-bus/default`, event('Snapshot Copied')],
  ['backup admin', 'deny', 'events:PutEvents', sourceBus, event('Snapshot Copied')],
  ['other admin', 'deny', 'events:PutEvents', sourceBus, event('Snapshot Copied')],
  ['other forwarder', 'deny', 'events:PutEvents', sourceBus, event('Snapshot Copied')],
  // The source's own forwarding role only sends to the backup account: no loop.
  ['forwarder', 'deny', 'events:PutEvents', sourceBus, event('Snapshot Copied')],

  // The sharing key's key policy: the backup account only through RDS in the source's region.
  ['backup admin', 'allow', 'kms:Decrypt', sharingKey, via(SR)],
  ['backup admin', 'allow', 'kms:CreateGrant', sharingKey, { ...via(SR), ...GRANT }],
  ['backup admin', 'deny', 'kms:Decrypt', sharingKey],
  ['backup admin', 'deny', 'kms:Decrypt', sharingKey, via(XR)],
  ['backup admin', 'deny', 'kms:CreateGrant', sharingKey, via(SR)],
  ['backup admin', 'deny', 'kms:ScheduleKeyDeletion', sharingKey, via(SR)],
  ['other admin', 'deny', 'kms:Decrypt', sharingKey, via(SR)],
  ['source admin', 'allow', 'kms:ScheduleKeyDeletion', sharingKey],
  // ... and, the source backing up EBS, through EC2 in the source's region likewise.
  ['backup admin', 'allow', 'kms:Decrypt', sharingKey, viaEc2(SR)],
  ['backup admin', 'allow', 'kms:CreateGrant', sharingKey, { ...viaEc2(SR), ...GRANT }],
  ['backup admin', 'deny', 'kms:Decrypt', sharingKey, viaEc2(XR)],
  ['backup admin', 'deny', 'kms:Decrypt', sharingKey, viaS3(SR)],
  ['backup admin', 'deny', 'kms:CreateGrant', sharingKey, viaEc2(SR)],

  // The backup keys: whoever may delete them must wait the longest period, 30 days (no break-glass role configured here).
  ['backup admin', 'allow', 'kms:ScheduleKeyDeletion', targetKey, window(30)],
  ['backup admin', 'deny', 'kms:ScheduleKeyDeletion', targetKey, window(7)],
  ['backup admin', 'deny', 'kms:ScheduleKeyDeletion', extraKey, window(29)],
  ['backup admin', 'allow', 'kms:DisableKey', targetKey],
];

/** Runs one case; the decision, or why there is none. */
async function simulate([who, , action, resource, context = {}]: Case): Promise<string> {
  const principal = principals[who];
  assert.ok(principal, `no principal ${who}`);
  const account = resource === '*' ? principal.arn.split(':')[4] : ownerOf(resource);
  assert.ok(account, `no owner for ${resource}`);
  const result = await runSimulation({
    request: {
      principal: principal.arn,
      action,
      resource: { resource, accountId: account },
      // What AWS puts in every request's context.
      contextVariables: { 'aws:PrincipalArn': principal.arn, 'aws:PrincipalAccount': principal.arn.split(':')[4], ...context },
    },
    identityPolicies: principal.policies,
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy: resourcePolicies.get(resource) ?? standInPolicy(resource),
  }, {});
  if (result.resultType === 'error') return `error: ${JSON.stringify(result.errors)}`;
  assert.equal(result.resultType, 'single', 'a resource with a wildcard simulates a pattern, not a request');
  // A key the action does not take would be dropped, and the case would test something else.
  assert.deepEqual(result.result.ignoredContextKeys ?? [], [], 'context keys the simulator ignored');
  return result.overallResult;
}

const short = (arn: string) => arn.replace(/^arn:aws:/, '');
const ctx = (c: Context = {}) => Object.entries(c).map(([k, v]) => `${k.replace(/^aws:|^kms:|^events:/, '')}=${[v].flat().join('|')}`).join(' ');

describe('iam-simulate: the synthesized policies allow what each step does, and refuse the same on what is not snapferry\'s', () => {
  for (const c of cases) {
    const [who, want, action, resource, context, gap] = c;
    const name = `${who}: ${want} ${action} ${short(resource)} ${ctx(context)}`.trimEnd();
    if (gap !== undefined) {
      // Pins what the policy does today, so that fixing it fails here and the note goes.
      test(`KNOWN GAP, refused today: ${name}`, async () => {
        assert.match(await simulate(c), /^(Implicitly|Explicitly)Denied$/, `now allowed: the gap is fixed, drop its note (${gap})`);
      });
      continue;
    }
    test(name, async () => {
      const got = await simulate(c);
      if (want === 'allow') assert.equal(got, 'Allowed');
      else assert.match(got, /^(Implicitly|Explicitly)Denied$/);
    });
  }

  test('the table: only a reconcile step may send to another step\'s queue, only to the ones it repairs through, and every other queue is refused', () => {
    for (const fn of routing.functions) {
      const others = routing.functions.filter((f) => f.account === fn.account && f !== fn).map((f) => f.name);
      const sends = (want: 'allow' | 'deny', resource: string) => cases.some(([who, w, action, r, context, gap]) =>
        who === fn.name && w === want && action === 'sqs:SendMessage' && r === resource && context === undefined && gap === undefined);
      assert.deepEqual(others.filter((o) => sends('allow', stepQueue(o))), repairs[fn.name] ?? [], fn.name);
      for (const o of others) {
        assert.ok(sends('allow', stepQueue(o)) !== sends('deny', stepQueue(o)), `${fn.name} -> ${o}: exactly one of allow and deny`);
        assert.ok(sends('deny', stepQueue(o, '-dlq')), `${fn.name} -> ${o}'s DLQ: refused`);
      }
    }
  });

  test('the table covers every action permissions.json gives a step', () => {
    const p = loadPermissions(PERMISSIONS_FILE, routing);
    const wildcard = (a: string) => new RegExp(`^${a.replace('*', '.*')}$`);
    for (const fn of routing.functions) {
      const allowed = cases.filter(([who, want]) => who === fn.name && want === 'allow').map(([, , action]) => action);
      for (const a of [...p.every_step, ...p.steps[fn.name]].flatMap((s) => s.actions)) {
        assert.ok(allowed.some((x) => wildcard(a).test(x)), `${fn.name}: no case allows ${a}`);
      }
    }
  });
});

// The backup keys with a break-glass role (target.breakGlassRoleArn): only that role may delete or
// disable them; only it and CloudFormation's execution role may change their policy (KMS refuses a
// policy that would not let the principal setting it set it again); nobody waits less than 30 days.
describe('iam-simulate: the backup keys with a break-glass role', () => {
  const breakGlass = `arn:aws:iam::${BAK}:role/snapferry-break-glass`;
  const c = ebsConfig();
  c.target.breakGlassRoleArn = breakGlass;
  const s = synthExample(c);
  const keys = [{ t: s.target, region: R }, ...s.regions.map((t, i) => ({ t, region: c.target.extraRegions[i] }))].map(({ t, region }) => {
    const resolve = resolver(t, BAK, region);
    const [id, key] = Object.entries(resources(t, 'AWS::KMS::Key'))[0];
    return { region, arn: resolve({ 'Fn::GetAtt': [id, 'Arn'] }) as string, keyPolicy: resolve(key.Properties.KeyPolicy) as Policy };
  });
  const who: Record<string, (region: string) => Principal> = {
    'backup admin': () => principals['backup admin'],
    'break-glass role': () => admin(breakGlass),
    'CloudFormation execution role': (region) => admin(`arn:aws:iam::${BAK}:role/cdk-hnb659fds-cfn-exec-role-${BAK}-${region}`),
    'backup root user': () => admin(`arn:aws:iam::${BAK}:root`),
  };
  const protectedCases: [string, 'allow' | 'deny', string, Context?][] = [
    ['backup admin', 'deny', 'kms:ScheduleKeyDeletion', window(30)],
    ['backup admin', 'deny', 'kms:DisableKey'],
    ['backup admin', 'deny', 'kms:PutKeyPolicy'],
    ['backup admin', 'allow', 'kms:EnableKeyRotation'],
    ['backup admin', 'allow', 'kms:CancelKeyDeletion'],
    ['backup root user', 'deny', 'kms:ScheduleKeyDeletion', window(30)],
    ['backup root user', 'deny', 'kms:PutKeyPolicy'],
    ['break-glass role', 'allow', 'kms:ScheduleKeyDeletion', window(30)],
    ['break-glass role', 'deny', 'kms:ScheduleKeyDeletion', window(7)],
    ['break-glass role', 'allow', 'kms:DisableKey'],
    ['break-glass role', 'allow', 'kms:PutKeyPolicy'],
    // CloudFormation must keep being able to set the policy (KMS's lockout safety check), and nothing more.
    ['CloudFormation execution role', 'allow', 'kms:PutKeyPolicy'],
    ['CloudFormation execution role', 'deny', 'kms:ScheduleKeyDeletion', window(30)],
    ['CloudFormation execution role', 'deny', 'kms:DisableKey'],
  ];
  for (const key of keys) {
    for (const [name, want, action, context = {}] of protectedCases) {
      test(`${name}: ${want} ${action} ${short(key.arn)} ${ctx(context)}`.trimEnd(), async () => {
        const principal = who[name](key.region);
        const result = await runSimulation({
          request: {
            principal: principal.arn, action, resource: { resource: key.arn, accountId: BAK },
            contextVariables: { 'aws:PrincipalArn': principal.arn, 'aws:PrincipalAccount': BAK, ...context },
          },
          identityPolicies: principal.policies, serviceControlPolicies: [], resourceControlPolicies: [], resourcePolicy: key.keyPolicy,
        }, {});
        assert.equal(result.resultType, 'single', JSON.stringify(result));
        if (result.resultType !== 'single') return;
        assert.deepEqual(result.result.ignoredContextKeys ?? [], [], 'context keys the simulator ignored');
        if (want === 'allow') assert.equal(result.overallResult, 'Allowed');
        else assert.match(result.overallResult, /^(Implicitly|Explicitly)Denied$/);
      });
    }
  }
});
