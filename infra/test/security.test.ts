// Least privilege, checked on the synthesized templates: the key policies, the bus policy,
// and tag conditions on every IAM action that creates, modifies or deletes.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Template } from 'aws-cdk-lib/assertions';
import { Config } from '../lib/config';
import { loadPermissions, PERMISSIONS_FILE } from '../lib/permissions';
import { exampleConfig, list, only, resources, roleStatements, routing, Statement, statementsOf, synthExample } from './helpers';

const config = exampleConfig();
const synth = synthExample(config);
const target = config.target.account;
const source = config.sources[0].account;
const sourceRegion = config.sources[0].region;
const root = (a: string) => ({ AWS: `arn:aws:iam::${a}:root` });

/** The example plus a second source in the same region and a third in another one. */
function multiSourceConfig(): Config {
  const c = exampleConfig();
  c.sources.push({ ...c.sources[0], account: '333333333333' }, { ...c.sources[0], account: '444444444444', region: 'us-east-1' });
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

  test('target keys (home and each extra region): only the account itself, rotation on, retained', () => {
    const templates = [synth.target, ...synth.regions];
    assert.equal(templates.length, 1 + config.target.extraRegions.length);
    for (const t of templates) {
      const keys = resources(t, 'AWS::KMS::Key');
      assert.equal(Object.keys(keys).length, 1);
      const [key] = Object.values(keys);
      assert.equal(key.DeletionPolicy, 'Retain');
      assert.equal(key.Properties.EnableKeyRotation, true);
      assert.deepEqual(key.Properties.KeyPolicy.Statement, [{ Effect: 'Allow', Principal: root(target), Action: 'kms:*', Resource: '*' }]);
      t.hasResourceProperties('AWS::KMS::Alias', { AliasName: 'alias/snapferry-target' });
    }
  });
});

// The backup account may use a source's sharing key only as RDS in that source's region does
// when it copies a shared snapshot (kms:ViaService), in the key policy and in the copy role.
describe('sharing keys: the backup account only through RDS', () => {
  test('every key policy statement for another account carries kms:ViaService rds.<source region>; grants only for AWS resources', () => {
    for (const { config: s, t } of multiSources) {
      const statements: Statement[] = only(t, 'AWS::KMS::Key', {}).Properties.KeyPolicy.Statement;
      const forOthers = statements.filter((st) => JSON.stringify(st.Principal) !== JSON.stringify(root(s.account)));
      assert.deepEqual(forOthers.map((st) => st.Principal), [root(target), root(target)], s.account);
      for (const st of forOthers) {
        assert.equal(st.Condition?.StringEquals?.['kms:ViaService'], `rds.${s.region}.amazonaws.com`, `${s.account} ${st.Sid}`);
        const actions = list(st.Action);
        assert.ok(!actions.includes('kms:RetireGrant'), `${st.Sid}: kms:RetireGrant has no effect in a key policy`);
        if (actions.some((a) => GRANTS.test(a))) assert.equal(st.Condition?.Bool?.['kms:GrantIsForAWSResource'], 'true', st.Sid);
      }
    }
  });

  test('every copy-role statement on a source account\'s keys names its region and carries kms:ViaService rds.<that region>', () => {
    const sources = new Map(multiConfig.sources.map((s) => [s.account, s.region]));
    const covered = { use: new Set<string>(), grants: new Set<string>() };
    for (const { st } of roleStatements(multi.target)) {
      for (const r of list(st.Resource)) {
        const m = typeof r === 'string' ? /^arn:aws:kms:([^:]+):(\d{12}):key\/\*$/.exec(r) : null;
        if (!m || !sources.has(m[2])) continue;
        const [, region, account] = m;
        assert.equal(region, sources.get(account), `${st.Sid}: ${r} is not the key region of source ${account}`);
        assert.equal(st.Condition?.StringEquals?.['kms:ViaService'], `rds.${region}.amazonaws.com`, `${st.Sid}: ${r}`);
        const actions = list(st.Action);
        assert.ok(!actions.includes('kms:RetireGrant'), `${st.Sid}: kms:RetireGrant under kms:ViaService never applies`);
        if (actions.some((a) => GRANTS.test(a))) {
          assert.equal(st.Condition?.Bool?.['kms:GrantIsForAWSResource'], 'true', st.Sid);
          if (actions.includes('kms:CreateGrant')) covered.grants.add(account);
        }
        if (actions.includes('kms:Decrypt')) covered.use.add(account);
      }
    }
    assert.deepEqual([...covered.use].sort(), [...sources.keys()].sort(), 'every source key is usable through RDS');
    assert.deepEqual([...covered.grants].sort(), [...sources.keys()].sort(), 'RDS can be granted every source key');
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
      t.resourceCountIs('AWS::Events::EventBusPolicy', 0);
    }
  });
});

// Actions that create, change or delete something; each must be bound by a snapferry tag.
const WRITES = /^rds:(Create|Copy|Restore|Delete|Modify|AddTags)/;

// The actions with no resource type (IAM authorizes them only on "*"): those of permissions.json's
// statements with scope 'account', the only scope rendered as "*". Nothing else may be on "*".
const permissions = loadPermissions(PERMISSIONS_FILE, routing);
const NO_RESOURCE_TYPE = new Set([...permissions.every_step, ...permissions.event_source, ...Object.values(permissions.steps).flat()]
  .filter((s) => s.resources.includes('account')).flatMap((s) => s.actions));

test('the actions permissions.json puts on "*" (scope account) are read-only (Describe, Get, List), each named in full', () => {
  assert.ok(NO_RESOURCE_TYPE.size > 0);
  for (const a of NO_RESOURCE_TYPE) assert.match(a, /^[a-z0-9-]+:(Describe|Get|List)[A-Za-z0-9]+$/);
});

describe('IAM', () => {
  for (const [side, t] of [['source', synth.source], ['target', synth.target]] as const) {
    test(`${side}: every RDS write is conditioned on a snapferry tag`, () => {
      let checked = 0;
      for (const { st } of roleStatements(t)) {
        if (!list(st.Action).some((a) => WRITES.test(a))) continue;
        checked++;
        const tags = Object.keys(st.Condition?.StringEquals ?? {});
        assert.ok(tags.some((k) => /^aws:(Request|Resource)Tag\/snapferry:(managed|restore-test)$/.test(k)),
          `${st.Sid}: ${JSON.stringify(st.Action)} without a tag condition`);
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

  test('deletes only restore-test resources, modifies (shares) only managed snapshots', () => {
    const restore = statementsOf(synth.target, 'snapferry-restore');
    const del = restore.filter((s) => list(s.Action).some((a) => a.startsWith('rds:Delete')));
    assert.deepEqual(del.map((s) => s.Condition), [{ StringEquals: { 'aws:ResourceTag/snapferry:restore-test': 'true' } }]);
    assert.ok(del.every((s) => list(s.Resource).every((r: string) => /:(db|cluster):snapferry-\*$/.test(r))));

    const share = statementsOf(synth.source, 'snapferry-share-snapshot');
    const modify = share.filter((s) => list(s.Action).some((a) => a.startsWith('rds:Modify')));
    assert.deepEqual(modify.map((s) => s.Condition), [{ StringEquals: { 'aws:ResourceTag/snapferry:managed': 'true' } }]);
    assert.ok(modify.every((s) => list(s.Resource).every((r: string) => /:(cluster-)?snapshot:snapferry-\*$/.test(r))));
  });

  test('restores only create resources tagged as restore tests, in the isolated subnet group', () => {
    const restore = statementsOf(synth.target, 'snapferry-restore');
    const create = restore.filter((s) => list(s.Action).some((a) => /^rds:(Restore|CreateDBInstance)/.test(a)));
    assert.deepEqual(create.map((s) => s.Condition), [{ StringEquals: { 'aws:RequestTag/snapferry:restore-test': 'true' } }]);
    assert.ok(list(create[0].Resource).includes(`arn:aws:rds:${config.target.region}:${target}:subgrp:snapferry-restore-test`));
  });

  test('KMS grants only for AWS resources; other accounts\' keys only through RDS', () => {
    for (const t of [synth.source, synth.target]) {
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

  test('each step can use its own queue, DLQ and pipeline bus and nothing else of the kind', () => {
    for (const fn of routing.functions) {
      const t = fn.account === 'source' ? synth.source : synth.target;
      const sts = statementsOf(t, `snapferry-${fn.name}`);
      const q = only(t, 'AWS::SQS::Queue', { QueueName: fn.queue }).id;
      const dlq = only(t, 'AWS::SQS::Queue', { QueueName: `${fn.queue}-dlq` }).id;
      const sqsResources = sts.filter((s) => list(s.Action).some((a) => a.startsWith('sqs:'))).flatMap((s) => list(s.Resource));
      assert.deepEqual(new Set(sqsResources.map((r: any) => r['Fn::GetAtt'][0])), new Set([q, dlq]), fn.name);
      const bus = only(t, 'AWS::Events::EventBus', { Name: routing.pipeline_bus }).id;
      const put = sts.filter((s) => list(s.Action).includes('events:PutEvents'));
      assert.deepEqual(put.flatMap((s) => list(s.Resource)), [{ 'Fn::GetAtt': [bus, 'Arn'] }], fn.name);
    }
  });
});
