// The backup account's CMK, one per region that holds copies. Every region uses the same
// alias so the copy function can name the key in another region without a cross-region
// stack reference (RDS accepts an alias ARN as KmsKeyId).
import { RemovalPolicy } from 'aws-cdk-lib';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';

export const TARGET_KEY_ALIAS = 'alias/snapferry-target';

export function targetKey(scope: Construct, id: string): kms.Key {
  // The default key policy gives the account root kms:*: administrators keep control and
  // the functions get use of the key through their IAM policies.
  return new kms.Key(scope, id, {
    alias: TARGET_KEY_ALIAS,
    description: 'snapferry: encrypts the backup copies in this account',
    enableKeyRotation: true,
    // Every backup copy is encrypted with it: deleting the stack must never delete the key.
    removalPolicy: RemovalPolicy.RETAIN,
  });
}
