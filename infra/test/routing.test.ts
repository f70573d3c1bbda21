// The deployed queues, mappings and rules must be exactly what routing.json (the table the
// local host runs from) says. Any drift between the two fails here.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Template } from 'aws-cdk-lib/assertions';
import { copiedBackRule, functionName, crossAccountRule, dlqName, loadRouting, METRIC_KEYS, ROUTING_FILE } from '../lib/routing';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Config } from '../lib/config';
import { DELIVERY_DLQ } from '../lib/delivery';
import { forwarderRoleArn } from '../lib/iam';
import { ebsConfig, exampleConfig, only, resources, roleStatements, routing, synthExample, templateFor } from './helpers';
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

  describe('copied_back: one rule per allowlisted source on the backup account\'s pipeline bus, to that source\'s bus', () => {
    // Two sources, the second in another region: each rule's target is its own source's bus, where that source is.
    const c: Config = exampleConfig();
    c.sources.push({ ...c.sources[0], account: '333333333333', region: 'us-east-1', retention: [{ keep_last: 2 }] });
    const multi = synthExample(c);
    const bus = only(multi.target, 'AWS::Events::EventBus', { Name: routing.pipeline_bus });
    const forwarder = only(multi.target, 'AWS::IAM::Role', { RoleName: `snapferry-forward-${c.target.region}` });

    for (const s of c.sources) {
      test(`source ${s.account} (${s.region})`, () => {
        const want = copiedBackRule(routing, s.account);
        assert.equal(want.name, `snapferry-copied-to-${s.account}`);
        const r = only(multi.target, 'AWS::Events::Rule', { Name: want.name });
        assert.deepEqual(r.Properties.EventBusName, { Ref: bus.id });
        // routing.json's pattern with the source's account filled in: that source's backups only.
        assert.deepEqual(r.Properties.EventPattern, want.pattern);
        assert.deepEqual(r.Properties.EventPattern, {
          source: [routing.source], 'detail-type': ['Snapshot Copied'], detail: { origin: { account: [s.account] } },
        });
        assert.equal(JSON.stringify(r.Properties.EventPattern).includes('{account}'), false);
        assert.deepEqual(r.Properties.Targets.map((x: any) => [x.Arn, x.RoleArn]),
          [[`arn:aws:events:${s.region}:${s.account}:event-bus/${routing.pipeline_bus}`, { 'Fn::GetAtt': [forwarder.id, 'Arn'] }]]);
      });
    }

    test('the backup account\'s forwarding role: assumed by EventBridge, may only put events on the sources\' buses', () => {
      assert.deepEqual(forwarder.Properties.AssumeRolePolicyDocument.Statement,
        [{ Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'events.amazonaws.com' } }]);
      assert.equal(forwarder.Properties.ManagedPolicyArns, undefined);
      const statements = roleStatements(multi.target).filter((x) => x.role === forwarder.id).map((x) => x.st);
      assert.deepEqual(statements, [{
        Effect: 'Allow', Action: 'events:PutEvents',
        Resource: c.sources.map((s) => `arn:aws:events:${s.region}:${s.account}:event-bus/${routing.pipeline_bus}`),
      }]);
      // The name each source's bus policy admits.
      assert.equal(`arn:aws:iam::${c.target.account}:role/${forwarder.Properties.RoleName}`, forwarderRoleArn('aws', c.target.account, c.target.region));
    });

    test('the source bus admits exactly what the rule forwards: routing.json\'s source and detail-type', () => {
      for (const [i, s] of c.sources.entries()) {
        const t = Template.fromStack(multi.deployment.sources[i]);
        const [policy] = Object.values(resources(t, 'AWS::Events::EventBusPolicy'));
        const admitted = policy.Properties.Statement.Condition['ForAllValues:StringEquals'];
        const pattern = copiedBackRule(routing, s.account).pattern as any;
        assert.deepEqual([[admitted['events:source']].flat(), [admitted['events:detail-type']].flat()], [pattern.source, pattern['detail-type']], s.account);
      }
    });
  });

  test('routing.json refuses a per-account rule without {account}', () => {
    const raw = JSON.parse(fs.readFileSync(ROUTING_FILE, 'utf8'));
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'snapferry-routing-')), 'routing.json');
    for (const key of ['cross_account', 'copied_back']) {
      const r = structuredClone(raw);
      r[key].rule = 'snapferry-to-everyone';
      fs.writeFileSync(file, JSON.stringify(r));
      assert.throws(() => loadRouting(file), new RegExp(`${key} must have a rule name and a pattern, both with \\{account\\}, on the pipeline bus`));
    }
    fs.writeFileSync(file, JSON.stringify(raw));
    assert.doesNotThrow(() => loadRouting(file));
  });

  test('METRIC_KEYS are exactly routing.json\'s metrics (data_recovery_point included)', () => {
    const raw = JSON.parse(fs.readFileSync(ROUTING_FILE, 'utf8'));
    assert.deepEqual(Object.keys(raw.metrics).filter((k) => k !== '$comment').sort(), [...METRIC_KEYS].sort());
    assert.equal(routing.metrics.data_recovery_point, 'DataRecoveryPointSeconds');
  });

  test('routing.json refuses metrics without one the stacks alarm on', () => {
    const raw = JSON.parse(fs.readFileSync(ROUTING_FILE, 'utf8'));
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'snapferry-routing-')), 'routing.json');
    for (const key of METRIC_KEYS) {
      const r = structuredClone(raw);
      delete r.metrics[key];
      fs.writeFileSync(file, JSON.stringify(r));
      assert.throws(() => loadRouting(file), new RegExp(`metrics must name the namespace and every metric the stacks alarm on \\(.*\\); missing ${key}$`));
    }
  });

  test('the reconcile steps: each on its hourly schedule, in its own account', () => {
    for (const [name, account] of [['reconcile-snapshots', 'source'], ['reconcile-copies', 'target']] as const) {
      const fn = routing.functions.find((f) => f.name === name);
      assert.ok(fn, `routing.json has no ${name}`);
      assert.equal(fn.account, account);
      const t = templateFor(synth, account);
      const r = only(t, 'AWS::Events::Rule', { Name: `snapferry-${name}-schedule` });
      assert.equal(r.Properties.ScheduleExpression, 'rate(1 hour)');
      assert.equal(r.Properties.EventBusName, undefined, 'the default bus');
      // Not in the other account.
      assert.deepEqual(Object.values(resources(templateFor(synth, account === 'source' ? 'target' : 'source'), 'AWS::Lambda::Function'))
        .filter((f) => f.Properties.FunctionName === functionName(fn)), []);
    }
  });

  test('no rule, queue or function that routing.json does not list', () => {
    for (const side of ['source', 'target'] as const) {
      const t = templateFor(synth, side);
      const fns = routing.functions.filter((f) => f.account === side);
      const rules = fns.flatMap((f) => f.rules.filter((r) => deployed(side, r)).map((r) => r.name));
      if (side === 'source') rules.push(crossAccountRule(routing, synth.deployment.target.account).name);
      if (side === 'target') rules.push(...exampleConfig().sources.map((src) => copiedBackRule(routing, src.account).name));
      const names = (type: string, key: string) => Object.values(resources(t, type)).map((r) => r.Properties[key]).sort();
      assert.deepEqual(names('AWS::Events::Rule', 'Name'), rules.sort());
      // And the stack's one queue for what EventBridge could not deliver (delivery.test.ts).
      assert.deepEqual(names('AWS::SQS::Queue', 'QueueName'), [...fns.flatMap((f) => [f.queue, dlqName(f)]), DELIVERY_DLQ].sort());
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
