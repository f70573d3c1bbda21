// Where an operator looks: one SNS topic every alarm notifies, and one dashboard per stack.
// The alarms that fire on the first occurrence of something (a dead letter, an error) are all
// made here, so every one of them pages the same way.
import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import type { DeliveryDlq } from './delivery';
import type { Step } from './step';

export interface FirstOccurrenceAlarmProps {
  readonly alarmName: string;
  readonly description: string;
  readonly metric: cloudwatch.Metric;
  readonly topic: sns.ITopic;
}

/**
 * An alarm on `topic` as soon as `metric` reaches 1 in one period. Missing data is no
 * occurrence: these metrics report only when something happens (or, for a queue, are 0).
 */
export function firstOccurrenceAlarm(scope: Construct, id: string, props: FirstOccurrenceAlarmProps): cloudwatch.Alarm {
  const alarm = props.metric.createAlarm(scope, id, {
    alarmName: props.alarmName,
    alarmDescription: props.description,
    threshold: 1,
    evaluationPeriods: 1,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
  });
  alarm.addAlarmAction(new cwActions.SnsAction(props.topic));
  return alarm;
}

/**
 * The alarm of a dead-letter queue (every step's, and the stack's delivery DLQ): `<name>-not-empty`,
 * within a minute of any message in it. Nothing else tells anyone a dead letter is waiting.
 */
export function dlqAlarm(scope: Construct, id: string, queue: sqs.IQueue, name: string, description: string, topic: sns.ITopic): cloudwatch.Alarm {
  return firstOccurrenceAlarm(scope, id, {
    alarmName: `${name}-not-empty`,
    description,
    metric: queue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1), statistic: 'Maximum' }),
    topic,
  });
}

export class Operations extends Construct {
  readonly topic: sns.Topic;
  private readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, id: string, props: { dashboardName: string; alarmEmail?: string }) {
    super(scope, id);
    this.topic = new sns.Topic(this, 'Alarms', { topicName: 'snapferry-alarms', enforceSSL: true });
    if (props.alarmEmail) this.topic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));
    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: props.dashboardName,
      defaultInterval: Duration.days(1),
    });
  }

  addSteps(steps: Step[], delivery: DeliveryDlq): void {
    this.dashboard.addWidgets(new cloudwatch.AlarmStatusWidget({
      title: 'snapferry alarms',
      alarms: [...steps.flatMap((s) => s.alarms), delivery.alarm],
      width: 24,
    }));
    for (const step of steps) this.dashboard.addWidgets(...step.widgets());
    this.dashboard.addWidgets(new cloudwatch.GraphWidget({
      title: 'events EventBridge could not deliver (delivery DLQ)',
      left: [delivery.queue.metricApproximateNumberOfMessagesVisible({ label: 'delivery DLQ visible' })],
      width: 24,
    }));
  }
}
