// One pipeline step, built from its routing.json entry: the function, its queue and DLQ,
// the event source mapping, the rules that feed the queue, and the step's alarms. Every
// step of both stacks is this construct, so they all get the same guarantees: the same
// binary, and an environment that shared/environment.json declares.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import type { DeliveryDlq } from './delivery';
import { EnvironmentContract, environmentContract, stepEnvironment } from './environment';
import { lambdaVpcAccess } from './iam';
import { dlqAlarm, firstOccurrenceAlarm } from './operations';
import { dlqName, EventPattern, functionName, Routing, RoutingFunction } from './routing';

export interface StepProps {
  readonly routing: Routing;
  readonly fn: RoutingFunction;
  /** Directory holding cargo-lambda's output: `<dir>/snapferry-lambda/bootstrap.zip`. */
  readonly assetsDir: string;
  readonly pipelineBus: events.IEventBus;
  /** The stack's queue for events its rules could not deliver: every rule of the step dead-letters there. */
  readonly deliveryDlq: DeliveryDlq;
  /**
   * The step's own settings; QUEUE_URL, DLQ_URL, PIPELINE_BUS and ACCOUNT_ID are added here.
   * Blank values are left out. Each must be declared for the step in shared/environment.json,
   * and every required variable there must be set.
   */
  readonly environment: Record<string, string | undefined>;
  /**
   * Platform variables beyond QUEUE_URL, DLQ_URL, PIPELINE_BUS and ACCOUNT_ID: set by the
   * deployment, never from the config (other steps' queue URLs, for the reconcile steps'
   * repairs). Each must be declared for the step, and marked platform, in shared/environment.json.
   */
  readonly platform?: Record<string, string>;
  /** The environment contract to check against; default shared/environment.json. */
  readonly contract?: EnvironmentContract;
  readonly memoryMb: number;
  readonly logRetentionDays: number;
  readonly alarmTopic: sns.ITopic;
  /**
   * Cap on concurrent invocations by the SQS event source mapping (ScalingConfig.MaximumConcurrency,
   * 2..1000). Never reserved concurrency: Lambda's throttled polls count as receives, so SQS
   * would dead-letter messages no invocation ever saw.
   */
  readonly maxConcurrency?: number;
  /**
   * Alarm when the step reports a full manual snapshot quota (routing.json 'metrics'): for the
   * steps that create or copy snapshots, which RDS then refuses until snapshots are deleted.
   */
  readonly quotaAlarm?: boolean;
  /**
   * Alarm when the step reports a manual snapshot quota at least QUOTA_WARNING_PERCENT full
   * (routing.json 'metrics' quota_warning): for the expire steps, which check the quotas.
   */
  readonly quotaWarningAlarm?: boolean;
  /**
   * The step sweeps many resources or snapshots (create-snapshot, expire, reconcile) and goes on
   * past one that fails, reporting it with the ResourceFailed metric: alarmed, since the run itself
   * succeeds when the failure cannot pass by retrying.
   */
  readonly sweepAlarm?: boolean;
  /**
   * Alarm when the step rejects a share because its source is past its budget in the backup
   * account (routing.json 'metrics' budget_exceeded): for copy-shared-snapshot, whose
   * COPIES_HELD_PER_SOURCE and COPIES_IN_FLIGHT_PER_SOURCE keep one source from taking the
   * quotas every source shares.
   */
  readonly budgetAlarm?: boolean;
  /**
   * Alarm when the step finds a verified copy suspicious (routing.json 'metrics'
   * restore_suspicious): for the restore step, whose data checks compare each copy with the
   * previous good copy of its resource, and which verifies it all the same (it restored fine).
   */
  readonly suspiciousAlarm?: boolean;
  /**
   * Alarm `snapferry-backup-overdue` when the step reports a backup overdue (routing.json
   * 'metrics' backup_overdue): for the reconcile steps, one per stack.
   */
  readonly backupOverdueAlarm?: boolean;
  /**
   * The recovery point objective in minutes: alarm `snapferry-recovery-point-over-rpo` when the
   * step's largest recovery point (routing.json 'metrics' recovery_point_max) is older, or when
   * the step reports none at all. For reconcile-copies.
   */
  readonly rpoMinutes?: number;
  /**
   * Runs the function in these subnets of a VPC with this security group (the restore step with
   * data checks, data-checks.ts); absent: outside any VPC. Its role then also gets what Lambda
   * needs to attach it (lambdaVpcAccess, iam.ts): `vpcStatements`.
   */
  readonly vpc?: StepVpc;
}

export interface StepVpc {
  readonly vpc: ec2.IVpc;
  readonly subnets: ec2.SubnetSelection;
  readonly securityGroup: ec2.ISecurityGroup;
}

/** The alarm on a reconcile step's BackupOverdue count (one per stack: each account has one reconcile step). */
export const BACKUP_OVERDUE_ALARM = 'snapferry-backup-overdue';
/** The alarm on reconcile-copies' MaxRecoveryPointAgeSeconds against the RPO (backup account). */
export const RPO_ALARM = 'snapferry-recovery-point-over-rpo';

/** The one Lambda package (cargo-lambda's name for it) every step runs. */
export const LAMBDA_PACKAGE = 'snapferry-lambda';

/** cargo-lambda's zip of LAMBDA_PACKAGE in its output directory. */
export function lambdaZip(assetsDir: string): string {
  return path.join(assetsDir, LAMBDA_PACKAGE, 'bootstrap.zip');
}

export class Step extends Construct {
  /** The step's routing.json name (its function is snapferry-<name>). */
  readonly stepName: string;
  readonly queue: sqs.Queue;
  readonly dlq: sqs.Queue;
  readonly function: lambda.Function;
  readonly role: iam.Role;
  readonly alarms: cloudwatch.Alarm[] = [];
  /**
   * What Lambda needs on the role to attach the function to its VPC (none outside a VPC). Not
   * added here: stepsFor adds them with the permissions.json statements, and acknowledges the
   * wildcards of both together.
   */
  readonly vpcStatements: iam.PolicyStatement[] = [];
  /** The recovery point metric (largest per run) when the step has an RPO alarm: graphed on the dashboard. */
  private recoveryPoint?: { metric: cloudwatch.Metric; rpoSeconds: number };

  constructor(scope: Construct, id: string, props: StepProps) {
    super(scope, id);
    const { routing, fn } = props;
    const name = functionName(fn);
    this.stepName = fn.name;

    const zip = lambdaZip(props.assetsDir);
    if (!fs.existsSync(zip)) {
      throw new Error(`Lambda package ${zip} is missing: run scripts/build-lambdas `
        + `(cargo lambda build --release --arm64 --output-format zip --locked -p ${LAMBDA_PACKAGE}), `
        + `or point -c lambdaAssets=<dir> at cargo-lambda's output`);
    }

    this.dlq = new sqs.Queue(this, 'Dlq', {
      queueName: dlqName(fn),
      retentionPeriod: Duration.days(routing.dlq_retention_days),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
    });
    this.queue = new sqs.Queue(this, 'Queue', {
      queueName: fn.queue,
      // A message must stay invisible for several full invocations, or a slow batch is
      // delivered twice while it is still being worked on.
      visibilityTimeout: Duration.seconds(fn.timeout_seconds * routing.visibility_timeout_factor),
      deadLetterQueue: { queue: this.dlq, maxReceiveCount: routing.max_receive_count },
      // SSE-SQS rather than a CMK: EventBridge can deliver to it without a key policy.
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
    });

    const logGroup = new logs.LogGroup(this, 'Logs', {
      logGroupName: `/aws/lambda/${name}`,
      retention: props.logRetentionDays as logs.RetentionDays,
      // The name is fixed, so a retained group would block the next deploy after a teardown.
      removalPolicy: RemovalPolicy.DESTROY,
    });
    // Our own role, so the function gets no AWS-managed policy: logs go to its group only.
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `${name} Lambda`,
    });
    logGroup.grantWrite(this.role);

    // Refuses (naming the step and the variable) anything shared/environment.json does not
    // declare for this step, and any required variable left out.
    const own = ['QUEUE_URL', 'DLQ_URL', 'PIPELINE_BUS', 'ACCOUNT_ID'].filter((v) => v in (props.platform ?? {}));
    if (own.length > 0) throw new Error(`step ${fn.name}: ${own.join(', ')} is set by the Step construct itself, not by the stack`);
    const environment = stepEnvironment(props.contract ?? environmentContract(), fn.name, {
      ...props.platform,
      QUEUE_URL: this.queue.queueUrl,
      DLQ_URL: this.dlq.queueUrl,
      PIPELINE_BUS: routing.pipeline_bus,
      // Known at deploy time, so the function's init need not ask STS for it (a network
      // call on every cold start).
      ACCOUNT_ID: Stack.of(this).account,
    }, props.environment);

    this.function = new lambda.Function(this, 'Function', {
      functionName: name,
      runtime: lambda.Runtime.PROVIDED_AL2023,
      architecture: lambda.Architecture.ARM_64,
      // One binary for every step: a provided.al2023 runtime passes the Handler to it as
      // _HANDLER, and the binary runs the step of that name. Every step's asset is the same
      // file, so CDK stages and uploads it once.
      handler: fn.name,
      code: lambda.Code.fromAsset(zip),
      timeout: Duration.seconds(fn.timeout_seconds),
      memorySize: props.memoryMb,
      role: this.role,
      logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      environment,
      vpc: props.vpc?.vpc,
      vpcSubnets: props.vpc?.subnets,
      securityGroups: props.vpc === undefined ? undefined : [props.vpc.securityGroup],
    });
    if (props.vpc !== undefined) {
      this.vpcStatements.push(...lambdaVpcAccess(Stack.of(this), {
        vpcId: props.vpc.vpc.vpcId,
        subnetIds: props.vpc.vpc.selectSubnets(props.vpc.subnets).subnetIds,
        securityGroupId: props.vpc.securityGroup.securityGroupId,
      }));
    }
    this.function.addEventSource(new SqsEventSource(this.queue, {
      batchSize: fn.batch_size,
      reportBatchItemFailures: true,
      maxConcurrency: props.maxConcurrency,
    }));
    // The role's own permissions (its queues, the pipeline bus, the step's work) come from
    // shared/permissions.json: stepsFor (steps.ts) adds them.

    for (const r of fn.rules) {
      const rule = new events.Rule(this, r.name, {
        ruleName: r.name,
        eventBus: r.bus === 'pipeline' ? props.pipelineBus : undefined,
        schedule: r.schedule !== undefined ? events.Schedule.expression(r.schedule) : undefined,
        eventPattern: r.pattern !== undefined ? cdkEventPattern(r.pattern) : undefined,
      });
      // What EventBridge cannot put in the queue goes to the stack's delivery DLQ, not lost.
      props.deliveryDlq.deliverToQueue(rule, this.queue);
    }

    const action = new cwActions.SnsAction(props.alarmTopic);
    const alarm = (alarmId: string, alarmName: string, description: string, metric: cloudwatch.Metric) => {
      this.alarms.push(firstOccurrenceAlarm(this, alarmId, { alarmName, description, metric, topic: props.alarmTopic }));
    };
    this.alarms.push(dlqAlarm(this, 'DlqAlarm', this.dlq, dlqName(fn),
      `A message reached ${dlqName(fn)}: look at it, fix the cause, then redrive it (StartMessageMoveTask).`, props.alarmTopic));
    alarm('ErrorsAlarm', `${name}-errors`, `${name} failed an invocation.`,
      this.function.metricErrors({ period: Duration.minutes(5), statistic: 'Sum' }));
    alarm('ThrottlesAlarm', `${name}-throttles`, `${name} was throttled.`,
      this.function.metricThrottles({ period: Duration.minutes(5), statistic: 'Sum' }));
    if (props.quotaAlarm) {
      // The step writes this metric (embedded metric format, a log line) when RDS refuses a
      // snapshot for the quota. It is no error of the step and no invocation fails, so only
      // this alarm tells anyone that backups are being delayed or missed.
      alarm('QuotaFullAlarm', `${name}-snapshot-quota-full`,
        `${name} could not create or copy a snapshot: the account's manual snapshot quota is full (its log names the region). `
        + 'Until there is room, backups are delayed or missed. Delete manual snapshots that are no longer needed, '
        + 'or raise the quota in Service Quotas (Amazon RDS; DescribeAccountAttributes: ManualSnapshots / ManualClusterSnapshots).',
        new cloudwatch.Metric({
          namespace: routing.metrics.namespace,
          metricName: routing.metrics.quota_full,
          dimensionsMap: { Step: fn.name },
          period: Duration.minutes(5),
          statistic: 'Sum',
        }));
    }
    if (props.sweepAlarm) {
      alarm('ResourceFailedAlarm', `${name}-resource-failed`,
        `${name} failed at a resource or snapshot and went on with the others. The "Snapshot Rejected" event and the log `
        + 'name it and give AWS\'s reason (a disabled or inaccessible key, an invalid state, a refused deletion); fix the cause. '
        + 'A failure that may pass by itself (throttling) also makes the run fail, to be retried and dead-lettered.',
        new cloudwatch.Metric({
          namespace: routing.metrics.namespace,
          metricName: routing.metrics.resource_failed,
          dimensionsMap: { Step: fn.name },
          period: Duration.minutes(5),
          statistic: 'Sum',
        }));
    }
    if (props.budgetAlarm) {
      // The share is rejected ("Snapshot Rejected", not retried) and no invocation fails: only
      // this alarm says a source's backups are no longer copied.
      alarm('BudgetExceededAlarm', `${name}-source-budget-exceeded`,
        `${name} rejected a share because its source account is past its budget in this account: it holds as many copies `
        + 'as COPIES_HELD_PER_SOURCE allows, or waited past QUOTA_WAIT_HOURS for a copy in flight (COPIES_IN_FLIGHT_PER_SOURCE). '
        + 'The "Snapshot Rejected" event names the source account and the budget; its backups are not copied until it has room. '
        + 'Either that source floods the backup account or its budget is too small: look at its copies (retention, target.retention), '
        + 'raise target.copy.budgets for it (target.copy.budgets.sources.<account>), or remove it from the allowlist (sources, SOURCE_ACCOUNTS).',
        new cloudwatch.Metric({
          namespace: routing.metrics.namespace,
          metricName: routing.metrics.budget_exceeded,
          dimensionsMap: { Step: fn.name },
          period: Duration.minutes(5),
          statistic: 'Sum',
        }));
    }
    if (props.suspiciousAlarm) {
      // The copy restored and passed its checks, so it is verified ("Restore Verified" too) and
      // no invocation fails: only this alarm says its data may be poisoned, and that retention
      // holds the previous good copy until someone looks.
      alarm('RestoreSuspiciousAlarm', `${name}-suspicious`,
        `${name} verified a copy whose data fell against the previous good copy of its resource: a table gone, rows down by more `
        + 'than compareWithPrevious allows, or older data. Ransomware or a bad migration restores fine. The "Restore Suspicious" event '
        + 'names the copy, the previous good copy and the findings; retention keeps the previous good copy. If the fall was meant, '
        + '`snapferry accept <copy-arn>` (the event\'s snapshot.arn) makes the copy good.',
        new cloudwatch.Metric({
          namespace: routing.metrics.namespace,
          metricName: routing.metrics.restore_suspicious,
          dimensionsMap: { Step: fn.name },
          period: Duration.minutes(5),
          statistic: 'Sum',
        }));
    }
    if (props.quotaWarningAlarm) {
      // Written on every run (hourly) while a quota stays past the threshold: one hour's
      // period, and in alarm while either of the last two hours had one, so a run a little
      // late does not make the alarm flap (missing data is not breaching).
      const a = new cloudwatch.Metric({
        namespace: routing.metrics.namespace,
        metricName: routing.metrics.quota_warning,
        dimensionsMap: { Step: fn.name },
        period: Duration.hours(1),
        statistic: 'Sum',
      }).createAlarm(this, 'QuotaWarningAlarm', {
        alarmName: `${name}-snapshot-quota-warning`,
        alarmDescription: `${name} found a manual snapshot quota of its account at least QUOTA_WARNING_PERCENT full (its log and `
          + 'the "Snapshot Quota Warning" event name the quota and the figures). Once it is full, new snapshots and copies are refused. '
          + 'Check the retention rules (dry run, allowDeleteAll), delete manual snapshots that are no longer needed, '
          + 'or raise the quota in Service Quotas (Amazon RDS; DescribeAccountAttributes: ManualSnapshots / ManualClusterSnapshots).',
        threshold: 1,
        evaluationPeriods: 2,
        datapointsToAlarm: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      a.addAlarmAction(action);
      this.alarms.push(a);
    }
    if (props.backupOverdueAlarm) {
      // Written once per overdue resource by each run (hourly): a source resource with no recent
      // snapshot, or one whose newest verified copy is older than the RPO. Nothing fails
      // meanwhile, so only this alarm says a backup is missing. Missing data is no overdue
      // backup: a reconcile run that does not happen is caught by its errors and DLQ alarms and,
      // in the backup account, by the RPO alarm, which treats missing data as breaching.
      const a = new cloudwatch.Metric({
        namespace: routing.metrics.namespace,
        metricName: routing.metrics.backup_overdue,
        dimensionsMap: { Step: fn.name },
        period: Duration.hours(1),
        statistic: 'Sum',
      }).createAlarm(this, 'BackupOverdueAlarm', {
        alarmName: BACKUP_OVERDUE_ALARM,
        alarmDescription: `${name} found a backup overdue: its "Backup Overdue" events on the snapferry bus, and its log, name the resource. `
          + 'Look for an error, a dead letter or a quota alarm of the steps before it.',
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      a.addAlarmAction(action);
      this.alarms.push(a);
    }
    if (props.rpoMinutes !== undefined) {
      const rpoSeconds = props.rpoMinutes * 60;
      const metric = new cloudwatch.Metric({
        namespace: routing.metrics.namespace,
        metricName: routing.metrics.recovery_point_max,
        dimensionsMap: { Step: fn.name },
        period: Duration.hours(1),
        statistic: 'Maximum',
      });
      this.recoveryPoint = { metric, rpoSeconds };
      const a = metric.createAlarm(this, 'RecoveryPointAlarm', {
        alarmName: RPO_ALARM,
        alarmDescription: `The oldest recovery point of the backup account (the newest verified copy of a source resource, `
          + `MaxRecoveryPointAgeSeconds of ${name}) is older than the RPO of ${props.rpoMinutes} minutes, or ${name} reported none `
          + 'for hours. Its "Backup Overdue" events and RecoveryPointAgeSeconds (dimension Resource) name the resource; '
          + `check the pipeline's errors, dead letters and quota alarms, and that ${name} runs.`,
        threshold: rpoSeconds,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        // A dead man's switch: every reconcile run that finds a recovery point writes the
        // metric, so no data means no run, or not one verified copy (a new deployment), and
        // either way nothing proves a recovery point within the RPO. Breaching, not ignored. CloudWatch fills in missing data only when the alarm's evaluation range (a
        // few periods) holds too few real data points, so one run that slips past an hour's
        // boundary does not set it off; hours without a run do.
        treatMissingData: cloudwatch.TreatMissingData.BREACHING,
      });
      a.addAlarmAction(action);
      this.alarms.push(a);
    }
  }

  /** Dashboard widgets for this step. */
  widgets(): cloudwatch.IWidget[] {
    const fn = this.function;
    return [
      new cloudwatch.GraphWidget({
        title: `${this.node.id}: invocations`,
        left: [fn.metricInvocations(), fn.metricErrors(), fn.metricThrottles()],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: `${this.node.id}: duration`,
        left: [fn.metricDuration({ statistic: 'p99' }), fn.metricDuration({ statistic: 'Average' })],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: `${this.node.id}: queue`,
        left: [this.queue.metricApproximateNumberOfMessagesVisible(), this.dlq.metricApproximateNumberOfMessagesVisible({ label: 'DLQ visible' })],
        right: [this.queue.metricApproximateAgeOfOldestMessage()],
        width: 8,
      }),
      ...(this.recoveryPoint === undefined ? [] : [new cloudwatch.GraphWidget({
        title: `${this.node.id}: oldest recovery point (seconds)`,
        left: [this.recoveryPoint.metric],
        leftAnnotations: [{ value: this.recoveryPoint.rpoSeconds, label: 'RPO' }],
        width: 24,
      })]),
    ];
  }
}

/** routing.json patterns use EventBridge's keys (`detail-type`); the L2 Rule wants camelCase. */
export function cdkEventPattern(pattern: EventPattern): events.EventPattern {
  return Object.fromEntries(
    Object.entries(pattern).map(([k, v]) => [k.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase()), v]),
  ) as events.EventPattern;
}
