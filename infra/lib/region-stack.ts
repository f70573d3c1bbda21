// What an extra region of the backup account needs before copies can land there: its key.
import { Stack, StackProps } from 'aws-cdk-lib';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { targetKey, TargetKeyProps } from './target-key';

export interface TargetRegionStackProps extends StackProps {
  /** The key's protection, as for the home region's key. */
  readonly key?: TargetKeyProps;
}

export class TargetRegionStack extends Stack {
  readonly key: kms.Key;

  constructor(scope: Construct, id: string, props: TargetRegionStackProps) {
    super(scope, id, props);
    this.key = targetKey(this, 'TargetKey', props.key);
  }
}
