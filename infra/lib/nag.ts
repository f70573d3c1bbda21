// cdk-nag (AwsSolutions) findings we accept, each with its reason. Only IAM5 (wildcards)
// is acknowledged here, and only wildcard by wildcard: each one in a step's policy must
// match a known shape below (a "*" resource: only for the actions NO_RESOURCE_TYPE lists),
// so a new, unexplained wildcard still fails synth and tests. The one other acknowledgement
// is SQS3 on the delivery DLQ alone (delivery.ts: a DLQ that rule does not recognize).
import { Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { IConstruct } from 'constructs';
import { LAMBDA_VPC_DESCRIBE } from './iam';

const WILDCARD_REASONS: [RegExp, string][] = [
  [/^Action::kms:(ReEncrypt|GenerateDataKey)\*$/,
    'The KMS action families RDS needs on a snapshot key to copy or restore it (RDS User Guide, share-encrypted-snapshot).'],
  [/^Resource::arn:[\w-]+:rds:[\w-]+:\d{12}:\*$/,
    'Read-only Describe* list calls, limited to this account and region; they have no narrower resource.'],
  [/^Resource::arn:[\w-]+:rds:[\w-]+:\d{12}:(cluster-)?snapshot:snapferry-\*$/,
    'Snapshots snapferry creates are named per run; the snapferry- prefix and the snapferry:managed tag condition on the statement bound them.'],
  [/^Resource::arn:[\w-]+:rds:[\w-]+:\d{12}:(cluster-)?snapshot:\*$/,
    'Any snapshot of the selected databases (automated ones are rds:<name>) or shared by an allowlisted source account can be a copy source; the statement only allows writing copies carrying the snapferry:managed request tag.'],
  [/^Resource::arn:[\w-]+:rds:[\w-]+:\d{12}:(db|cluster):\*$/,
    'Which databases are backed up is chosen at run time (identifiers, regex, tag); snapshots may only be created with the snapferry:managed request tag.'],
  [/^Resource::arn:[\w-]+:rds:[\w-]+:\d{12}:(db|cluster):snapferry-\*$/,
    'Restore-test instances and clusters are named per run; the snapferry- prefix and the snapferry:restore-test tag condition bound them.'],
  [/^Resource::arn:[\w-]+:rds:[\w-]+:\d{12}:(og|pg|cluster-pg):\*$/,
    'A restore uses the default option/parameter group of the snapshot engine version, which is known only at run time; only restores tagged snapferry:restore-test are allowed.'],
  [/^Resource::arn:[\w-]+:kms:[\w*-]+:\d{12}:key\/\*$/,
    'Key ids are not known at deploy time (aws/rds, aws/ebs, other accounts\' sharing keys, other regions\' target keys); the statement is limited by kms:ViaService (rds or ec2 of the key\'s region) or by the snapferry alias.'],
  [/^Resource::arn:[\w-]+:ec2:[\w-]+:\d{12}:(volume|instance)\/\*$/,
    'Which volumes and instances are backed up is chosen at run time (identifiers, regex, tags); snapshots of them may only be created with the snapferry:managed request tag, and only volumes tagged snapferry:restore-test are created or deleted.'],
  [/^Resource::arn:[\w-]+:ec2:[\w-]+:\d{12}:network-interface\/\*$/,
    'The network interfaces Lambda creates for a function in a VPC (data checks), with the function\'s role; EC2 chooses their ids. Creating one is bound to the restore-test subnets and the function\'s security group (resources of CreateNetworkInterface of their own), deleting one or changing its addresses to the restore-test VPC (ec2:Vpc).'],
  [/^Resource::arn:[\w-]+:secretsmanager:[\w-]+:\d{12}:secret:rds!\*$/,
    'Source data checks log in to the databases they measure with the master user\'s secret RDS manages for it; RDS names those secrets rds!<id> when it creates them, so only the prefix is known at deploy time. Rendered only with source data checks, and for GetSecretValue only.'],
  [/^Resource::arn:[\w-]+:ec2:[\w-]+::snapshot\/\*$/,
    'EBS snapshot ARNs carry no account and their ids are chosen by EC2; every write on them is bound by a snapferry:managed request or resource tag condition, or by ec2:CreateAction.'],
];

/**
 * The actions a statement may grant on "*": those with no resource type in the Service
 * Authorization Reference, which IAM authorizes only on "*" (scope 'account' in permissions.json).
 * "*" is acknowledged only when every statement granting on it has nothing but these actions.
 */
const NO_RESOURCE_TYPE: Record<string, string> = {
  'rds:DescribeAccountAttributes': 'rds:DescribeAccountAttributes (read-only: the account\'s RDS quotas and their usage) has no resource type in the Service Authorization Reference; IAM authorizes it only on "*", and the statement grants nothing else.',
  ...Object.fromEntries(['ec2:DescribeVolumes', 'ec2:DescribeInstances', 'ec2:DescribeSnapshots', 'ec2:DescribeLockedSnapshots'].map((a) => [a,
    `${a} (read-only list) has no resource type in the Service Authorization Reference (EC2's Describe* calls support no resource-level permissions); IAM authorizes it only on "*", and the statement grants nothing else.`])),
  ...Object.fromEntries(LAMBDA_VPC_DESCRIBE.map((a) => [a,
    `${a} (read-only) has no resource type in the Service Authorization Reference; Lambda calls it with the function's role to attach the function to the restore-test VPC (data checks), and the statement grants nothing else.`])),
};

/** Acknowledges the expected wildcards of the statements attached to `scope`'s policy. */
export function acknowledgeWildcards(scope: IConstruct, statements: iam.PolicyStatement[]): void {
  const stack = Stack.of(scope);
  const findings = new Set<string>();
  // Reasons for "Resource::*", one per no-resource-type action; undefined once a statement grants anything else on it.
  let anyResource: Set<string> | undefined = new Set();
  for (const json of statements.map((s) => stack.resolve(s.toStatementJson()))) {
    const actions = [json.Action ?? []].flat() as string[];
    for (const action of actions) if (action.includes('*')) findings.add(`Action::${action}`);
    for (const resource of [json.Resource ?? []].flat()) {
      if (resource === '*') {
        findings.add('Resource::*');
        if (anyResource && actions.every((a) => a in NO_RESOURCE_TYPE)) actions.forEach((a) => anyResource!.add(NO_RESOURCE_TYPE[a]));
        else anyResource = undefined;
      } else if (typeof resource === 'string' && resource.includes('*')) findings.add(`Resource::${resource}`);
    }
  }
  for (const finding of findings) {
    const reason = finding === 'Resource::*'
      ? (anyResource ? [...anyResource].join(' ') : undefined)
      : WILDCARD_REASONS.find(([re]) => re.test(finding))?.[1];
    if (reason) Validations.of(scope).acknowledge({ id: `AwsSolutions-IAM5[${finding}]`, reason });
  }
}
