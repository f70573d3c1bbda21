// Least privilege, checked on the synthesized templates: the key policies, the bus policy,
// and tag conditions on every IAM action that creates, modifies or deletes.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Template } from 'aws-cdk-lib/assertions';
import { Config } from '../lib/config';
import { LAMBDA_VPC_DESCRIBE } from '../lib/iam';
import { ANY_RESOURCE_SCOPES, loadPermissions, PERMISSIONS_FILE } from '../lib/permissions';
import { functionName } from '../lib/routing';
import { MAX_PENDING_WINDOW_DAYS } from '../lib/target-key';
import { ebsConfig, exampleConfig, list, only, resources, roleStatements, routing, Statement, statementsOf, synthExample, templateFor } from './helpers';

const config = exampleConfig();
const synth = synthExample(config);
/** The example with the source backing up EBS too. */
const ebs = synthExample(ebsConfig());
const target = config.target.account;
const source = config.sources[0].account;
const sourceRegion = config.sources[0].region;
const root = (a: string) => ({ AWS: `arn:aws:iam::${a}:root` });

/** The example plus a second source in the same region and a third, backing up EBS too, in another one. */
function multiSourceConfig(): Config {
  const c = exampleConfig();
  c.sources.push({ ...c.sources[0], account: '333333333333' },
    { ...c.sources[0], account: '444444444444', region: 'us-east-1', kinds: [...c.sources[0].kinds, 'ebs'] });
  return c;
}
const multiConfig = multiSourceConfig();
const multi = synthExample(multiConfig);
const multiSources = multi.deployment.sources.map((stack, i) => ({ config: multiConfig.sources[i], t: Template.fromStack(stack) }));
/** The role a source's forwarding rule must use, as the backup account's bus policy names it. */
const forwarderArn = (account: string, region: string) => `arn:aws:iam::${account}:role/snapferry-forward-${region}`;
const targetBusArn = `arn:aws:events:${config.target.region}:${target}:event-bus/${routing.pipeline_bus}`;
const GRANTS = /^kms:(CreateGrant|ListGrants|RevokeGrant|RetireGrant)$/;

describe('key policies', () => {
  test('sharing key: root keeps kms:*, the backup account gets exactly the copy actions, grants only for AWS resources', () => {
    const key = only(synth.source, 'AWS::KMS::Key', {});
    assert.equal(key.Properties.EnableKeyRotation, true);
    const statements = key.Properties.KeyPolicy.Statement.map(({ Sid: _, ...s }: Statement) => s);
    const viaRds = { 'kms:ViaService': `rds.${sourceRegion}.amazonaws.com` };
    assert.deepEqual(statements, [
      { Effect: 'Allow', Principal: root(source), Action: 'kms:*', Resource: '*' },
      { Effect: 'Allow', Principal: root(target), Resource: '*',
        Action: ['kms:Decrypt', 'kms:DescribeKey', 'kms:Encrypt', 'kms:GenerateDataKey*', 'kms:ReEncrypt*'],
        Condition: { StringEquals: viaRds } },
      { Effect: 'Allow', Principal: root(target), Resource: '*',
        Action: ['kms:CreateGrant', 'kms:ListGrants', 'kms:RevokeGrant'],
        Condition: { StringEquals: viaRds, Bool: { 'kms:GrantIsForAWSResource': 'true' } } },
    ]);
    synth.source.hasResourceProperties('AWS::KMS::Alias', { AliasName: 'alias/snapferry-sharing' });
  });

  test('sharing key of a source backing up EBS: the same two statements again through EC2 in the source\'s region', () => {
    const statements = only(ebs.source, 'AWS::KMS::Key', {}).Properties.KeyPolicy.Statement as Statement[];
    const via = (service: string) => ({ 'kms:ViaService': `${service}.${sourceRegion}.amazonaws.com` });
    assert.deepEqual(statements.map(({ Sid, Action, Condition }) => ({ Sid, Action, Condition })).slice(1), [
      { Sid: 'BackupAccountsUseKey', Action: ['kms:Decrypt', 'kms:DescribeKey', 'kms:Encrypt', 'kms:GenerateDataKey*', 'kms:ReEncrypt*'], Condition: { StringEquals: via('rds') } },
      { Sid: 'BackupAccountsGrantToRds', Action: ['kms:CreateGrant', 'kms:ListGrants', 'kms:RevokeGrant'],
        Condition: { StringEquals: via('rds'), Bool: { 'kms:GrantIsForAWSResource': 'true' } } },
      { Sid: 'BackupAccountsUseKeyViaEc2', Action: ['kms:Decrypt', 'kms:DescribeKey', 'kms:Encrypt', 'kms:GenerateDataKey*', 'kms:ReEncrypt*'], Condition: { StringEquals: via('ec2') } },
      { Sid: 'BackupAccountsGrantToEc2', Action: ['kms:CreateGrant', 'kms:ListGrants', 'kms:RevokeGrant'],
        Condition: { StringEquals: via('ec2'), Bool: { 'kms:GrantIsForAWSResource': 'true' } } },
    ]);
    assert.ok(statements.slice(1).every((st) => JSON.stringify(st.Principal) === JSON.stringify(root(target))));
  });

  // Whoever can delete or disable the backup key makes every copy unreadable, locked EBS copies included.
  const shortWindow = {
    Sid: 'DenyShortDeletionWindow', Effect: 'Deny', Principal: { AWS: '*' }, Action: 'kms:ScheduleKeyDeletion', Resource: '*',
    Condition: { NumericLessThan: { 'kms:ScheduleKeyDeletionPendingWindowInDays': MAX_PENDING_WINDOW_DAYS } },
  };
  test('target keys (home and each extra region): the account itself, no deletion window under 30 days, rotation on, retained', () => {
    const templates = [synth.target, ...synth.regions];
    assert.equal(templates.length, 1 + config.target.extraRegions.length);
    for (const t of templates) {
      const keys = resources(t, 'AWS::KMS::Key');
      assert.equal(Object.keys(keys).length, 1);
      const [key] = Object.values(keys);
      assert.equal(key.DeletionPolicy, 'Retain');
      assert.equal(key.Properties.EnableKeyRotation, true);
      assert.equal(key.Properties.PendingWindowInDays, 30);
      assert.deepEqual(key.Properties.KeyPolicy.Statement, [{ Effect: 'Allow', Principal: root(target), Action: 'kms:*', Resource: '*' }, shortWindow]);
      t.hasResourceProperties('AWS::KMS::Alias', { AliasName: 'alias/snapferry-target' });
    }
  });

  test('target keys with a break-glass role: only it deletes or disables a key; only it and CloudFormation\'s execution role change the policy', () => {
    const c = exampleConfig();
    const breakGlass = `arn:aws:iam::${target}:role/snapferry-break-glass`;
    c.target.breakGlassRoleArn = breakGlass;
    const s = synthExample(c);
    const stacks = [{ t: s.target, region: c.target.region }, ...s.regions.map((t, i) => ({ t, region: c.target.extraRegions[i] }))];
    for (const { t, region } of stacks) {
      // The role cdk bootstrap creates and CloudFormation deploys with: KMS refuses a policy that
      // would not let the principal setting it set it again (the lockout safety check).
      const deployer = `arn:aws:iam::${target}:role/cdk-hnb659fds-cfn-exec-role-${target}-${region}`;
      const [key] = Object.values(resources(t, 'AWS::KMS::Key'));
      assert.deepEqual(key.Properties.KeyPolicy.Statement, [
        { Effect: 'Allow', Principal: root(target), Action: 'kms:*', Resource: '*' },
        shortWindow,
        { Sid: 'OnlyBreakGlassDeletesOrDisables', Effect: 'Deny', Principal: { AWS: '*' }, Action: ['kms:DisableKey', 'kms:ScheduleKeyDeletion'], Resource: '*',
          Condition: { ArnNotEquals: { 'aws:PrincipalArn': breakGlass } } },
        { Sid: 'OnlyBreakGlassOrDeploymentChangesPolicy', Effect: 'Deny', Principal: { AWS: '*' }, Action: 'kms:PutKeyPolicy', Resource: '*',
          Condition: { ArnNotEquals: { 'aws:PrincipalArn': [breakGlass, deployer] } } },
      ], region);
    }
  });
});

// The backup account may use a source's sharing key only as RDS in that source's region does
// when it copies a shared snapshot (kms:ViaService), in the key policy and in the copy role.
describe('sharing keys: the backup account only through RDS', () => {
  test('every key policy statement for another account carries kms:ViaService rds.<source region> (ebs: or ec2.<source region>); grants only for AWS resources', () => {
    for (const { config: s, t } of multiSources) {
      const statements: Statement[] = only(t, 'AWS::KMS::Key', {}).Properties.KeyPolicy.Statement;
      const forOthers = statements.filter((st) => JSON.stringify(st.Principal) !== JSON.stringify(root(s.account)));
      const services = s.kinds.includes('ebs') ? ['rds', 'ec2'] : ['rds'];
      assert.deepEqual(forOthers.map((st) => st.Principal), services.flatMap(() => [root(target), root(target)]), s.account);
      assert.deepEqual(forOthers.map((st) => st.Condition?.StringEquals?.['kms:ViaService']),
        services.flatMap((service) => [0, 1].map(() => `${service}.${s.region}.amazonaws.com`)), s.account);
      for (const st of forOthers) {
        const actions = list(st.Action);
        assert.ok(!actions.includes('kms:RetireGrant'), `${st.Sid}: kms:RetireGrant has no effect in a key policy`);
        if (actions.some((a) => GRANTS.test(a))) assert.equal(st.Condition?.Bool?.['kms:GrantIsForAWSResource'], 'true', st.Sid);
      }
    }
  });

  test('every copy-role statement on a source account\'s keys names its region and carries kms:ViaService rds or ec2.<that region>', () => {
    const sources = new Map(multiConfig.sources.map((s) => [s.account, s.region]));
    const covered = { use: new Set<string>(), grants: new Set<string>() };
    const ec2Covered = { use: new Set<string>(), grants: new Set<string>() };
    for (const { st } of roleStatements(multi.target)) {
      for (const r of list(st.Resource)) {
        const m = typeof r === 'string' ? /^arn:aws:kms:([^:]+):(\d{12}):key\/\*$/.exec(r) : null;
        if (!m || !sources.has(m[2])) continue;
        const [, region, account] = m;
        assert.equal(region, sources.get(account), `${st.Sid}: ${r} is not the key region of source ${account}`);
        const via = st.Condition?.StringEquals?.['kms:ViaService'];
        assert.ok(via === `rds.${region}.amazonaws.com` || via === `ec2.${region}.amazonaws.com`, `${st.Sid}: ${r} via ${via}`);
        const into = via.startsWith('ec2.') ? ec2Covered : covered;
        const actions = list(st.Action);
        assert.ok(!actions.includes('kms:RetireGrant'), `${st.Sid}: kms:RetireGrant under kms:ViaService never applies`);
        if (actions.some((a) => GRANTS.test(a))) {
          assert.equal(st.Condition?.Bool?.['kms:GrantIsForAWSResource'], 'true', st.Sid);
          if (actions.includes('kms:CreateGrant')) into.grants.add(account);
        }
        if (actions.includes('kms:Decrypt')) into.use.add(account);
      }
    }
    assert.deepEqual([...covered.use].sort(), [...sources.keys()].sort(), 'every source key is usable through RDS');
    assert.deepEqual([...covered.grants].sort(), [...sources.keys()].sort(), 'RDS can be granted every source key');
    // The backup account copies every kind by default: EC2 may use every source key too (a source's
    // key policy admits EC2 only where that source backs up EBS).
    assert.deepEqual([...ec2Covered.use].sort(), [...sources.keys()].sort(), 'every source key is usable through EC2');
    assert.deepEqual([...ec2Covered.grants].sort(), [...sources.keys()].sort(), 'EC2 can be granted every source key');
  });
});

describe('pipeline bus policy', () => {
  const busStatements = (t: Template) =>
    Object.values(resources(t, 'AWS::Events::EventBusPolicy')).map((p) => p.Properties.Statement as Statement);

  test('target bus admits PutEvents only from each source\'s forwarding role (aws:PrincipalArn), only snapferry "Snapshot Shared"', () => {
    for (const [c, s] of [[config, synth], [multiConfig, multi]] as const) {
      const bus = only(s.target, 'AWS::Events::EventBus', { Name: routing.pipeline_bus });
      for (const p of Object.values(resources(s.target, 'AWS::Events::EventBusPolicy'))) {
        assert.deepEqual(p.Properties.EventBusName, { Ref: bus.id });
      }
      const statements = busStatements(s.target).map(({ Sid: _, ...st }) => st);
      assert.deepEqual(statements, c.sources.map((src) => ({
        Effect: 'Allow',
        Principal: root(src.account),
        Action: 'events:PutEvents',
        Resource: { 'Fn::GetAtt': [bus.id, 'Arn'] },
        // events:source and events:detail-type are multivalued: a set operator, and present.
        Condition: {
          StringEquals: { 'aws:PrincipalArn': forwarderArn(src.account, src.region) },
          'ForAllValues:StringEquals': { 'events:source': routing.source, 'events:detail-type': 'Snapshot Shared' },
          Null: { 'events:source': 'false', 'events:detail-type': 'false' },
        },
      })));
    }
  });

  test('source account: the forwarding rule uses the role the target bus admits, which may only put events on the target bus', () => {
    for (const { config: s, t } of multiSources) {
      const rule = only(t, 'AWS::Events::Rule', { Name: `snapferry-shared-to-${target}` });
      assert.deepEqual(rule.Properties.Targets.map((x: any) => x.Arn), [targetBusArn]);
      const roleId = rule.Properties.Targets[0].RoleArn['Fn::GetAtt'][0];
      const role = resources(t, 'AWS::IAM::Role')[roleId].Properties;
      // The name the backup account's bus policy computes from the config.
      assert.equal(`arn:aws:iam::${s.account}:role/${role.RoleName}`, forwarderArn(s.account, s.region));
      assert.deepEqual(role.AssumeRolePolicyDocument.Statement,
        [{ Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'events.amazonaws.com' } }]);
      assert.equal(role.ManagedPolicyArns, undefined);
      assert.equal(role.Policies, undefined);
      const sts = roleStatements(t).filter((x) => x.role === roleId).map((x) => x.st);
      assert.deepEqual(sts, [{ Effect: 'Allow', Action: 'events:PutEvents', Resource: targetBusArn }]);
      t.resourceCountIs('AWS::IAM::ManagedPolicy', 0);
    }
  });

  test('source bus admits PutEvents only from the backup account\'s forwarding role (aws:PrincipalArn), only snapferry "Snapshot Copied"', () => {
    for (const { t } of [...multiSources, { t: synth.source }]) {
      const bus = only(t, 'AWS::Events::EventBus', { Name: routing.pipeline_bus });
      const policies = Object.values(resources(t, 'AWS::Events::EventBusPolicy'));
      assert.equal(policies.length, 1);
      assert.deepEqual(policies[0].Properties.EventBusName, { Ref: bus.id });
      assert.deepEqual(busStatements(t).map(({ Sid: _, ...st }) => st), [{
        Effect: 'Allow',
        Principal: root(target),
        Action: 'events:PutEvents',
        Resource: { 'Fn::GetAtt': [bus.id, 'Arn'] },
        Condition: {
          // The role the backup account's copied_back rules use, in its home region.
          StringEquals: { 'aws:PrincipalArn': forwarderArn(target, config.target.region) },
          'ForAllValues:StringEquals': { 'events:source': routing.source, 'events:detail-type': 'Snapshot Copied' },
          Null: { 'events:source': 'false', 'events:detail-type': 'false' },
        },
      }]);
    }
  });

  test('backup account: the copied_back rules use the role the source buses admit, which may only put events on the source buses', () => {
    const role = only(multi.target, 'AWS::IAM::Role', { RoleName: `snapferry-forward-${config.target.region}` });
    assert.equal(`arn:aws:iam::${target}:role/${role.Properties.RoleName}`, forwarderArn(target, config.target.region));
    const rules = Object.values(resources(multi.target, 'AWS::Events::Rule')).filter((r) => r.Properties.Name.startsWith('snapferry-copied-to-'));
    assert.equal(rules.length, multiConfig.sources.length);
    for (const r of rules) assert.deepEqual(r.Properties.Targets.map((x: any) => x.RoleArn), [{ 'Fn::GetAtt': [role.id, 'Arn'] }]);
    const sts = roleStatements(multi.target).filter((x) => x.role === role.id).map((x) => x.st);
    assert.deepEqual(sts, [{ Effect: 'Allow', Action: 'events:PutEvents',
      Resource: multiConfig.sources.map((s) => `arn:aws:events:${s.region}:${s.account}:event-bus/${routing.pipeline_bus}`) }]);
    assert.equal(role.Properties.ManagedPolicyArns, undefined);
  });
});

// Actions that create, change, lock or delete something; each must be bound by a snapferry tag.
const WRITES = /^(rds|ec2):(Create|Copy|Restore|Delete|Modify|AddTags|Lock)/;
const SNAPFERRY_TAG = /^aws:(Request|Resource)Tag\/snapferry:(managed|restore-test)$/;

// The actions with no resource type (IAM authorizes them only on "*"): those of permissions.json's
// statements with a scope rendered as "*" ('account', 'ec2:all'), and the Describe calls Lambda
// makes with the role of a function it attaches to a VPC (data checks). Nothing else may be on "*".
const permissions = loadPermissions(PERMISSIONS_FILE, routing);
const NO_RESOURCE_TYPE = new Set([...[...permissions.every_step, ...permissions.event_source, ...Object.values(permissions.steps).flat()]
  .filter((s) => s.resources.some((r) => ANY_RESOURCE_SCOPES.includes(r))).flatMap((s) => s.actions), ...LAMBDA_VPC_DESCRIBE]);

test('the actions permissions.json puts on "*" (scopes account, ec2:all) are read-only (Describe, Get, List), each named in full', () => {
  assert.ok(NO_RESOURCE_TYPE.size > 0);
  for (const a of NO_RESOURCE_TYPE) assert.match(a, /^[a-z0-9-]+:(Describe|Get|List)[A-Za-z0-9]+$/);
});

describe('IAM', () => {
  for (const [side, t] of [['source', synth.source], ['target', synth.target], ['source (ebs)', ebs.source]] as const) {
    test(`${side}: every RDS and EC2 write is conditioned on a snapferry tag (EC2: or is the tagging of a create call, or names the volume/instance snapshotted)`, () => {
      let checked = 0;
      for (const { st } of roleStatements(t)) {
        const actions = list(st.Action);
        if (!actions.some((a) => WRITES.test(a))) continue;
        checked++;
        const tags = Object.keys(st.Condition?.StringEquals ?? {});
        if (tags.some((k) => SNAPFERRY_TAG.test(k))) continue;
        // ec2:CreateTags only as part of the call that creates the resource (itself tag-conditioned).
        const atCreation = actions.every((a) => a === 'ec2:CreateTags') && tags.includes('ec2:CreateAction');
        // CreateSnapshot(s) authorizes the volume (and instance) apart from the new snapshot, which
        // carries the request tag: those statements name only volumes and instances.
        const sourcesOnly = actions.every((a) => /^ec2:CreateSnapshots?$/.test(a))
          && list(st.Resource).every((r: unknown) => typeof r === 'string' && /^arn:aws:ec2:[\w-]+:\d{12}:(volume|instance)\/\*$/.test(r));
        // The network interfaces Lambda manages for a function in the restore-test VPC (data checks):
        // created only in its subnets with its security group, deleted or changed only in that VPC.
        const lambdaEnis = actions.every((a) => /^ec2:(Create|Delete)NetworkInterface$|^ec2:(Un)?assignPrivateIpAddresses$/i.test(a))
          && (JSON.stringify(st.Condition?.ArnEquals?.['ec2:Vpc'] ?? '').includes(':vpc/')
            || (list(st.Resource).some((r: unknown) => JSON.stringify(r).includes(':subnet/'))
              && list(st.Resource).every((r: unknown) => typeof r !== 'string' || /:network-interface\/\*$/.test(r))));
        assert.ok(atCreation || sourcesOnly || lambdaEnis, `${st.Sid}: ${JSON.stringify(st.Action)} on ${JSON.stringify(st.Resource)} without a tag condition`);
      }
      assert.ok(checked >= 2);
    });

    test(`${side}: no "*" resource (but for actions with no resource type) and no service-wide action in any role`, () => {
      for (const { st } of roleStatements(t)) {
        const actions = list(st.Action);
        if (list(st.Resource).includes('*')) {
          assert.ok(actions.every((a) => NO_RESOURCE_TYPE.has(a)), `${st.Sid} ${JSON.stringify(st.Action)} on "*"`);
          assert.deepEqual(list(st.Resource), ['*'], `${st.Sid}: "*" and more`);
        }
        assert.ok(!actions.some((a) => /:\*$/.test(a)), `${st.Sid}: ${JSON.stringify(st.Action)}`);
      }
    });
  }

  test('deletes only restore-test resources, sets passwords only on restore tests, modifies (shares) only managed snapshots', () => {
    const restore = statementsOf(synth.target, 'snapferry-restore');
    const del = restore.filter((s) => list(s.Action).some((a) => a.startsWith('rds:Delete')));
    assert.deepEqual(del.map((s) => s.Condition), [{ StringEquals: { 'aws:ResourceTag/snapferry:restore-test': 'true' } }]);
    assert.ok(del.every((s) => list(s.Resource).every((r: string) => /:(db|cluster):snapferry-\*$/.test(r))));
    // The data checks' new master password: only on a restore test (tagged, snapferry-), in the home region; no other step modifies a database.
    const modifyDb = (s: Statement) => list(s.Action).some((a) => /^rds:ModifyDB(Instance|Cluster)$/.test(a));
    const reset = restore.filter(modifyDb);
    assert.deepEqual(reset.map((s) => [s.Sid, list(s.Action).sort(), s.Condition]),
      [['ResetRestoreTestPasswordsOnly', ['rds:ModifyDBCluster', 'rds:ModifyDBInstance'], { StringEquals: { 'aws:ResourceTag/snapferry:restore-test': 'true' } }]]);
    assert.deepEqual(list(reset[0].Resource).sort(), ['cluster', 'db'].map((type) => `arn:aws:rds:${config.target.region}:${target}:${type}:snapferry-*`));
    for (const s of [synth, ebs]) {
      for (const f of routing.functions.filter((f) => f.name !== 'restore')) assert.ok(!statementsOf(templateFor(s, f.account), functionName(f)).some(modifyDb), f.name);
    }

    const share = statementsOf(synth.source, 'snapferry-share-snapshot');
    const modify = share.filter((s) => list(s.Action).some((a) => a.startsWith('rds:Modify')));
    assert.deepEqual(modify.map((s) => s.Condition), [{ StringEquals: { 'aws:ResourceTag/snapferry:managed': 'true' } }]);
    assert.ok(modify.every((s) => list(s.Resource).every((r: string) => /:(cluster-)?snapshot:snapferry-\*$/.test(r))));
  });

  test('the expire steps delete (and withdraw shares of, and tag) only managed snapferry- snapshots, in their regions, and never a database or volume', () => {
    const managed = { StringEquals: { 'aws:ResourceTag/snapferry:managed': 'true' } };
    const regionsOf = (side: 'source' | 'target') => (side === 'source' ? [sourceRegion] : [config.target.region, ...config.target.extraRegions]);
    for (const [side, t, fn] of [['source', ebs.source, 'snapferry-expire-snapshots'], ['target', synth.target, 'snapferry-expire-copies']] as const) {
      const sts = statementsOf(t, fn);
      const writes = sts.filter((s) => list(s.Action).some((a) => WRITES.test(a)));
      assert.ok(writes.length >= 2, fn);
      for (const s of writes) {
        assert.deepEqual(s.Condition, managed, `${fn} ${s.Sid}`);
        // expire-snapshots also tags what it released (snapferry:released-at): tagging too only on managed snapshots.
        for (const a of list(s.Action)) assert.match(a, /^(rds:(Delete|Modify)DB(Cluster)?Snapshot(Attribute)?|rds:AddTagsToResource|ec2:(DeleteSnapshot|ModifySnapshotAttribute|CreateTags))$/, `${fn} ${s.Sid}`);
        for (const r of list(s.Resource)) {
          const m = /^arn:aws:(?:rds:([\w-]+):\d{12}:(?:cluster-)?snapshot:snapferry-\*|ec2:([\w-]+)::snapshot\/\*)$/.exec(r);
          assert.ok(m, `${fn} ${s.Sid}: ${r}`);
          assert.ok(regionsOf(side).includes(m[1] ?? m[2]), `${fn} ${s.Sid}: ${r}`);
        }
      }
      // Every region of the stack is covered, for RDS and (the source backing up EBS, the target by default) EBS.
      const resourcesOf = (pattern: RegExp) => writes.flatMap((s) => list(s.Resource)).filter((r: string) => pattern.test(r));
      assert.equal(resourcesOf(/:rds:.*snapshot:/).length, 2 * regionsOf(side).length, fn);
      assert.equal(resourcesOf(/:ec2:/).length, regionsOf(side).length, fn);
      const actions = sts.flatMap((s) => list(s.Action));
      for (const a of actions) assert.doesNotMatch(a, /^(rds:DeleteDB(Instance|Cluster)$|ec2:(DeleteVolume|UnlockSnapshot|LockSnapshot)$|rds:(Create|Copy|Restore)|ec2:(CreateSnapshots?|CreateVolume|Copy))/, fn);
    }
    // The backup account never shares its copies.
    assert.ok(!statementsOf(synth.target, 'snapferry-expire-copies').some((s) => list(s.Action).some((a) => /Modify.*Attribute/.test(a))));
  });

  test('restores only create resources tagged as restore tests, in the isolated subnet group', () => {
    const restore = statementsOf(synth.target, 'snapferry-restore');
    const create = restore.filter((s) => list(s.Action).some((a) => /^rds:(Restore|CreateDBInstance)/.test(a)));
    assert.deepEqual(create.map((s) => s.Condition), [{ StringEquals: { 'aws:RequestTag/snapferry:restore-test': 'true' } }]);
    assert.ok(list(create[0].Resource).includes(`arn:aws:rds:${config.target.region}:${target}:subgrp:snapferry-restore-test`));
  });

  test('EBS: deletes only restore-test volumes; modifies, deletes and locks only managed snapshots; tags only at creation or managed snapshots', () => {
    const managed = { StringEquals: { 'aws:ResourceTag/snapferry:managed': 'true' } };
    const statementsWith = (t: Template, fn: string, action: string) => statementsOf(t, fn).filter((s) => list(s.Action).includes(action));
    const snapshotsOnly = (s: Statement) => list(s.Resource).every((r: string) => /^arn:aws:ec2:[\w-]+::snapshot\/\*$/.test(r));
    const del = statementsWith(synth.target, 'snapferry-restore', 'ec2:DeleteVolume');
    assert.deepEqual(del.map((s) => s.Condition), [{ StringEquals: { 'aws:ResourceTag/snapferry:restore-test': 'true' } }]);
    assert.deepEqual(list(del[0].Resource), [`arn:aws:ec2:${config.target.region}:${target}:volume/*`]);
    for (const [t, fn, action] of [[ebs.source, 'snapferry-share-snapshot', 'ec2:ModifySnapshotAttribute'], [ebs.source, 'snapferry-share-snapshot', 'ec2:DeleteSnapshot'],
      [synth.target, 'snapferry-copy-shared-snapshot', 'ec2:DeleteSnapshot'], [synth.target, 'snapferry-restore', 'ec2:LockSnapshot']] as const) {
      const sts = statementsWith(t, fn, action);
      assert.deepEqual(sts.map((s) => s.Condition), [managed], `${fn} ${action}`);
      assert.ok(sts.every(snapshotsOnly), `${fn} ${action}`);
    }
    for (const [t, fn] of [[ebs.source, 'snapferry-create-snapshot'], [ebs.source, 'snapferry-share-snapshot'],
      [synth.target, 'snapferry-copy-shared-snapshot'], [synth.target, 'snapferry-restore']] as const) {
      for (const s of statementsWith(t, fn, 'ec2:CreateTags')) {
        assert.deepEqual(list(s.Action), ['ec2:CreateTags'], `${fn} ${s.Sid}`);
        assert.ok(s.Condition?.StringEquals?.['ec2:CreateAction'] !== undefined || JSON.stringify(s.Condition) === JSON.stringify(managed), `${fn} ${s.Sid}`);
      }
    }
  });

  test('KMS grants only for AWS resources; other accounts\' keys only through RDS or EC2', () => {
    for (const t of [synth.source, synth.target, ebs.source]) {
      for (const { st } of roleStatements(t)) {
        const actions = list(st.Action);
        if (actions.some((a) => /^kms:(CreateGrant|ListGrants|RevokeGrant|RetireGrant)$/.test(a))) {
          assert.equal(st.Condition?.Bool?.['kms:GrantIsForAWSResource'], 'true', st.Sid);
        }
        for (const r of list(st.Resource).filter((x: unknown) => typeof x === 'string' && x.startsWith('arn:aws:kms:'))) {
          const viaRds = JSON.stringify(st.Condition ?? {}).includes('kms:ViaService');
          const byAlias = JSON.stringify(st.Condition ?? {}).includes('kms:ResourceAliases');
          assert.ok(viaRds || byAlias, `${st.Sid}: ${r} without kms:ViaService or alias condition`);
        }
      }
    }
    const copy = statementsOf(synth.target, 'snapferry-copy-shared-snapshot');
    assert.ok(copy.some((s) => list(s.Resource).includes(`arn:aws:kms:${sourceRegion}:${source}:key/*`)
      && s.Condition?.StringEquals?.['kms:ViaService'] === `rds.${sourceRegion}.amazonaws.com`));
  });

  test('each step can use its own queue, DLQ and pipeline bus and nothing else of the kind; a reconcile step may only send to the queues it repairs through', () => {
    // The reconcile steps restart stalled work with a message in that step's own queue (never its DLQ).
    const repairs: Record<string, string[]> = {
      'reconcile-snapshots': ['share-snapshot'],
      'reconcile-copies': ['copy-shared-snapshot', 'restore'],
    };
    for (const fn of routing.functions) {
      const t = fn.account === 'source' ? synth.source : synth.target;
      const sts = statementsOf(t, `snapferry-${fn.name}`);
      const q = only(t, 'AWS::SQS::Queue', { QueueName: fn.queue }).id;
      const dlq = only(t, 'AWS::SQS::Queue', { QueueName: `${fn.queue}-dlq` }).id;
      const others = (repairs[fn.name] ?? []).map((name) => {
        const other = routing.functions.find((f) => f.name === name)!;
        assert.equal(other.account, fn.account, `${fn.name} repairs through ${name}, a step of its own account`);
        return only(t, 'AWS::SQS::Queue', { QueueName: other.queue }).id;
      });
      const onSqs = sts.filter((s) => list(s.Action).some((a) => a.startsWith('sqs:')));
      const sqsResources = onSqs.flatMap((s) => list(s.Resource));
      assert.deepEqual(new Set(sqsResources.map((r: any) => r['Fn::GetAtt'][0])), new Set([q, dlq, ...others]), fn.name);
      // On the other steps' queues: sqs:SendMessage alone, in a statement naming nothing else.
      const onOthers = onSqs.filter((s) => list(s.Resource).some((r: any) => others.includes(r['Fn::GetAtt'][0])));
      for (const st of onOthers) {
        assert.deepEqual(list(st.Action), ['sqs:SendMessage'], `${fn.name} ${st.Sid}`);
        assert.ok(list(st.Resource).every((r: any) => others.includes(r['Fn::GetAtt'][0])), `${fn.name} ${st.Sid}`);
      }
      assert.equal(onOthers.length, others.length > 0 ? 1 : 0, fn.name);
      const bus = only(t, 'AWS::Events::EventBus', { Name: routing.pipeline_bus }).id;
      const put = sts.filter((s) => list(s.Action).includes('events:PutEvents'));
      assert.deepEqual(put.flatMap((s) => list(s.Resource)), [{ 'Fn::GetAtt': [bus, 'Arn'] }], fn.name);
    }
  });
});
