// The backup account's CMK, one per region that holds copies. Every region uses the same
// alias so the copy function can name the key in another region without a cross-region
// stack reference (RDS accepts an alias ARN as KmsKeyId).
//
// Every backup copy is encrypted with it, so whoever can delete or disable the key can make
// every copy unreadable, locked EBS copies included: EBS Snapshot Lock keeps a snapshot from
// being deleted but does not protect the key it is encrypted with (EBS User Guide,
// snapshot-lock-considerations). Deleting a KMS key is irreversible once its waiting period
// (7 to 30 days) has passed (KMS Developer Guide, deleting-keys). Hence:
// - always: the longest waiting period, 30 days, for CloudFormation's deletion
//   (PendingWindowInDays) and, by a deny for everyone, for any ScheduleKeyDeletion call
//   (condition kms:ScheduleKeyDeletionPendingWindowInDays);
// - with a break-glass role (config target.breakGlassRoleArn): kms:ScheduleKeyDeletion and
//   kms:DisableKey denied to every principal but that role, and kms:PutKeyPolicy (the way to
//   remove these denies) to every principal but that role and CloudFormation's execution role.
//   The execution role cannot be left out: KMS refuses a key policy that would not let the
//   principal setting it (here CloudFormation's execution role) set the policy again
//   (MalformedPolicyDocumentException, the key policy lockout safety check; KMS API Reference,
//   CreateKey / PutKeyPolicy, BypassPolicyLockoutSafetyCheck), and the stack could never update
//   the key again. So whoever may deploy this stack can still change the policy: the deny stops
//   everyone else, a stolen administrator session included, not the deployment pipeline.
import { DefaultStackSynthesizer, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';

export const TARGET_KEY_ALIAS = 'alias/snapferry-target';

/** KMS's longest waiting period before a key scheduled for deletion is deleted (7 to 30 days). */
export const MAX_PENDING_WINDOW_DAYS = 30;

export interface TargetKeyProps {
  /**
   * The only principal that may schedule the key's deletion or disable it, and, with
   * CloudFormation's execution role, change its policy. Unset: no such deny (the account's
   * administrators keep every right on the key), only the 30-day waiting period.
   */
  readonly breakGlassRoleArn?: string;
}

export function targetKey(scope: Construct, id: string, props: TargetKeyProps = {}): kms.Key {
  // The default key policy gives the account root kms:*: administrators keep control and
  // the functions get use of the key through their IAM policies.
  const key = new kms.Key(scope, id, {
    alias: TARGET_KEY_ALIAS,
    description: 'snapferry: encrypts the backup copies in this account',
    enableKeyRotation: true,
    // Every backup copy is encrypted with it: deleting the stack must never delete the key.
    removalPolicy: RemovalPolicy.RETAIN,
    pendingWindow: Duration.days(MAX_PENDING_WINDOW_DAYS),
  });
  // Not a lockout: it refuses only a shorter waiting period, to everyone alike.
  key.addToResourcePolicy(new iam.PolicyStatement({
    sid: 'DenyShortDeletionWindow',
    effect: iam.Effect.DENY,
    principals: [new iam.AnyPrincipal()],
    actions: ['kms:ScheduleKeyDeletion'],
    resources: ['*'],
    conditions: { NumericLessThan: { 'kms:ScheduleKeyDeletionPendingWindowInDays': MAX_PENDING_WINDOW_DAYS } },
  }));
  if (props.breakGlassRoleArn !== undefined) {
    const deployer = cloudFormationExecutionRoleArn(Stack.of(scope));
    key.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'OnlyBreakGlassDeletesOrDisables',
      effect: iam.Effect.DENY,
      principals: [new iam.AnyPrincipal()],
      actions: ['kms:ScheduleKeyDeletion', 'kms:DisableKey'],
      resources: ['*'],
      conditions: { ArnNotEquals: { 'aws:PrincipalArn': props.breakGlassRoleArn } },
    }));
    key.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'OnlyBreakGlassOrDeploymentChangesPolicy',
      effect: iam.Effect.DENY,
      principals: [new iam.AnyPrincipal()],
      actions: ['kms:PutKeyPolicy'],
      resources: ['*'],
      conditions: { ArnNotEquals: { 'aws:PrincipalArn': [props.breakGlassRoleArn, deployer] } },
    }));
  }
  return key;
}

/**
 * The role CloudFormation deploys the stack with (cdk bootstrap's cfn-exec-role), as
 * aws:PrincipalArn names it. Only the default synthesizer says which role that is.
 */
export function cloudFormationExecutionRoleArn(stack: Stack): string {
  const synthesizer = stack.synthesizer;
  if (!(synthesizer instanceof DefaultStackSynthesizer)) {
    throw new Error(`${stack.stackName}: target.breakGlassRoleArn needs the default stack synthesizer, which names CloudFormation's execution role `
      + '(the key policy must keep letting it update the policy, or KMS refuses it)');
  }
  // The synthesizer's ARN carries CloudFormation placeholders for the manifest; the template needs the values.
  return synthesizer.cloudFormationExecutionRoleArn
    .split('${AWS::Partition}').join(stack.partition)
    .split('${AWS::AccountId}').join(stack.account)
    .split('${AWS::Region}').join(stack.region);
}
