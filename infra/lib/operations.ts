// Where an operator looks: one SNS topic every alarm notifies, and one dashboard per stack.
import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
import type { Step } from './step';

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

  addSteps(steps: Step[]): void {
    this.dashboard.addWidgets(new cloudwatch.AlarmStatusWidget({
      title: 'snapferry alarms',
      alarms: steps.flatMap((s) => s.alarms),
      width: 24,
    }));
    for (const step of steps) this.dashboard.addWidgets(...step.widgets());
  }
}
