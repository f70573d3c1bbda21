// The deployed queues, mappings and rules must be exactly what routing.json (the table the
// local host runs from) says. Any drift between the two fails here.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { functionName, crossAccountRule, dlqName } from '../lib/routing';
import { ebsConfig, exampleConfig, only, resources, routing, synthExample, templateFor } from './helpers';
import { RoutingRule } from '../lib/routing';

/** Whether the example's `side` stack deploys `rule` (a rule with kinds only where one is handled). */
const deployed = (side: 'source' | 'target', rule: RoutingRule): boolean => {
  const c = exampleConfig();
  const kinds: readonly string[] = side === 'source' ? c.sources[0].kinds : c.target.kinds;
  return rule.kinds === undefined || rule.kinds.some((k) => kinds.includes(k));
};

const synth = synthExample();

describe('routing.json drift', () => {
  for (const fn of routing.functions) {
    describe(fn.name, () => {
      const t = templateFor(synth, fn.account);

      test('queue settings and its DLQ', () => {
        const dlq = only(t, 'AWS::SQS::Queue', { QueueName: dlqName(fn) });
        assert.equal(dlq.Properties.MessageRetentionPeriod, routing.dlq_retention_days * 86400);
        const q = only(t, 'AWS::SQS::Queue', { QueueName: fn.queue });
        assert.equal(q.Properties.VisibilityTimeout, fn.timeout_seconds * routing.visibility_timeout_factor);
        assert.deepEqual(q.Properties.RedrivePolicy, {
          deadLetterTargetArn: { 'Fn::GetAtt': [dlq.id, 'Arn'] },
          maxReceiveCount: routing.max_receive_count,
        });
      });

      test('function timeout and event source mapping', () => {
        const f = only(t, 'AWS::Lambda::Function', { FunctionName: functionName(fn) });
        assert.equal(f.Properties.Timeout, fn.timeout_seconds);
        const q = only(t, 'AWS::SQS::Queue', { QueueName: fn.queue });
        const m = only(t, 'AWS::Lambda::EventSourceMapping', { EventSourceArn: { 'Fn::GetAtt': [q.id, 'Arn'] } });
        assert.deepEqual(m.Properties.FunctionName, { Ref: f.id });
        assert.equal(m.Properties.BatchSize, fn.batch_size);
        assert.deepEqual(m.Properties.FunctionResponseTypes, ['ReportBatchItemFailures']);
      });

      for (const rule of fn.rules.filter((r) => deployed(fn.account, r))) {
        test(`rule ${rule.name}`, () => {
          const r = only(t, 'AWS::Events::Rule', { Name: rule.name });
          const bus = only(t, 'AWS::Events::EventBus', { Name: routing.pipeline_bus });
          // No EventBusName means the account's default bus.
          assert.deepEqual(r.Properties.EventBusName, rule.bus === 'pipeline' ? { Ref: bus.id } : undefined);
          assert.deepEqual(r.Properties.EventPattern, rule.pattern);
          assert.equal(r.Properties.ScheduleExpression, rule.schedule);
          const q = only(t, 'AWS::SQS::Queue', { QueueName: fn.queue });
          assert.deepEqual(r.Properties.Targets.map((x: any) => x.Arn), [{ 'Fn::GetAtt': [q.id, 'Arn'] }]);
        });
      }
    });
  }

  test('cross-account forwarding: one rule per target account, to its pipeline bus', () => {
    const account = synth.deployment.target.account;
    const want = crossAccountRule(routing, account);
    const r = only(synth.source, 'AWS::Events::Rule', { Name: want.name });
    assert.deepEqual(r.Properties.EventPattern, want.pattern);
    assert.equal(JSON.stringify(r.Properties.EventPattern).includes('{account}'), false);
    const bus = only(synth.source, 'AWS::Events::EventBus', { Name: routing.pipeline_bus });
    assert.deepEqual(r.Properties.EventBusName, { Ref: bus.id });
    assert.deepEqual(r.Properties.Targets.map((x: any) => x.Arn),
      [`arn:aws:events:${synth.deployment.target.region}:${account}:event-bus/${routing.pipeline_bus}`]);
  });

  test('no rule, queue or function that routing.json does not list', () => {
    for (const side of ['source', 'target'] as const) {
      const t = templateFor(synth, side);
      const fns = routing.functions.filter((f) => f.account === side);
      const rules = fns.flatMap((f) => f.rules.filter((r) => deployed(side, r)).map((r) => r.name));
      if (side === 'source') rules.push(crossAccountRule(routing, synth.deployment.target.account).name);
      const names = (type: string, key: string) => Object.values(resources(t, type)).map((r) => r.Properties[key]).sort();
      assert.deepEqual(names('AWS::Events::Rule', 'Name'), rules.sort());
      assert.deepEqual(names('AWS::SQS::Queue', 'QueueName'), fns.flatMap((f) => [f.queue, dlqName(f)]).sort());
      assert.deepEqual(names('AWS::Lambda::Function', 'FunctionName'), fns.map(functionName).sort());
    }
  });
});

describe('EBS rules', () => {
  // A source backing up EBS, and the backup account (every kind by default): the rules that feed
  // share-snapshot and copy-shared-snapshot with EC2's "EBS Snapshot Notification" events.
  const synth = synthExample(ebsConfig());
  for (const [name, side, queue] of [
    ['snapferry-share-snapshot-ebs', 'source', 'snapferry-share-snapshot'],
    ['snapferry-copy-shared-snapshot-ebs', 'target', 'snapferry-copy-shared-snapshot'],
  ] as const) {
    test(`${side}: ${name} on the default bus, EC2's pattern from routing.json, into ${queue}`, () => {
      const want = routing.functions.flatMap((f) => f.rules).find((r) => r.name === name);
      assert.ok(want?.pattern, `routing.json has no rule ${name}`);
      assert.deepEqual((want.pattern as any).source, ['aws.ec2']);
      const t = templateFor(synth, side);
      const r = only(t, 'AWS::Events::Rule', { Name: name });
      assert.equal(r.Properties.EventBusName, undefined, 'the default bus, where AWS services put their events');
      assert.deepEqual(r.Properties.EventPattern, want.pattern);
      assert.equal(r.Properties.State, 'ENABLED');
      const q = only(t, 'AWS::SQS::Queue', { QueueName: queue });
      assert.deepEqual(r.Properties.Targets.map((x: any) => x.Arn), [{ 'Fn::GetAtt': [q.id, 'Arn'] }]);
    });
  }
});

describe('rules for kinds a stack does not handle', () => {
  // The example backs up databases only: EC2's snapshot events would reach steps whose roles
  // hold no EC2 permission, and fail there.
  const t = templateFor(synth, 'source');
  test('an RDS-only source has no EBS rule', () => {
    const names = Object.values(resources(t, 'AWS::Events::Rule')).map((r: any) => r.Properties.Name);
    assert.ok(names.includes('snapferry-share-snapshot-rds'), `${names}`);
    assert.ok(!names.includes('snapferry-share-snapshot-ebs'), `${names}`);
  });
});
