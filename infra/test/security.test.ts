// Least privilege, checked on the synthesized templates: the key policies, the bus policy,
// and tag conditions on every IAM action that creates, modifies or deletes.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Template } from 'aws-cdk-lib/assertions';
import { exampleConfig, only, resources, routing, synthExample } from './helpers';

const config = exampleConfig();
const synth = synthExample(config);
const target = config.target.account;
const source = config.sources[0].account;
const root = (a: string) => ({ AWS: `arn:aws:iam::${a}:root` });

interface Statement { Sid?: string; Effect: string; Action: string | string[]; Resource: any; Condition?: any; Principal?: any }
const list = <T>(x: T | T[] | undefined): T[] => (x === undefined ? [] : Array.isArray(x) ? x : [x]);

/** Every statement of every IAM policy attached to a role in the template, with the role's logical id. */
function roleStatements(t: Template): { role: string; st: Statement }[] {
  return Object.values(resources(t, 'AWS::IAM::Policy')).flatMap((p) =>
    (p.Properties.PolicyDocument.Statement as Statement[]).map((st) => ({ role: p.Properties.Roles[0].Ref as string, st })));
}

function stepRole(t: Template, fnName: string): string {
  return only(t, 'AWS::Lambda::Function', { FunctionName: fnName }).Properties.Role['Fn::GetAtt'][0];
}

function statementsOf(t: Template, fnName: string): Statement[] {
  const role = stepRole(t, fnName);
  return roleStatements(t).filter((x) => x.role === role).map((x) => x.st);
}

describe('key policies', () => {
  test('sharing key: root keeps kms:*, the backup account gets exactly the copy actions, grants only for AWS resources', () => {
    const key = only(synth.source, 'AWS::KMS::Key', {});
    assert.equal(key.Properties.EnableKeyRotation, true);
    const statements = key.Properties.KeyPolicy.Statement.map(({ Sid: _, ...s }: Statement) => s);
    assert.deepEqual(statements, [
      { Effect: 'Allow', Principal: root(source), Action: 'kms:*', Resource: '*' },
      { Effect: 'Allow', Principal: root(target), Resource: '*',
        Action: ['kms:Decrypt', 'kms:DescribeKey', 'kms:Encrypt', 'kms:GenerateDataKey*', 'kms:ReEncrypt*'] },
      { Effect: 'Allow', Principal: root(target), Resource: '*',
        Action: ['kms:CreateGrant', 'kms:ListGrants', 'kms:RevokeGrant'],
        Condition: { Bool: { 'kms:GrantIsForAWSResource': 'true' } } },
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

describe('pipeline bus policy', () => {
  test('target bus admits PutEvents only from the allowlisted source accounts, only snapferry "Snapshot Shared"', () => {
    const policies = Object.values(resources(synth.target, 'AWS::Events::EventBusPolicy'));
    assert.equal(policies.length, 1);
    const bus = only(synth.target, 'AWS::Events::EventBus', { Name: routing.pipeline_bus });
    const { Sid: _, ...st } = policies[0].Properties.Statement;
    assert.deepEqual(policies[0].Properties.EventBusName, { Ref: bus.id });
    assert.deepEqual(st, {
      Effect: 'Allow',
      Principal: root(source),
      Action: 'events:PutEvents',
      Resource: { 'Fn::GetAtt': [bus.id, 'Arn'] },
      Condition: { StringEquals: { 'events:source': routing.source, 'events:detail-type': 'Snapshot Shared' } },
    });
  });

  test('source account: the forwarding role may put events on the target bus only', () => {
    const rule = only(synth.source, 'AWS::Events::Rule', { Name: `snapferry-shared-to-${target}` });
    const role = rule.Properties.Targets[0].RoleArn['Fn::GetAtt'][0];
    const sts = roleStatements(synth.source).filter((x) => x.role === role).map((x) => x.st);
    assert.deepEqual(sts, [{ Effect: 'Allow', Action: 'events:PutEvents',
      Resource: `arn:aws:events:${config.target.region}:${target}:event-bus/${routing.pipeline_bus}` }]);
    synth.source.resourceCountIs('AWS::Events::EventBusPolicy', 0);
  });
});

// Actions that create, change or delete something; each must be bound by a snapferry tag.
const WRITES = /^rds:(Create|Copy|Restore|Delete|Modify|AddTags)/;

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

    test(`${side}: no "*" resource and no service-wide action in any role`, () => {
      for (const { st } of roleStatements(t)) {
        assert.ok(!list(st.Resource).includes('*'), `${st.Sid} ${JSON.stringify(st.Action)} on "*"`);
        assert.ok(!list(st.Action).some((a) => /:\*$/.test(a)), `${st.Sid}: ${JSON.stringify(st.Action)}`);
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
    assert.ok(copy.some((s) => list(s.Resource).includes(`arn:aws:kms:*:${source}:key/*`)
      && s.Condition?.StringLike?.['kms:ViaService'] === 'rds.*.amazonaws.com'));
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
