// cdk-nag's AwsSolutions pack over the whole app: no finding may be left unacknowledged,
// and the acknowledgements are narrow enough that a new wildcard is still caught.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Stack } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { AwsSolutionsChecks } from 'cdk-nag';
import { DeliveryDlq } from '../lib/delivery';
import { acknowledgeWildcards } from '../lib/nag';
import { ebsConfig, newApp, routing, synthExample } from './helpers';

const withEbs = () => {
  // Every EBS statement rendered in both accounts, EBS on the sharing key, the backup keys' break-glass denies.
  const c = ebsConfig();
  c.target.breakGlassRoleArn = `arn:aws:iam::${c.target.account}:role/snapferry-break-glass`;
  return c;
};
for (const [name, config] of [['example', undefined], ['with EBS and a break-glass role', withEbs()]] as const) {
  test(`AwsSolutions: zero unacknowledged findings on every stack (${name})`, () => {
    const { app } = synthExample(config);
    const report = new AwsSolutionsChecks(app, { verbose: true }).validateScope(app);
    const findings = report.violations.map((v) => `${v.severity} ${v.ruleName}: ${v.violatingResources.map((r) => r.constructPath).join(', ')}`);
    assert.deepEqual(findings, []);
  });
}

test('an unexplained wildcard is not acknowledged', () => {
  const app = newApp();
  const stack = new Stack(app, 'Probe', { env: { account: '111111111111', region: 'eu-west-1' } });
  const role = new iam.Role(stack, 'Role', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
  const statements = [
    new iam.PolicyStatement({ actions: ['rds:DeleteDBSnapshot'], resources: ['arn:aws:rds:eu-west-1:111111111111:snapshot:*'] }),
    new iam.PolicyStatement({ actions: ['s3:*'], resources: ['*'] }),
  ];
  statements.forEach((s) => role.addToPrincipalPolicy(s));
  acknowledgeWildcards(role, statements);
  const ids = new AwsSolutionsChecks(app).validateScope(app).violations.map((v) => v.ruleName).sort();
  // The snapshot:* wildcard matches a known shape (copy sources) and is acknowledged; s3:* and "*" are not.
  assert.deepEqual(ids, ['AwsSolutions-IAM5[Action::s3:*]', 'AwsSolutions-IAM5[Resource::*]']);
});

test('"*" is acknowledged only for actions with no resource type, and only while nothing else is granted on it', () => {
  const findings = (statements: iam.PolicyStatement[]) => {
    const app = newApp();
    const stack = new Stack(app, 'Probe', { env: { account: '111111111111', region: 'eu-west-1' } });
    const role = new iam.Role(stack, 'Role', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
    statements.forEach((s) => role.addToPrincipalPolicy(s));
    acknowledgeWildcards(role, statements);
    return new AwsSolutionsChecks(app).validateScope(app).violations.map((v) => v.ruleName).sort();
  };
  const quotas = new iam.PolicyStatement({ sid: 'Quotas', actions: ['rds:DescribeAccountAttributes'], resources: ['*'] });
  assert.deepEqual(findings([quotas]), []);
  // Another action in the same statement, or another statement on "*" in the same policy: not acknowledged.
  assert.deepEqual(findings([new iam.PolicyStatement({ actions: ['rds:DescribeAccountAttributes', 'rds:DeleteDBSnapshot'], resources: ['*'] })]),
    ['AwsSolutions-IAM5[Resource::*]']);
  assert.deepEqual(findings([quotas, new iam.PolicyStatement({ actions: ['rds:DescribeDBLogFiles'], resources: ['*'] })]),
    ['AwsSolutions-IAM5[Resource::*]']);
});

test('SQS3 (a queue with no DLQ that is none) is acknowledged on the delivery DLQ only', () => {
  const app = newApp();
  const stack = new Stack(app, 'Probe', { env: { account: '111111111111', region: 'eu-west-1' } });
  const delivery = new DeliveryDlq(stack, 'DeliveryDlq', { routing, alarmTopic: new sns.Topic(stack, 'Topic', { enforceSSL: true }) });
  const queue = new sqs.Queue(stack, 'Queue', { encryption: sqs.QueueEncryption.SQS_MANAGED, enforceSSL: true });
  delivery.deliverToQueue(new events.Rule(stack, 'Rule', { schedule: events.Schedule.expression('rate(1 hour)') }), queue);
  const violations = new AwsSolutionsChecks(app).validateScope(app).violations;
  // The step-like queue without a redrive policy is still a finding; the delivery DLQ (EventBridge's DLQ) is not.
  assert.deepEqual(violations.filter((v) => v.ruleName === 'AwsSolutions-SQS3').flatMap((v) => v.violatingResources.map((r) => r.constructPath)),
    ['Probe/Queue/Resource']);
});
