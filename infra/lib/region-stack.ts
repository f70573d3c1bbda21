// What an extra region of the backup account needs before copies can land there: its key.
import { Stack, StackProps } from 'aws-cdk-lib';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { targetKey } from './target-key';

export class TargetRegionStack extends Stack {
  readonly key: kms.Key;

  constructor(scope: Construct, id: string, props: StackProps) {
    super(scope, id, props);
    this.key = targetKey(this, 'TargetKey');
  }
}
