// Every step is observable and packaged the same way: the one snapferry-lambda binary, arm64
// on provided.al2023, JSON logs with retention, a DLQ per queue, and alarms on the DLQ,
// errors and throttles.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { Template } from 'aws-cdk-lib/assertions';
import { buildDeployment } from '../lib/app';
import { environmentContract } from '../lib/environment';
import { loadPermissions, PERMISSIONS_FILE } from '../lib/permissions';
import { dlqName, functionName, Routing, RoutingFunction } from '../lib/routing';
import { lambdaZip } from '../lib/step';
import { Config } from '../lib/config';
import { exampleConfig, newApp, only, placeholderAssets, resources, routing, Synth, synthExample, templateFor } from './helpers';

const config = exampleConfig();
const synth = synthExample(config);
const templates = { source: synth.source, target: synth.target };

describe('every function', () => {
  for (const [side, t] of Object.entries(templates)) {
    test(`${side}: arm64, provided.al2023, JSON logs to a group with retention`, () => {
      const fns = Object.values(resources(t, 'AWS::Lambda::Function'));
      assert.ok(fns.length > 0);
      for (const f of fns) {
        const p = f.Properties;
        assert.deepEqual(p.Architectures, ['arm64'], p.FunctionName);
        assert.equal(p.Runtime, 'provided.al2023', p.FunctionName);
        assert.equal(p.LoggingConfig.LogFormat, 'JSON', p.FunctionName);
        const group = resources(t, 'AWS::Logs::LogGroup')[p.LoggingConfig.LogGroup.Ref];
        assert.equal(group.Properties.LogGroupName, `/aws/lambda/${p.FunctionName}`);
        assert.equal(group.Properties.RetentionInDays, config.logRetentionDays);
      }
    });
  }

  // Reserved concurrency on an SQS-triggered function makes Lambda's throttled polls count as
  // receives, so SQS dead-letters messages no invocation ever saw. The cap belongs on the
  // event source mapping (ScalingConfig.MaximumConcurrency) instead.
  test('no function has reserved concurrency', () => {
    for (const t of [synth.source, synth.target]) {
      for (const f of Object.values(resources(t, 'AWS::Lambda::Function'))) {
        assert.equal(f.Properties.ReservedConcurrentExecutions, undefined, f.Properties.FunctionName);
      }
    }
  });

  const scalingConfigs = (s: Synth) => Object.fromEntries(routing.functions.map((fn) => {
    const t = templateFor(s, fn.account);
    const q = only(t, 'AWS::SQS::Queue', { QueueName: fn.queue });
    const m = only(t, 'AWS::Lambda::EventSourceMapping', { EventSourceArn: { 'Fn::GetAtt': [q.id, 'Arn'] } });
    return [fn.name, m.Properties.ScalingConfig];
  }));

  test('the copy function\'s event source mapping caps its concurrency from the config, the expire steps\' at the minimum (2); the others have no cap', () => {
    const cap: Record<string, (c: Config) => number> = {
      'copy-shared-snapshot': (c) => c.target.copy.maxConcurrency,
      // A backlog of follow-up messages must not fan out; 2 is the event source mapping's minimum.
      'expire-snapshots': () => 2,
      'expire-copies': () => 2,
      // The same for the reconcile steps: one hourly message, runs that list every snapshot.
      'reconcile-snapshots': () => 2,
      'reconcile-copies': () => 2,
    };
    const want = (c: Config) => Object.fromEntries(routing.functions.map((fn) =>
      [fn.name, fn.name in cap ? { MaximumConcurrency: cap[fn.name](c) } : undefined]));
    assert.deepEqual(scalingConfigs(synth), want(config));
    // From the config, not a constant: another value reaches the template.
    const other = exampleConfig();
    other.target.copy.maxConcurrency = 7;
    assert.deepEqual(scalingConfigs(synthExample(other)), want(other));
    const copy = routing.functions.find((f) => f.name === 'copy-shared-snapshot')!;
    assert.ok(config.target.copy.maxConcurrency * copy.batch_size <= 20, 'example exceeds 20 copies in flight');
  });
});

describe('every queue', () => {
  for (const [side, t] of Object.entries(templates)) {
    test(`${side}: a DLQ (redrive) on each work queue, SSE and TLS-only`, () => {
      const queues = resources(t, 'AWS::SQS::Queue');
      // A DLQ is a redrive policy's, or EventBridge's for a rule's targets (the delivery DLQ: delivery.test.ts).
      const dlqIds = new Set([
        ...Object.values(queues).filter((q) => q.Properties.RedrivePolicy)
          .map((q) => q.Properties.RedrivePolicy.deadLetterTargetArn['Fn::GetAtt'][0]),
        ...Object.values(resources(t, 'AWS::Events::Rule')).flatMap((r) => r.Properties.Targets)
          .map((x: any) => x.DeadLetterConfig?.Arn?.['Fn::GetAtt']?.[0]),
      ]);
      for (const [id, q] of Object.entries(queues)) {
        assert.ok(q.Properties.RedrivePolicy || dlqIds.has(id), `${q.Properties.QueueName} has no DLQ and is none`);
        assert.equal(q.Properties.SqsManagedSseEnabled, true);
      }
      const policies = Object.values(resources(t, 'AWS::SQS::QueuePolicy'));
      for (const id of Object.keys(queues)) {
        assert.ok(policies.some((p) => JSON.stringify(p.Properties.Queues).includes(id)
          && p.Properties.PolicyDocument.Statement.some((s: any) => s.Effect === 'Deny' && s.Condition?.Bool?.['aws:SecureTransport'] === 'false')),
        `${id} allows plain HTTP`);
      }
    });
  }
});

describe('alarms', () => {
  const alarmsOn = (t: any, metric: string, dimension: string, value: unknown) =>
    Object.values(resources(t, 'AWS::CloudWatch::Alarm')).filter((a) => a.Properties.MetricName === metric
      && JSON.stringify(a.Properties.Dimensions) === JSON.stringify([{ Name: dimension, Value: value }]));

  for (const fn of routing.functions) {
    test(`${fn.name}: DLQ (any message), errors and throttles alarm to the SNS topic`, () => {
      const t = templateFor(synth, fn.account);
      const topic = Object.keys(resources(t, 'AWS::SNS::Topic'));
      assert.equal(topic.length, 1);
      const dlq = only(t, 'AWS::SQS::Queue', { QueueName: dlqName(fn) });
      const f = only(t, 'AWS::Lambda::Function', { FunctionName: functionName(fn) });
      const found = [
        ...alarmsOn(t, 'ApproximateNumberOfMessagesVisible', 'QueueName', { 'Fn::GetAtt': [dlq.id, 'QueueName'] }),
        ...alarmsOn(t, 'Errors', 'FunctionName', { Ref: f.id }),
        ...alarmsOn(t, 'Throttles', 'FunctionName', { Ref: f.id }),
      ];
      assert.equal(found.length, 3);
      for (const a of found) {
        assert.equal(a.Properties.Threshold, 1);
        assert.equal(a.Properties.ComparisonOperator, 'GreaterThanOrEqualToThreshold');
        assert.deepEqual(a.Properties.AlarmActions, [{ Ref: topic[0] }]);
      }
    });
  }

  // A step that creates or copies snapshots can find the manual snapshot quota full; it then
  // writes routing.json's quota_full metric, and only this alarm tells anyone.
  const permissions = loadPermissions(PERMISSIONS_FILE, routing);
  const makesSnapshots = (name: string) => permissions.steps[name]
    .some((st) => st.actions.some((a) => /^rds:(Create|Copy)DB(Cluster)?Snapshot$/.test(a)));
  const quotaAlarms = (s: Synth, fn: RoutingFunction, r: Routing = routing) =>
    Object.values(resources(templateFor(s, fn.account), 'AWS::CloudWatch::Alarm'))
      .filter((a) => a.Properties.Namespace === r.metrics.namespace && a.Properties.MetricName === r.metrics.quota_full
        && JSON.stringify(a.Properties.Dimensions) === JSON.stringify([{ Name: 'Step', Value: fn.name }]));

  test('permissions.json: the steps that create or copy snapshots are create-snapshot, share-snapshot, copy-shared-snapshot', () => {
    assert.deepEqual(routing.functions.filter((f) => makesSnapshots(f.name)).map((f) => f.name),
      ['create-snapshot', 'share-snapshot', 'copy-shared-snapshot']);
  });

  for (const fn of routing.functions) {
    test(`${fn.name}: ${makesSnapshots(fn.name) ? 'an alarm' : 'no alarm'} on ${routing.metrics.namespace}/${routing.metrics.quota_full} (Step=${fn.name})`, () => {
      const found = quotaAlarms(synth, fn);
      if (!makesSnapshots(fn.name)) {
        assert.deepEqual(found, []);
        return;
      }
      assert.equal(found.length, 1);
      const topic = Object.keys(resources(templateFor(synth, fn.account), 'AWS::SNS::Topic'))[0];
      const { AlarmDescription, ...p } = found[0].Properties;
      assert.deepEqual(p, {
        AlarmName: `${functionName(fn)}-snapshot-quota-full`,
        Namespace: 'snapferry',
        MetricName: 'SnapshotQuotaFull',
        Dimensions: [{ Name: 'Step', Value: fn.name }],
        Statistic: 'Sum',
        Period: 300,
        EvaluationPeriods: 1,
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        TreatMissingData: 'notBreaching',
        AlarmActions: [{ Ref: topic }],
      });
      // Says what to do about it.
      for (const words of ['Delete manual snapshots', 'raise the quota in Service Quotas', 'ManualSnapshots', 'ManualClusterSnapshots']) {
        assert.ok(AlarmDescription.includes(words), `${AlarmDescription} lacks ${words}`);
      }
    });
  }

  // The sweeping steps go on past a resource they fail at and count it (routing.json
  // resource_failed); the run succeeds, so only this alarm tells anyone.
  const sweeps = ['create-snapshot', 'expire-snapshots', 'reconcile-snapshots', 'expire-copies', 'reconcile-copies'];
  for (const fn of routing.functions) {
    test(`${fn.name}: ${sweeps.includes(fn.name) ? 'an alarm' : 'no alarm'} on ${routing.metrics.namespace}/${routing.metrics.resource_failed} (Step=${fn.name})`, () => {
      const found = Object.values(resources(templateFor(synth, fn.account), 'AWS::CloudWatch::Alarm'))
        .filter((a) => a.Properties.Namespace === routing.metrics.namespace && a.Properties.MetricName === routing.metrics.resource_failed
          && JSON.stringify(a.Properties.Dimensions) === JSON.stringify([{ Name: 'Step', Value: fn.name }]));
      assert.equal(found.length, sweeps.includes(fn.name) ? 1 : 0);
      if (found.length === 1) {
        const topic = Object.keys(resources(templateFor(synth, fn.account), 'AWS::SNS::Topic'))[0];
        assert.equal(found[0].Properties.AlarmName, `${functionName(fn)}-resource-failed`);
        assert.deepEqual(found[0].Properties.AlarmActions, [{ Ref: topic }]);
        assert.ok(found[0].Properties.AlarmDescription.includes('Snapshot Rejected'));
      }
    });
  }

  // copy-shared-snapshot rejects the shares of a source past its budget in the backup account
  // (COPIES_HELD_PER_SOURCE, COPIES_IN_FLIGHT_PER_SOURCE) and counts them (routing.json
  // budget_exceeded); nothing fails, so only this alarm tells anyone. No other step has budgets.
  const budgetAlarms = (s: Synth, fn: RoutingFunction, r: Routing = routing) =>
    Object.values(resources(templateFor(s, fn.account), 'AWS::CloudWatch::Alarm'))
      .filter((a) => a.Properties.Namespace === r.metrics.namespace && a.Properties.MetricName === r.metrics.budget_exceeded
        && JSON.stringify(a.Properties.Dimensions) === JSON.stringify([{ Name: 'Step', Value: fn.name }]));
  const budgeted = (name: string) => (environmentContract().functions[name] ?? []).some((v) => v.name === 'COPIES_HELD_PER_SOURCE');

  test('shared/environment.json: the step with budgets per source is copy-shared-snapshot; routing.json names its metric', () => {
    assert.deepEqual(routing.functions.filter((f) => budgeted(f.name)).map((f) => f.name), ['copy-shared-snapshot']);
    assert.equal(routing.metrics.budget_exceeded, 'SourceBudgetExceeded');
  });

  for (const fn of routing.functions) {
    test(`${fn.name}: ${budgeted(fn.name) ? 'an alarm' : 'no alarm'} on ${routing.metrics.namespace}/${routing.metrics.budget_exceeded} (Step=${fn.name})`, () => {
      const found = budgetAlarms(synth, fn);
      if (!budgeted(fn.name)) {
        assert.deepEqual(found, []);
        return;
      }
      assert.equal(found.length, 1);
      const topic = Object.keys(resources(templateFor(synth, fn.account), 'AWS::SNS::Topic'))[0];
      const { AlarmDescription, ...p } = found[0].Properties;
      assert.deepEqual(p, {
        AlarmName: `${functionName(fn)}-source-budget-exceeded`,
        Namespace: 'snapferry',
        MetricName: 'SourceBudgetExceeded',
        Dimensions: [{ Name: 'Step', Value: fn.name }],
        Statistic: 'Sum',
        Period: 300,
        EvaluationPeriods: 1,
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        TreatMissingData: 'notBreaching',
        AlarmActions: [{ Ref: topic }],
      });
      // Says what happened and what to do about it; CloudWatch allows 1024 characters.
      for (const words of ['Snapshot Rejected', 'COPIES_HELD_PER_SOURCE', 'COPIES_IN_FLIGHT_PER_SOURCE', 'look at its copies',
        'raise target.copy.budgets', 'remove it from the allowlist']) {
        assert.ok(AlarmDescription.includes(words), `${AlarmDescription} lacks ${words}`);
      }
      assert.ok(AlarmDescription.length <= 1024, `${AlarmDescription.length} characters`);
    });
  }

  // The restore step verifies a copy whose data fell against the previous good copy of its
  // resource (it restored fine) and counts it (routing.json restore_suspicious); nothing fails,
  // so only this alarm tells anyone. Only the step with restores' data checks (DATA_CHECKS) compares.
  const suspiciousAlarms = (s: Synth, fn: RoutingFunction, r: Routing = routing) =>
    Object.values(resources(templateFor(s, fn.account), 'AWS::CloudWatch::Alarm'))
      .filter((a) => a.Properties.Namespace === r.metrics.namespace && a.Properties.MetricName === r.metrics.restore_suspicious
        && JSON.stringify(a.Properties.Dimensions) === JSON.stringify([{ Name: 'Step', Value: fn.name }]));
  const comparesRestores = (name: string) => (environmentContract().functions[name] ?? []).some((v) => v.name === 'DATA_CHECKS');

  test('shared/environment.json: the step with restores\' data checks is restore; routing.json names its metric', () => {
    assert.deepEqual(routing.functions.filter((f) => comparesRestores(f.name)).map((f) => f.name), ['restore']);
    assert.equal(routing.metrics.restore_suspicious, 'RestoreSuspicious');
  });

  for (const fn of routing.functions) {
    test(`${fn.name}: ${comparesRestores(fn.name) ? 'an alarm' : 'no alarm'} on ${routing.metrics.namespace}/${routing.metrics.restore_suspicious} (Step=${fn.name})`, () => {
      const found = suspiciousAlarms(synth, fn);
      if (!comparesRestores(fn.name)) {
        assert.deepEqual(found, []);
        return;
      }
      assert.equal(found.length, 1);
      const topic = Object.keys(resources(templateFor(synth, fn.account), 'AWS::SNS::Topic'))[0];
      const { AlarmDescription, ...p } = found[0].Properties;
      assert.deepEqual(p, {
        AlarmName: `${functionName(fn)}-suspicious`,
        Namespace: 'snapferry',
        MetricName: 'RestoreSuspicious',
        Dimensions: [{ Name: 'Step', Value: fn.name }],
        Statistic: 'Sum',
        Period: 300,
        EvaluationPeriods: 1,
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        TreatMissingData: 'notBreaching',
        AlarmActions: [{ Ref: topic }],
      });
      // Says what happened and what to do about it; CloudWatch allows 1024 characters.
      for (const words of ['previous good copy', 'a table gone', 'compareWithPrevious', 'Restore Suspicious', 'retention keeps the previous good copy',
        'snapferry accept <copy-arn>', 'snapshot.arn']) {
        assert.ok(AlarmDescription.includes(words), `${AlarmDescription} lacks ${words}`);
      }
      assert.ok(AlarmDescription.length <= 1024, `${AlarmDescription.length} characters`);
    });
  }

  // The steps that check how full the quotas are (QUOTA_WARNING_PERCENT, shared/environment.json)
  // write routing.json's quota_warning metric; each has an alarm on it.
  const warnsOfQuotas = (name: string) => (environmentContract().functions[name] ?? []).some((v) => v.name === 'QUOTA_WARNING_PERCENT');
  const warningAlarms = (s: Synth, fn: RoutingFunction, r: Routing = routing) =>
    Object.values(resources(templateFor(s, fn.account), 'AWS::CloudWatch::Alarm'))
      .filter((a) => a.Properties.Namespace === r.metrics.namespace && a.Properties.MetricName === r.metrics.quota_warning
        && JSON.stringify(a.Properties.Dimensions) === JSON.stringify([{ Name: 'Step', Value: fn.name }]));

  test('shared/environment.json: the steps with a quota warning threshold are expire-snapshots and expire-copies', () => {
    assert.deepEqual(routing.functions.filter((f) => warnsOfQuotas(f.name)).map((f) => f.name), ['expire-snapshots', 'expire-copies']);
  });

  for (const fn of routing.functions) {
    test(`${fn.name}: ${warnsOfQuotas(fn.name) ? 'an alarm' : 'no alarm'} on ${routing.metrics.namespace}/${routing.metrics.quota_warning} (Step=${fn.name})`, () => {
      const found = warningAlarms(synth, fn);
      if (!warnsOfQuotas(fn.name)) {
        assert.deepEqual(found, []);
        return;
      }
      assert.equal(found.length, 1);
      const topic = Object.keys(resources(templateFor(synth, fn.account), 'AWS::SNS::Topic'))[0];
      const { AlarmDescription, ...p } = found[0].Properties;
      // An hour's period (the step runs hourly), in alarm while either of the last two hours had a warning.
      assert.deepEqual(p, {
        AlarmName: `${functionName(fn)}-snapshot-quota-warning`,
        Namespace: 'snapferry',
        MetricName: 'SnapshotQuotaWarning',
        Dimensions: [{ Name: 'Step', Value: fn.name }],
        Statistic: 'Sum',
        Period: 3600,
        EvaluationPeriods: 2,
        DatapointsToAlarm: 1,
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        TreatMissingData: 'notBreaching',
        AlarmActions: [{ Ref: topic }],
      });
      for (const words of ['QUOTA_WARNING_PERCENT', 'retention rules', 'raise the quota in Service Quotas']) {
        assert.ok(AlarmDescription.includes(words), `${AlarmDescription} lacks ${words}`);
      }
    });
  }

  test('the quota, budget and suspicious-restore alarms\' namespace and metric names are routing.json\'s', () => {
    const r: Routing = { ...routing, metrics: {
      ...routing.metrics, namespace: 'elsewhere', quota_full: 'QuotaReached', quota_warning: 'QuotaNearlyReached', budget_exceeded: 'OverBudget',
      restore_suspicious: 'DataFell',
    } };
    const app = newApp();
    const d = buildDeployment(app, config, r, placeholderAssets());
    const s = { target: Template.fromStack(d.target), source: Template.fromStack(d.sources[0]) } as Synth;
    for (const fn of routing.functions.filter((f) => makesSnapshots(f.name))) {
      assert.equal(quotaAlarms(s, fn, r).length, 1, fn.name);
      assert.deepEqual(quotaAlarms(s, fn), [], fn.name);
    }
    for (const fn of routing.functions.filter((f) => warnsOfQuotas(f.name))) {
      assert.equal(warningAlarms(s, fn, r).length, 1, fn.name);
      assert.deepEqual(warningAlarms(s, fn), [], fn.name);
    }
    for (const fn of routing.functions.filter((f) => budgeted(f.name))) {
      assert.equal(budgetAlarms(s, fn, r).length, 1, fn.name);
      assert.deepEqual(budgetAlarms(s, fn), [], fn.name);
    }
    for (const fn of routing.functions.filter((f) => comparesRestores(f.name))) {
      assert.equal(suspiciousAlarms(s, fn, r).length, 1, fn.name);
      assert.deepEqual(suspiciousAlarms(s, fn), [], fn.name);
    }
  });

  // The reconcile steps' alarms: a backup overdue in either account, and in the backup account
  // the oldest recovery point against the RPO, a dead man's switch when no run reports one.
  const reconcileSteps = routing.functions.filter((f) => f.name.startsWith('reconcile-'));
  const overdueAlarms = (s: Synth, side: 'source' | 'target', r: Routing = routing) =>
    Object.values(resources(templateFor(s, side), 'AWS::CloudWatch::Alarm'))
      .filter((a) => a.Properties.Namespace === r.metrics.namespace && a.Properties.MetricName === r.metrics.backup_overdue);
  const rpoAlarms = (s: Synth, side: 'source' | 'target', r: Routing = routing) =>
    Object.values(resources(templateFor(s, side), 'AWS::CloudWatch::Alarm'))
      .filter((a) => a.Properties.Namespace === r.metrics.namespace && a.Properties.MetricName === r.metrics.recovery_point_max);

  test('routing.json: the reconcile steps are reconcile-snapshots (source) and reconcile-copies (backup account)', () => {
    assert.deepEqual(reconcileSteps.map((f) => [f.name, f.account]), [['reconcile-snapshots', 'source'], ['reconcile-copies', 'target']]);
    assert.deepEqual([routing.metrics.backup_overdue, routing.metrics.recovery_point_max], ['BackupOverdue', 'MaxRecoveryPointAgeSeconds']);
  });

  for (const fn of reconcileSteps) {
    test(`${fn.account}: snapferry-backup-overdue on ${routing.metrics.namespace}/${routing.metrics.backup_overdue} (Step=${fn.name}), and on nothing else`, () => {
      const found = overdueAlarms(synth, fn.account);
      assert.equal(found.length, 1);
      const topic = Object.keys(resources(templateFor(synth, fn.account), 'AWS::SNS::Topic'))[0];
      const { AlarmDescription, ...p } = found[0].Properties;
      // Written only when a backup is overdue: no data is no overdue backup.
      assert.deepEqual(p, {
        AlarmName: 'snapferry-backup-overdue',
        Namespace: 'snapferry',
        MetricName: 'BackupOverdue',
        Dimensions: [{ Name: 'Step', Value: fn.name }],
        Statistic: 'Sum',
        Period: 3600,
        EvaluationPeriods: 1,
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        TreatMissingData: 'notBreaching',
        AlarmActions: [{ Ref: topic }],
      });
      assert.ok(AlarmDescription.includes('Backup Overdue'), AlarmDescription);
    });
  }

  test('backup account: snapferry-recovery-point-over-rpo on MaxRecoveryPointAgeSeconds (Step=reconcile-copies) > the RPO, missing data breaching', () => {
    assert.deepEqual(rpoAlarms(synth, 'source'), [], 'the source accounts have no RPO alarm');
    const found = rpoAlarms(synth, 'target');
    assert.equal(found.length, 1);
    const topic = Object.keys(resources(synth.target, 'AWS::SNS::Topic'))[0];
    const { AlarmDescription, ...p } = found[0].Properties;
    assert.equal(config.target.reconcile.rpoMinutes, 1440);
    assert.deepEqual(p, {
      AlarmName: 'snapferry-recovery-point-over-rpo',
      Namespace: 'snapferry',
      MetricName: 'MaxRecoveryPointAgeSeconds',
      Dimensions: [{ Name: 'Step', Value: 'reconcile-copies' }],
      Statistic: 'Maximum',
      Period: 3600,
      EvaluationPeriods: 1,
      Threshold: 1440 * 60,
      ComparisonOperator: 'GreaterThanThreshold',
      // No reconcile run, no proof of a recovery point.
      TreatMissingData: 'breaching',
      AlarmActions: [{ Ref: topic }],
    });
    assert.ok(AlarmDescription.includes('RPO of 1440 minutes'), AlarmDescription);
    // From the config, not a constant.
    const c = exampleConfig();
    c.target.reconcile.rpoMinutes = 720;
    assert.equal(rpoAlarms(synthExample(c), 'target')[0].Properties.Threshold, 720 * 60);
  });

  test('the reconcile alarms are on the dashboard\'s alarm widget, with a graph of the recovery point against the RPO', () => {
    for (const [side, t] of Object.entries(templates)) {
      const [dashboard] = Object.values(resources(t, 'AWS::CloudWatch::Dashboard'));
      const body = JSON.stringify(dashboard.Properties.DashboardBody);
      const reconcileAlarms = Object.entries(resources(t, 'AWS::CloudWatch::Alarm'))
        .filter(([, a]) => ['snapferry-backup-overdue', 'snapferry-recovery-point-over-rpo'].includes(a.Properties.AlarmName));
      assert.equal(reconcileAlarms.length, side === 'target' ? 2 : 1, side);
      for (const [id] of reconcileAlarms) assert.ok(body.includes(id), `${side}: ${id} not on the dashboard`);
      assert.equal(body.includes('MaxRecoveryPointAgeSeconds'), side === 'target', side);
    }
  });

  test('the reconcile alarms\' namespace and metric names are routing.json\'s', () => {
    const r: Routing = { ...routing, metrics: { ...routing.metrics, namespace: 'elsewhere', backup_overdue: 'Late', recovery_point_max: 'OldestRecoveryPoint' } };
    const d = buildDeployment(newApp(), config, r, placeholderAssets());
    const s = { target: Template.fromStack(d.target), source: Template.fromStack(d.sources[0]) } as Synth;
    for (const side of ['source', 'target'] as const) {
      assert.equal(overdueAlarms(s, side, r).length, 1, side);
      assert.deepEqual(overdueAlarms(s, side), [], side);
    }
    assert.equal(rpoAlarms(s, 'target', r).length, 1);
    assert.deepEqual(rpoAlarms(s, 'target'), []);
  });

  test('a dashboard per stack, and the alarm email subscribed', () => {
    for (const t of Object.values(templates)) {
      t.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
      t.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: config.alarmEmail });
    }
  });
});

describe('restore-test network', () => {
  // Without data checks (the example has them: data-checks.test.ts checks what they add).
  const noChecks = exampleConfig();
  delete noChecks.target.restoreTest.dataChecks;
  const plain = synthExample(noChecks).target;
  const restoreTestGroup = { GroupDescription: 'snapferry restore tests: no ingress, no egress' };

  test('isolated: no internet or NAT gateway, no route out, security group with no rules (without data checks)', () => {
    for (const t of [plain, synth.target]) {
      t.resourceCountIs('AWS::EC2::InternetGateway', 0);
      t.resourceCountIs('AWS::EC2::NatGateway', 0);
      t.resourceCountIs('AWS::EC2::Route', 0);
      t.resourceCountIs('AWS::EC2::FlowLog', 1);
      t.hasResourceProperties('AWS::RDS::DBSubnetGroup', { DBSubnetGroupName: 'snapferry-restore-test' });
    }
    plain.resourceCountIs('AWS::EC2::SecurityGroupIngress', 0);
    const sg = only(plain, 'AWS::EC2::SecurityGroup', {});
    assert.deepEqual(sg.Properties.GroupDescription, restoreTestGroup.GroupDescription);
    assert.equal(sg.Properties.SecurityGroupIngress, undefined);
    // CDK's marker for "no egress": a rule matching nothing (ICMP type 252 to 255.255.255.255/32).
    assert.deepEqual(sg.Properties.SecurityGroupEgress.map((e: any) => e.CidrIp), ['255.255.255.255/32']);
    // With data checks too, the restored databases' group has no egress (its only ingress: data-checks.test.ts).
    const checked = only(synth.target, 'AWS::EC2::SecurityGroup', restoreTestGroup);
    assert.deepEqual(checked.Properties.SecurityGroupEgress.map((e: any) => e.CidrIp), ['255.255.255.255/32']);
    const egressOf = Object.values(resources(synth.target, 'AWS::EC2::SecurityGroupEgress')).map((e) => e.Properties.GroupId['Fn::GetAtt'][0]);
    assert.ok(!egressOf.includes(checked.id));
  });

  test('the restore function gets the subnet group and security group', () => {
    for (const t of [plain, synth.target]) {
      const f = only(t, 'AWS::Lambda::Function', { FunctionName: 'snapferry-restore' });
      const sgId = only(t, 'AWS::EC2::SecurityGroup', restoreTestGroup).id;
      const sng = Object.keys(resources(t, 'AWS::RDS::DBSubnetGroup'))[0];
      assert.deepEqual(f.Properties.Environment.Variables.RESTORE_SECURITY_GROUP_IDS, { 'Fn::GetAtt': [sgId, 'GroupId'] });
      assert.deepEqual(f.Properties.Environment.Variables.RESTORE_SUBNET_GROUP, { Ref: sng });
    }
  });
});

describe('lambda packages', () => {
  test('every function runs the one package, its Handler naming its routing.json step', () => {
    for (const fn of routing.functions) {
      const f = only(templateFor(synth, fn.account), 'AWS::Lambda::Function', { FunctionName: functionName(fn) });
      assert.equal(f.Properties.Handler, fn.name, functionName(fn));
    }
    const fns = [synth.source, synth.target].flatMap((t) => Object.values(resources(t, 'AWS::Lambda::Function')));
    assert.equal(fns.length, routing.functions.length);
    // One asset: the same S3 object for every function (each stack's bucket is its account's).
    const keys = new Set(fns.map((f) => JSON.stringify(f.Properties.Code.S3Key)));
    assert.equal(keys.size, 1, [...keys].join(', '));
  });

  test('the one asset is <lambdaAssets>/snapferry-lambda/bootstrap.zip, staged once', () => {
    const assetsDir = placeholderAssets();
    const app = newApp();
    const deployment = buildDeployment(app, config, routing, assetsDir);
    const assembly = app.synth();
    const want = fs.readFileSync(lambdaZip(assetsDir));
    for (const stack of [deployment.target, ...deployment.sources]) {
      const keys = Object.values(Template.fromStack(stack).findResources('AWS::Lambda::Function'))
        .map((f) => (f as any).Properties.Code.S3Key as string);
      assert.equal(new Set(keys).size, 1, stack.stackName);
      // The default synthesizer stages a file asset as asset.<hash><ext> and uploads it as <hash><ext>.
      assert.deepEqual(fs.readFileSync(path.join(assembly.directory, `asset.${keys[0]}`)), want, stack.stackName);
    }
    const staged = fs.readdirSync(assembly.directory).filter((f) => f.startsWith('asset.') && f.endsWith('.zip'));
    assert.equal(staged.length, 1, staged.join(', '));
  });

  test('a missing cargo-lambda zip fails synth with a message saying how to build it', () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'snapferry-empty-'));
    assert.throws(() => buildDeployment(newApp(), config, routing, empty),
      /Lambda package .*\/snapferry-lambda\/bootstrap\.zip is missing: run scripts\/build-lambdas \(cargo lambda build .*-p snapferry-lambda\)/);
  });
});
