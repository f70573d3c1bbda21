// ARN and condition helpers: permissions.ts renders shared/permissions.json with them, and the
// key and bus policies use them directly.
import { Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';

/** The tag snapferry puts on every snapshot it creates; nothing without it is modified. */
export const MANAGED_TAG = 'snapferry:managed';
/** The tag on DB instances/clusters a restore test creates; only those are deleted. */
export const RESTORE_TEST_TAG = 'snapferry:restore-test';
/** Every identifier snapferry creates starts with this. */
export const PREFIX = 'snapferry-';

export type RdsType = 'db' | 'cluster' | 'snapshot' | 'cluster-snapshot' | 'subgrp' | 'og' | 'pg' | 'cluster-pg';
export type Ec2Type = 'volume' | 'instance' | 'snapshot';

export class Arns {
  constructor(private readonly stack: Stack) {}

  rds(type: RdsType, name: string, region = this.stack.region, account = this.stack.account): string {
    return `arn:${this.stack.partition}:rds:${region}:${account}:${type}:${name}`;
  }

  /**
   * An EC2 resource. EBS snapshot ARNs carry no account (`arn:aws:ec2:<region>::snapshot/<id>`,
   * Service Authorization Reference, Amazon EC2 resource types): pass '' for them.
   */
  ec2(type: Ec2Type, id: string, region = this.stack.region, account: string = this.stack.account): string {
    return `arn:${this.stack.partition}:ec2:${region}:${account}:${type}/${id}`;
  }

  /** Everything RDS in one account and region: for read-only Describe* calls. */
  rdsAll(region = this.stack.region): string {
    return `arn:${this.stack.partition}:rds:${region}:${this.stack.account}:*`;
  }

  kmsKeys(region: string, account: string): string {
    return `arn:${this.stack.partition}:kms:${region}:${account}:key/*`;
  }

  eventBus(region: string, account: string, name: string): string {
    return `arn:${this.stack.partition}:events:${region}:${account}:event-bus/${name}`;
  }
}

/**
 * The role an account's forwarding rules put events on the other side's pipeline buses with:
 * a source account's ("Snapshot Shared" to the backup account's bus) and the backup account's
 * ("Snapshot Copied" back to each source's bus, routing.json copied_back). Its name is fixed so
 * the receiving bus's policy can admit exactly this role (aws:PrincipalArn) without any
 * reference across accounts. Role names are per account, so the region of the stack that
 * creates it is part of it.
 */
export const forwarderRoleName = (region: string) => `snapferry-forward-${region}`;
export const forwarderRoleArn = (partition: string, account: string, region: string) =>
  `arn:${partition}:iam::${account}:role/${forwarderRoleName(region)}`;

/**
 * A pipeline bus policy statement admitting `events:PutEvents` from another account only as
 * that account's forwarding role, and only snapferry's events of the given detail-type. The
 * role is matched with aws:PrincipalArn under the account principal rather than named as the
 * principal: the other side's stack may deploy after this one creates the role, and a role
 * principal must exist when the policy is saved (and stops matching if the role is recreated).
 * events:source and events:detail-type are multivalued keys (ArrayOfString in the Service
 * Authorization Reference: one value per entry of a PutEvents call), and a multivalued key
 * needs a set operator (IAM User Guide, reference_policies_condition-single-vs-multi-valued-
 * context-keys; EventBridge's own cross-account example, eb-event-bus-example-policy-cross-
 * account-custom-bus-source, uses ForAllValues:StringEquals): plain StringEquals would match
 * nothing. ForAllValues: every entry must be ours; Null false: a request without the keys (for
 * which ForAllValues alone is true) is not admitted. test/simulate.test.ts checks it.
 */
export function forwardedEvents(props: {
  sid: string; account: string; region: string; busArn: string; source: string; detailType: string; partition: string;
}): iam.PolicyStatement {
  return new iam.PolicyStatement({
    sid: props.sid,
    principals: [new iam.AccountPrincipal(props.account)],
    actions: ['events:PutEvents'],
    resources: [props.busArn],
    conditions: {
      StringEquals: { 'aws:PrincipalArn': forwarderRoleArn(props.partition, props.account, props.region) },
      'ForAllValues:StringEquals': { 'events:source': props.source, 'events:detail-type': props.detailType },
      Null: { 'events:source': 'false', 'events:detail-type': 'false' },
    },
  });
}

/**
 * The service RDS in `region` calls KMS as (kms:ViaService). Every statement that lets the
 * backup account use a source account's sharing key carries it, in the key policy and in the
 * copy role's policy: the key then serves only RDS copying the shared snapshots, never a
 * direct kms:Decrypt from the backup account (KMS Developer Guide, conditions-kms,
 * kms:ViaService; RDS User Guide, Overview.Encryption.Keys, "Authorizing use of a customer
 * managed key": kms:ViaService with rds.<region>.amazonaws.com).
 */
export const viaRds = (region: string) => ({ StringEquals: { 'kms:ViaService': `rds.${region}.amazonaws.com` } });

/**
 * The same for EBS: EC2 in `region` calling KMS for an encrypted volume or snapshot (KMS
 * Developer Guide, conditions-kms, kms:ViaService: ec2.<region>.amazonaws.com).
 */
export const viaEc2 = (region: string) => ({ StringEquals: { 'kms:ViaService': `ec2.${region}.amazonaws.com` } });

/**
 * ec2:CreateTags only as the tagging a create call does with its TagSpecifications (EC2 User
 * Guide, supported-iam-actions-tagging: ec2:CreateAction names the creating action).
 */
export const createAction = (actions: string[]) => ({ StringEquals: { 'ec2:CreateAction': actions.length === 1 ? actions[0] : actions } });

export const requestTag = (tag: string) => ({ StringEquals: { [`aws:RequestTag/${tag}`]: 'true' } });
export const resourceTag = (tag: string) => ({ StringEquals: { [`aws:ResourceTag/${tag}`]: 'true' } });
export const grantForAwsResource = { Bool: { 'kms:GrantIsForAWSResource': 'true' } };

/**
 * KMS use that RDS needs on a snapshot's key to copy or restore it (RDS User Guide,
 * share-encrypted-snapshot / USER_ShareSnapshot, "Allowing access to an AWS KMS key": the key
 * policy that gives another account use of a snapshot key, and the external account's IAM
 * policy). That page does not say which of these RDS can do without, so none is dropped.
 */
export const KEY_USE = ['kms:Encrypt', 'kms:Decrypt', 'kms:ReEncrypt*', 'kms:GenerateDataKey*', 'kms:DescribeKey'];
/**
 * Grant management RDS does on the caller's behalf; only ever for an AWS resource (the same
 * page's "Allow attachment of persistent resources" statement). kms:RetireGrant is not one of
 * them: who may retire a grant is set by the grant itself, and kms:RetireGrant in a key policy
 * has no effect (KMS Developer Guide, grant-delete, "Retiring and revoking grants").
 */
export const KEY_GRANTS = ['kms:CreateGrant', 'kms:ListGrants', 'kms:RevokeGrant'];

/** The read-only calls Lambda makes to attach a function to a VPC; no resource type, so on "*". */
export const LAMBDA_VPC_DESCRIBE = ['ec2:DescribeNetworkInterfaces', 'ec2:DescribeSubnets'];

/**
 * What Lambda does with a function's role when the function runs in a VPC: it creates, and
 * later deletes, the function's network interfaces (Hyperplane ENIs) as that role (Lambda
 * Developer Guide, configuration-vpc: the role needs ec2:CreateNetworkInterface,
 * DescribeNetworkInterfaces, DescribeSubnets, DeleteNetworkInterface, AssignPrivateIpAddresses
 * and UnassignPrivateIpAddresses, the actions of the AWS managed AWSLambdaVPCAccessExecutionRole,
 * whose logs:* actions the step's own log group grant already covers). The function's code never
 * calls them, so they are not in shared/permissions.json (the emulator runs no VPC); like CDK's
 * log group and event source grants they belong to the deployment. Unlike the managed policy
 * (everything on "*"), they are bound to the one VPC:
 * - Describe*: no resource type (Service Authorization Reference, Amazon EC2), so "*", alone;
 * - CreateNetworkInterface authorizes the new interface, its subnet and its security groups as
 *   resources of their own: any new interface, but only in `subnetIds`, only with `securityGroupId`;
 * - Delete/Assign/Unassign: interfaces of this account and region, only in `vpcId` (ec2:Vpc,
 *   a condition key of the network-interface resource for the three actions).
 * Interface ids are chosen by EC2 when Lambda creates them: `network-interface/*`.
 */
export function lambdaVpcAccess(stack: Stack, props: { vpcId: string; subnetIds: string[]; securityGroupId: string }): iam.PolicyStatement[] {
  const ec2 = (resource: string) => `arn:${stack.partition}:ec2:${stack.region}:${stack.account}:${resource}`;
  return [
    new iam.PolicyStatement({
      sid: 'LambdaVpcDescribe',
      actions: LAMBDA_VPC_DESCRIBE,
      resources: ['*'],
    }),
    new iam.PolicyStatement({
      sid: 'LambdaVpcCreateInterfaces',
      actions: ['ec2:CreateNetworkInterface'],
      resources: [ec2('network-interface/*'), ...props.subnetIds.map((id) => ec2(`subnet/${id}`)), ec2(`security-group/${props.securityGroupId}`)],
    }),
    new iam.PolicyStatement({
      sid: 'LambdaVpcManageInterfaces',
      actions: ['ec2:DeleteNetworkInterface', 'ec2:AssignPrivateIpAddresses', 'ec2:UnassignPrivateIpAddresses'],
      resources: [ec2('network-interface/*')],
      conditions: { ArnEquals: { 'ec2:Vpc': ec2(`vpc/${props.vpcId}`) } },
    }),
  ];
}
