// ARN and condition helpers for the hand-written least-privilege policies.
import { Stack } from 'aws-cdk-lib';

/** The tag snapferry puts on every snapshot it creates; nothing without it is modified. */
export const MANAGED_TAG = 'snapferry:managed';
/** The tag on DB instances/clusters a restore test creates; only those are deleted. */
export const RESTORE_TEST_TAG = 'snapferry:restore-test';
/** Every identifier snapferry creates starts with this. */
export const PREFIX = 'snapferry-';

export type RdsType = 'db' | 'cluster' | 'snapshot' | 'cluster-snapshot' | 'subgrp' | 'og' | 'pg' | 'cluster-pg';

export class Arns {
  constructor(private readonly stack: Stack) {}

  rds(type: RdsType, name: string, region = this.stack.region, account = this.stack.account): string {
    return `arn:${this.stack.partition}:rds:${region}:${account}:${type}:${name}`;
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

export const requestTag = (tag: string) => ({ StringEquals: { [`aws:RequestTag/${tag}`]: 'true' } });
export const resourceTag = (tag: string) => ({ StringEquals: { [`aws:ResourceTag/${tag}`]: 'true' } });
export const grantForAwsResource = { Bool: { 'kms:GrantIsForAWSResource': 'true' } };

/**
 * KMS use that RDS needs on a snapshot's key to copy or restore it (RDS User Guide,
 * share-encrypted-snapshot: the key policy that gives another account use of a snapshot key).
 */
export const KEY_USE = ['kms:Encrypt', 'kms:Decrypt', 'kms:ReEncrypt*', 'kms:GenerateDataKey*', 'kms:DescribeKey'];
/** Grant management RDS does on the caller's behalf; only ever for an AWS resource. */
export const KEY_GRANTS = ['kms:CreateGrant', 'kms:ListGrants', 'kms:RevokeGrant'];
