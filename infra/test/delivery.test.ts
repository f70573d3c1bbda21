// "Every failure ends in a DLQ" includes the events EventBridge cannot deliver: every target of
// every rule in every stack dead-letters into its stack's delivery DLQ, which only the stack's
// own rules may write to and which alarms like every step's DLQ.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Duration, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Config } from '../lib/config';
import { DELIVERY_DLQ, DELIVERY_RETRY, DeliveryDlq } from '../lib/delivery';
import { dlqName, Routing } from '../lib/routing';
import { ebsConfig, exampleConfig, newApp, only, resources, routing, synthExample } from './helpers';

type TemplateJson = { Resources: Record<string, { Type: string; Properties?: any }> };

/** The retry policy every target into a step's queue has: an hour at most (DELIVERY_RETRY). */
const RETRY_POLICY = { MaximumEventAgeInSeconds: 3600, MaximumRetryAttempts: 185 };

/**
 * What is wrong with the rule targets of a template: each target must dead-letter into a queue of
 * the same template, its delivery DLQ, and a target into a queue must have the retry policy. An
 * event bus target (another account's) has none: CDK's EventBus target takes no retry policy, so
 * EventBridge's default applies (DeliveryDlq.deliverToBus).
 */
function undelivered(json: TemplateJson): string[] {
  const res = json.Resources;
  const problems: string[] = [];
  for (const [id, r] of Object.entries(res).filter(([, x]) => x.Type === 'AWS::Events::Rule')) {
    const ts: any[] = r.Properties.Targets ?? [];
    if (ts.length === 0) problems.push(`${id}: no target`);
    for (const t of ts) {
      const at = `${r.Properties.Name} target ${t.Id}`;
      const dlq = t.DeadLetterConfig?.Arn?.['Fn::GetAtt'];
      if (dlq === undefined) {
        problems.push(`${at}: no DeadLetterConfig in this stack (${JSON.stringify(t.DeadLetterConfig)})`);
        continue;
      }
      const queue = res[dlq[0]];
      if (dlq[1] !== 'Arn' || queue?.Type !== 'AWS::SQS::Queue') problems.push(`${at}: DeadLetterConfig ${JSON.stringify(dlq)} is no queue of this stack`);
      else if (queue.Properties.QueueName !== DELIVERY_DLQ) problems.push(`${at}: dead-letters to ${queue.Properties.QueueName}, not ${DELIVERY_DLQ}`);
      const into = t.Arn?.['Fn::GetAtt']?.[0];
      if (res[into]?.Type === 'AWS::SQS::Queue') {
        if (JSON.stringify(t.RetryPolicy) !== JSON.stringify(RETRY_POLICY)) problems.push(`${at}: retry policy ${JSON.stringify(t.RetryPolicy)}`);
      } else if (typeof t.Arn === 'string' && /^arn:aws:events:[\w-]+:\d{12}:event-bus\//.test(t.Arn)) {
        if (t.RetryPolicy !== undefined) problems.push(`${at}: an event bus target with a retry policy CDK does not set`);
      } else {
        problems.push(`${at}: a target that is neither a queue of this stack nor an event bus: ${JSON.stringify(t.Arn)}`);
      }
    }
  }
  return problems;
}

const rulesOf = (json: TemplateJson) => Object.entries(json.Resources).filter(([, r]) => r.Type === 'AWS::Events::Rule');

/** The example, with EBS, and with three sources (two in another region): every rule each of them deploys. */
function multiSourceConfig(): Config {
  const c = ebsConfig();
  c.sources.push({ ...c.sources[0], account: '333333333333', region: 'us-east-1' }, { ...c.sources[0], account: '444444444444' });
  return c;
}
const configs: [string, Config][] = [['example', exampleConfig()], ['EBS', ebsConfig()], ['three sources', multiSourceConfig()]];
const synths = configs.map(([name, c]) => ({ name, config: c, synth: synthExample(c) }));
/** Every stack of every deployment above: name, template. */
const stacks = synths.flatMap(({ name, synth }) => [
  [`${name}: ${synth.deployment.target.stackName}`, synth.target] as const,
  ...synth.deployment.sources.map((s) => [`${name}: ${s.stackName}`, Template.fromStack(s)] as const),
  ...synth.deployment.regions.map((r, i) => [`${name}: ${r.stackName}`, synth.regions[i]] as const),
]);
const example = synths[0].synth;

describe('every rule target has a dead-letter queue', () => {
  for (const [name, t] of stacks) {
    test(`${name}: every target dead-letters into the stack's ${DELIVERY_DLQ}, with the retry policy`, () => {
      const json = t.toJSON() as TemplateJson;
      assert.deepEqual(undelivered(json), []);
      // The region stacks hold only a key: no rule, so nothing to dead-letter (and no queue).
      const isRegion = name.includes('SnapferryTargetKey-');
      assert.equal(rulesOf(json).length === 0, isRegion, `${name}: ${rulesOf(json).length} rules`);
      if (isRegion) t.resourceCountIs('AWS::SQS::Queue', 0);
    });
  }

  test('the check fails a target without its DeadLetterConfig, with another DLQ, or without its retry policy', () => {
    for (const t of [example.source, example.target]) {
      const json = t.toJSON() as TemplateJson;
      for (const [id, rule] of rulesOf(json)) {
        const name = rule.Properties.Name;
        const mutated = (change: (target: any) => void) => {
          const clone = structuredClone(json);
          change(clone.Resources[id].Properties.Targets[0]);
          return undelivered(clone);
        };
        assert.deepEqual(mutated((x) => { delete x.DeadLetterConfig; }),
          [`${name} target Target0: no DeadLetterConfig in this stack (undefined)`]);
        // A step's own DLQ is not where EventBridge's dead letters go.
        const stepDlq = Object.entries(json.Resources).find(([, r]) => r.Type === 'AWS::SQS::Queue' && r.Properties.QueueName.endsWith('-dlq')
          && r.Properties.QueueName !== DELIVERY_DLQ)![0];
        assert.equal(mutated((x) => { x.DeadLetterConfig.Arn = { 'Fn::GetAtt': [stepDlq, 'Arn'] }; }).length, 1, name);
        // A queue in another stack (an ARN string, not this stack's queue).
        assert.equal(mutated((x) => { x.DeadLetterConfig.Arn = `arn:aws:sqs:eu-west-1:111111111111:${DELIVERY_DLQ}`; }).length, 1, name);
        if (rule.Properties.Targets[0].RetryPolicy !== undefined) {
          assert.deepEqual(mutated((x) => { delete x.RetryPolicy; }), [`${name} target Target0: retry policy undefined`]);
          assert.equal(mutated((x) => { x.RetryPolicy.MaximumEventAgeInSeconds = 86400; }).length, 1, name);
        }
      }
    }
  });

  test(`the retry policy of a step's queue target: ${RETRY_POLICY.MaximumEventAgeInSeconds} s, ${RETRY_POLICY.MaximumRetryAttempts} attempts (DELIVERY_RETRY)`, () => {
    assert.deepEqual([DELIVERY_RETRY.maxEventAge.toSeconds(), DELIVERY_RETRY.retryAttempts],
      [RETRY_POLICY.MaximumEventAgeInSeconds, RETRY_POLICY.MaximumRetryAttempts]);
    // Within EventBridge's limits (60 s..24 h, 0..185), and shorter than its 24-hour default.
    assert.ok(DELIVERY_RETRY.maxEventAge.toSeconds() >= 60 && DELIVERY_RETRY.maxEventAge.toSeconds() < Duration.hours(24).toSeconds());
    assert.ok(DELIVERY_RETRY.retryAttempts >= 0 && DELIVERY_RETRY.retryAttempts <= 185);
  });

  test('both kinds of target are covered: steps\' queues, and the other account\'s bus (forwarding, copied_back)', () => {
    for (const [t, forward] of [[example.source, 'snapferry-shared-to-'], [example.target, 'snapferry-copied-to-']] as const) {
      const json = t.toJSON() as TemplateJson;
      const buses = rulesOf(json).filter(([, r]) => typeof r.Properties.Targets[0].Arn === 'string');
      assert.ok(buses.length > 0 && buses.every(([, r]) => r.Properties.Name.startsWith(forward)), forward);
      assert.ok(rulesOf(json).length > buses.length);
    }
  });
});

describe(`the delivery DLQ (${DELIVERY_DLQ})`, () => {
  for (const [name, t] of stacks.filter(([n]) => !n.includes('SnapferryTargetKey-'))) {
    test(`${name}: SSE-SQS, routing.json's DLQ retention, TLS only; only the stack's own rules may send to it`, () => {
      const q = only(t, 'AWS::SQS::Queue', { QueueName: DELIVERY_DLQ });
      // As every step's DLQ.
      assert.deepEqual(q.Properties, { QueueName: DELIVERY_DLQ, MessageRetentionPeriod: routing.dlq_retention_days * 86400, SqsManagedSseEnabled: true });
      assert.equal(routing.dlq_retention_days, 14);
      const policies = Object.values(resources(t, 'AWS::SQS::QueuePolicy')).filter((p) => JSON.stringify(p.Properties.Queues) === JSON.stringify([{ Ref: q.id }]));
      assert.equal(policies.length, 1);
      const arn = { 'Fn::GetAtt': [q.id, 'Arn'] };
      const rules = rulesOf(t.toJSON() as TemplateJson).map(([id]) => id).sort();
      const [deny, allow, ...rest] = policies[0].Properties.PolicyDocument.Statement;
      assert.deepEqual(rest, []);
      assert.deepEqual(deny, { Action: 'sqs:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } }, Effect: 'Deny', Principal: { AWS: '*' }, Resource: arn });
      const { Condition, ...grant } = allow;
      // EventBridge's service principal, SendMessage only, on behalf of exactly this stack's rules.
      assert.deepEqual(grant, { Action: 'sqs:SendMessage', Effect: 'Allow', Principal: { Service: 'events.amazonaws.com' }, Resource: arn, Sid: 'EventBridgeDeadLetters' });
      assert.deepEqual(Object.keys(Condition), ['ArnEquals']);
      assert.deepEqual(Object.keys(Condition.ArnEquals), ['aws:SourceArn']);
      assert.deepEqual(Condition.ArnEquals['aws:SourceArn'].map((x: any) => { assert.equal(x['Fn::GetAtt'][1], 'Arn'); return x['Fn::GetAtt'][0]; }).sort(), rules);
      // Nothing else in the stack grants on it (no role of the stack may read or send to it).
      assert.ok(!JSON.stringify(Object.values(resources(t, 'AWS::IAM::Policy'))).includes(q.id), `${name}: an IAM policy names ${DELIVERY_DLQ}`);
    });

    test(`${name}: ${DELIVERY_DLQ}-not-empty, as every step's DLQ alarm, to the stack's alarm topic and on the dashboard`, () => {
      const q = only(t, 'AWS::SQS::Queue', { QueueName: DELIVERY_DLQ });
      const onQueue = (id: string) => Object.entries(resources(t, 'AWS::CloudWatch::Alarm'))
        .filter(([, a]) => JSON.stringify(a.Properties.Dimensions) === JSON.stringify([{ Name: 'QueueName', Value: { 'Fn::GetAtt': [id, 'QueueName'] } }]));
      const alarms = onQueue(q.id);
      assert.equal(alarms.length, 1);
      const [alarmId, alarm] = alarms[0];
      const topic = Object.keys(resources(t, 'AWS::SNS::Topic'));
      assert.equal(topic.length, 1);
      const { AlarmDescription, ...p } = alarm.Properties;
      assert.deepEqual(p, {
        AlarmName: `${DELIVERY_DLQ}-not-empty`,
        Namespace: 'AWS/SQS',
        MetricName: 'ApproximateNumberOfMessagesVisible',
        Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [q.id, 'QueueName'] } }],
        Statistic: 'Maximum',
        Period: 60,
        EvaluationPeriods: 1,
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        TreatMissingData: 'notBreaching',
        AlarmActions: [{ Ref: topic[0] }],
      });
      for (const words of ['RULE_ARN', 'TARGET_ARN', 'ERROR_CODE', 'ERROR_MESSAGE', 'docs/operations.md']) {
        assert.ok(AlarmDescription.includes(words), `${AlarmDescription} lacks ${words}`);
      }
      // The same alarm as a step's DLQ's (the same code: dlqAlarm), but for its name and description.
      const stepDlq = Object.entries(resources(t, 'AWS::SQS::Queue')).find(([, x]) => routing.functions.some((f) => dlqName(f) === x.Properties.QueueName))!;
      const { AlarmDescription: _, AlarmName, Dimensions, ...stepAlarm } = onQueue(stepDlq[0])[0][1].Properties;
      const { AlarmName: __, Dimensions: ___, ...mine } = p;
      assert.equal(AlarmName, `${stepDlq[1].Properties.QueueName}-not-empty`);
      assert.deepEqual(mine, stepAlarm);
      const [dashboard] = Object.values(resources(t, 'AWS::CloudWatch::Dashboard'));
      assert.ok(JSON.stringify(dashboard.Properties.DashboardBody).includes(alarmId), `${name}: ${alarmId} not on the dashboard`);
    });
  }

  test('the queue policy stays one statement within SQS\'s policy quotas (20 statements, 10 conditions, 8,192 bytes) with 20 sources', () => {
    const c = exampleConfig();
    for (let i = 0; i < 19; i++) c.sources.push({ ...c.sources[0], account: String(300000000000 + i) });
    const d = synthExample(c);
    const json = d.target.toJSON() as TemplateJson;
    const q = only(d.target, 'AWS::SQS::Queue', { QueueName: DELIVERY_DLQ });
    const [policy] = Object.values(resources(d.target, 'AWS::SQS::QueuePolicy')).filter((p) => JSON.stringify(p.Properties.Queues) === JSON.stringify([{ Ref: q.id }]));
    const statements = policy.Properties.PolicyDocument.Statement;
    assert.equal(statements.length, 2);
    assert.equal(statements.flatMap((s: any) => Object.values(s.Condition ?? {}).flatMap((keys: any) => Object.keys(keys))).length, 2);
    // The policy as SQS gets it: each rule's and the queue's ARN in place of its GetAtt.
    const { account, region } = d.deployment.target;
    const deployed = JSON.stringify(policy.Properties.PolicyDocument, (_, v) => {
      const att = v?.['Fn::GetAtt'];
      if (att === undefined) return v;
      const r = json.Resources[att[0]];
      if (r.Type === 'AWS::SQS::Queue') return `arn:aws:sqs:${region}:${account}:${r.Properties.QueueName}`;
      assert.equal(r.Type, 'AWS::Events::Rule');
      return `arn:aws:events:${region}:${account}:rule/${r.Properties.EventBusName === undefined ? '' : `${routing.pipeline_bus}/`}${r.Properties.Name}`;
    });
    assert.equal(rulesOf(json).filter(([, r]) => r.Properties.Name.startsWith('snapferry-copied-to-')).length, 20);
    assert.ok(deployed.length <= 8192, `${deployed.length} bytes`);
  });
});

describe('synth-time guard', () => {
  const probe = () => {
    const stack = new Stack(newApp(), 'Probe', { env: { account: '111111111111', region: 'eu-west-1' } });
    const delivery = new DeliveryDlq(stack, 'DeliveryDlq', { routing, alarmTopic: new sns.Topic(stack, 'Topic') });
    const queue = new sqs.Queue(stack, 'Queue');
    const rule = (id: string) => new events.Rule(stack, id, { schedule: events.Schedule.expression('rate(1 hour)') });
    return { stack, delivery, queue, rule };
  };

  test('a stack whose rules all go through DeliveryDlq synthesizes', () => {
    const { stack, delivery, queue, rule } = probe();
    delivery.deliverToQueue(rule('Rule'), queue);
    assert.doesNotThrow(() => Template.fromStack(stack));
  });

  test('refuses a rule target without the delivery DLQ, or one added to it other than through DeliveryDlq', () => {
    const plain = probe();
    plain.delivery.deliverToQueue(plain.rule('Rule'), plain.queue);
    plain.rule('Other').addTarget(new targets.SqsQueue(plain.queue));
    assert.throws(() => Template.fromStack(plain.stack),
      /Probe\/Other\/Resource: target Target0 has no dead-letter queue, or not snapferry-delivery-dlq: add it with DeliveryDlq\.deliverToQueue or deliverToBus/);
    const elsewhere = probe();
    elsewhere.rule('Rule').addTarget(new targets.SqsQueue(elsewhere.queue, { deadLetterQueue: new sqs.Queue(elsewhere.stack, 'Dlq') }));
    assert.throws(() => Template.fromStack(elsewhere.stack), /Probe\/Rule\/Resource: target Target0 has no dead-letter queue, or not snapferry-delivery-dlq/);
    const unadmitted = probe();
    unadmitted.rule('Rule').addTarget(new targets.SqsQueue(unadmitted.queue, { deadLetterQueue: unadmitted.delivery.queue }));
    assert.throws(() => Template.fromStack(unadmitted.stack),
      /Probe\/Rule\/Resource: target Target0 dead-letters to snapferry-delivery-dlq, but not through DeliveryDlq, whose policy statement lists the rules that may send to it/);
  });

  test('refuses a routing.json step whose queues would take the delivery DLQ\'s name', () => {
    const stack = new Stack(newApp(), 'Probe', { env: { account: '111111111111', region: 'eu-west-1' } });
    const clash: Routing = { ...routing, functions: [...routing.functions, { ...routing.functions[0], name: 'delivery', queue: 'snapferry-delivery' }] };
    assert.throws(() => new DeliveryDlq(stack, 'DeliveryDlq', { routing: clash, alarmTopic: new sns.Topic(stack, 'Topic') }),
      /^Error: routing\.json: step delivery's queues clash with the delivery DLQ snapferry-delivery-dlq$/);
  });
});
