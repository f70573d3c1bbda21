// EventBridge's own dead letters: an event a rule matched but could not deliver to its target
// (the step's queue, another account's pipeline bus) would otherwise be dropped with no trace
// but a FailedInvocations data point. Every rule target of a stack dead-letters into the one
// queue built here, which alarms like every step's DLQ.
//
// One queue per stack rather than one per step or per rule: what fails here is delivery (a
// queue or bus policy, a deleted queue, a throttled or unavailable SQS, the other account),
// not a step's work, so the fix is the same whichever rule it hit, and every message names its
// rule and target (RULE_ARN, TARGET_ARN message attributes). A step's own DLQ is no place for
// them: its messages are the step's failures, each with the reason the step recorded, and
// `snapferry dlq replay` sends them back to the step's queue, which is no destination for an
// event bound for another account's bus.
import { Duration, Lazy, Stack, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { dlqAlarm } from './operations';
import { dlqName, loadRouting, Routing } from './routing';

/**
 * The delivery DLQ's name (routing.json `delivery_dlq`, which the operator CLI reads too), the
 * same in every stack (each account and region has one snapferry stack).
 */
export const DELIVERY_DLQ = loadRouting().delivery_dlq;

/**
 * How long EventBridge keeps retrying an event a step's queue did not take before it dead-letters
 * it: at most an hour (the age binds long before 185 attempts, EventBridge's maximum, would).
 * Errors that no retry fixes (no permission, no such queue) skip the retries and dead-letter at
 * once; what is left is SQS throttling or unavailable, which a retry rides out within minutes.
 * EventBridge's default, 24 hours, would leave an hour-long outage unseen for a day (no alarm
 * watches FailedInvocations) and past the default RPO; the reconcile steps, hourly, repair what
 * a late or dead-lettered event did not start, so an hour costs nothing but the alarm.
 */
export const DELIVERY_RETRY = { retryAttempts: 185, maxEventAge: Duration.hours(1) } as const;

export interface DeliveryDlqProps {
  readonly routing: Routing;
  /** Where its alarm goes: the stack's alarm topic (Operations). */
  readonly alarmTopic: sns.ITopic;
}

export class DeliveryDlq extends Construct {
  readonly queue: sqs.Queue;
  readonly alarm: cloudwatch.Alarm;
  /** The rules that dead-letter here: the queue policy admits these and no others. */
  private readonly rules: events.Rule[] = [];
  /**
   * The queue as the targets' deadLetterQueue: an imported reference, on which CDK's targets
   * add no policy statement. They would add one per rule (SourceArn of that rule), and SQS
   * allows a queue policy 20 statements and 10 conditions (SQS Developer Guide,
   * quotas-policies): the backup account has a rule per source account. One statement here
   * lists every rule instead.
   */
  private readonly deadLetterQueue: sqs.IQueue;

  constructor(scope: Construct, id: string, props: DeliveryDlqProps) {
    super(scope, id);
    const clash = props.routing.functions.find((f) => f.queue === DELIVERY_DLQ || dlqName(f) === DELIVERY_DLQ);
    if (clash !== undefined) throw new Error(`routing.json: step ${clash.name}'s queues clash with the delivery DLQ ${DELIVERY_DLQ}`);

    // As every step's DLQ: SSE-SQS (EventBridge can write to it without a key policy), TLS only,
    // routing.json's retention. A standard queue: EventBridge dead-letters to no FIFO queue.
    this.queue = new sqs.Queue(this, 'Queue', {
      queueName: DELIVERY_DLQ,
      retentionPeriod: Duration.days(props.routing.dlq_retention_days),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
    });
    // What EventBridge needs to dead-letter an event (EventBridge User Guide, rule-dlq: "Granting
    // permissions to the dead-letter queue"): SendMessage for its service principal, only on
    // behalf of this stack's rules (aws:SourceArn), every rule in one condition.
    this.queue.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'EventBridgeDeadLetters',
      principals: [new iam.ServicePrincipal('events.amazonaws.com')],
      actions: ['sqs:SendMessage'],
      resources: [this.queue.queueArn],
      conditions: { ArnEquals: { 'aws:SourceArn': Lazy.list({ produce: () => this.rules.map((r) => r.ruleArn) }) } },
    }));
    this.deadLetterQueue = sqs.Queue.fromQueueAttributes(this, 'DeadLetterQueue', {
      queueArn: this.queue.queueArn,
      queueUrl: this.queue.queueUrl,
      queueName: this.queue.queueName,
    });
    // cdk-nag's SQS3 wants every queue either to have a DLQ or to be one, and knows only SQS
    // redrive policies and Lambda's DLQs: this one is EventBridge's (a rule target's DeadLetterConfig).
    Validations.of(this.queue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason: 'It is a dead-letter queue: EventBridge\'s, for the stack\'s rule targets (DeadLetterConfig), which the rule does not recognize; a DLQ of its own would only move its dead letters again.',
    });

    this.alarm = dlqAlarm(this, 'Alarm', this.queue, DELIVERY_DLQ,
      `EventBridge could not deliver an event to a rule's target (a step's queue, or another account's pipeline bus) and put it in ${DELIVERY_DLQ}. `
      + 'Each message is the event, with RULE_ARN, TARGET_ARN, ERROR_CODE and ERROR_MESSAGE attributes: fix the cause (often a queue or bus '
      + 'policy, or the other account\'s stack), then send the event on again (docs/operations.md, "Undelivered events").',
      props.alarmTopic);

    // No rule of the stack without a dead-letter queue: a rule added some other way fails synth.
    this.node.addValidation({ validate: () => this.undelivered() });
  }

  /** Sends `rule`'s events to `queue` (a step's), dead-lettering what EventBridge cannot deliver here. */
  deliverToQueue(rule: events.Rule, queue: sqs.IQueue): void {
    this.rules.push(rule);
    rule.addTarget(new targets.SqsQueue(queue, { deadLetterQueue: this.deadLetterQueue, ...DELIVERY_RETRY }));
  }

  /**
   * Puts `rule`'s events on `bus` (another account's pipeline bus) with `role`, dead-lettering
   * what EventBridge cannot deliver here (CROSS_ACCOUNT_INGESTION_FAILED: the other account's bus
   * missing or its policy not admitting `role`). CDK's EventBus target takes no retry policy
   * ("Retry policy is not supported for Event bus targets"), so these keep EventBridge's default
   * (24 hours, 185 attempts); the errors a retry cannot fix dead-letter at once all the same.
   */
  deliverToBus(rule: events.Rule, bus: events.IEventBus, role: iam.IRole): void {
    this.rules.push(rule);
    rule.addTarget(new targets.EventBus(bus, { role, deadLetterQueue: this.deadLetterQueue }));
  }

  /** Every target of a rule in this stack that does not dead-letter here, or not through this construct (its rule missing from the policy). */
  private undelivered(): string[] {
    const stack = Stack.of(this);
    const arn = JSON.stringify(stack.resolve(this.queue.queueArn));
    const admitted = new Set(this.rules.map((r) => r.node.defaultChild));
    const errors: string[] = [];
    for (const rule of stack.node.findAll().filter((c): c is events.CfnRule => c instanceof events.CfnRule)) {
      const ts = (stack.resolve(rule.targets) ?? []) as { id: string; deadLetterConfig?: { arn?: unknown } }[];
      for (const t of ts) {
        if (JSON.stringify(t.deadLetterConfig?.arn) !== arn) {
          errors.push(`${rule.node.path}: target ${t.id} has no dead-letter queue, or not ${DELIVERY_DLQ}: add it with DeliveryDlq.deliverToQueue or deliverToBus`);
        } else if (!admitted.has(rule)) {
          errors.push(`${rule.node.path}: target ${t.id} dead-letters to ${DELIVERY_DLQ}, but not through DeliveryDlq, whose policy statement lists the rules that may send to it: add it with DeliveryDlq.deliverToQueue or deliverToBus`);
        }
      }
    }
    return errors;
  }
}
