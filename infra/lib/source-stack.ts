// The source account: snapshot the selected databases, copy them onto the sharing key,
// share them with the backup account(s) and tell those accounts about it.
import { RemovalPolicy, Stack, StackProps } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { Config, SourceConfig } from './config';
import {
  Arns, forwarderRoleName, grantForAwsResource, KEY_GRANTS, KEY_USE, MANAGED_TAG, PREFIX, requestTag, resourceTag, viaRds,
} from './iam';
import { Operations } from './operations';
import { crossAccountRule, Routing } from './routing';
import { cdkEventPattern, Step } from './step';
import { stepsFor, StepSettings } from './steps';

export interface SourceStackProps extends StackProps {
  readonly config: Config;
  readonly source: SourceConfig;
  readonly routing: Routing;
  readonly assetsDir: string;
}

export const SHARING_KEY_ALIAS = 'alias/snapferry-sharing';

export class SourceStack extends Stack {
  readonly sharingKey: kms.Key;
  readonly pipelineBus: events.EventBus;
  readonly steps: Step[];

  constructor(scope: Construct, id: string, props: SourceStackProps) {
    super(scope, id, props);
    const { config, source, routing } = props;
    const arns = new Arns(this);
    // One backup account today; the key policy, the forwarding rules and TARGET_ACCOUNTS
    // all take a list so a second one is a config change, not a code change.
    const targetAccounts = [config.target.account];

    this.pipelineBus = new events.EventBus(this, 'PipelineBus', { eventBusName: routing.pipeline_bus });

    // Snapshots on aws/rds cannot be shared: share-snapshot copies them onto this key first.
    // The default policy gives the account root kms:* so the account's administrators keep
    // control of the key (KMS Developer Guide, key-policy-default: "Allows access to the AWS
    // account and enables IAM policies").
    this.sharingKey = new kms.Key(this, 'SharingKey', {
      alias: SHARING_KEY_ALIAS,
      description: 'snapferry: encrypts the snapshot copies shared with the backup account',
      enableKeyRotation: true,
      // Shared snapshots (and the backup account's in-flight copies) need it after a teardown.
      removalPolicy: RemovalPolicy.RETAIN,
    });
    // The backup accounts may use the key only through RDS in this region (kms:ViaService),
    // that is only for RDS copying the snapshots shared with them; never directly, e.g. a
    // kms:Decrypt of their own. The actions and the grant condition are the RDS User Guide's
    // (share-encrypted-snapshot, "Allowing access to an AWS KMS key"); see iam.ts.
    const targetPrincipals = targetAccounts.map((a) => new iam.AccountPrincipal(a));
    this.sharingKey.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'BackupAccountsUseKey',
      principals: targetPrincipals,
      actions: KEY_USE,
      resources: ['*'], // in a key policy, "*" means this key
      conditions: viaRds(this.region),
    }));
    this.sharingKey.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'BackupAccountsGrantToRds',
      principals: targetPrincipals,
      actions: KEY_GRANTS,
      resources: ['*'],
      conditions: { ...viaRds(this.region), ...grantForAwsResource },
    }));

    // No RDS event says "shared": share-snapshot publishes one on this bus, and these rules
    // carry it to the backup accounts' pipeline buses. They put events with this role, whose
    // fixed name the backup account's bus policy admits (aws:PrincipalArn) and nothing else
    // of this account. It may only put events on those buses (EventBridge User Guide,
    // eb-event-bus-perms: use an IAM role when a rule's target is an event bus).
    const targetBuses = targetAccounts.map((account) =>
      events.EventBus.fromEventBusArn(this, `TargetBus${account}`, arns.eventBus(config.target.region, account, routing.pipeline_bus)));
    const forwarder = new iam.Role(this, 'ForwarderRole', {
      roleName: forwarderRoleName(this.region),
      assumedBy: new iam.ServicePrincipal('events.amazonaws.com'),
      description: 'snapferry: forwards "Snapshot Shared" events to the backup accounts\' pipeline buses',
    });
    targetAccounts.forEach((account, i) => {
      const forward = crossAccountRule(routing, account);
      new events.Rule(this, `Forward${account}`, {
        ruleName: forward.name,
        eventBus: this.pipelineBus,
        eventPattern: cdkEventPattern(forward.pattern),
        // Adds events:PutEvents on this bus, and only that, to the role's policy.
        targets: [new targets.EventBus(targetBuses[i], { role: forwarder })],
      });
    });

    const ops = new Operations(this, 'Operations', { dashboardName: 'snapferry-source', alarmEmail: config.alarmEmail });
    const selection = {
      SELECT_IDENTIFIERS: source.selection.identifiers.join(','),
      SELECT_REGEX: source.selection.regex,
      SELECT_TAG: source.selection.tag,
    };
    const describe = (actions: string[]) => new iam.PolicyStatement({
      sid: 'Describe', actions: actions.map((a) => `rds:${a}`), resources: [arns.rdsAll()],
    });
    const ownSnapshots = [arns.rds('snapshot', `${PREFIX}*`), arns.rds('cluster-snapshot', `${PREFIX}*`)];

    const settings: Record<string, StepSettings> = {
      'create-snapshot': {
        environment: {
          KINDS: source.kinds.join(','),
          ...selection,
          MIN_INTERVAL_MINUTES: String(source.minIntervalMinutes),
          MANUAL_SNAPSHOT_QUOTA: String(source.manualSnapshotQuota),
        },
        statements: [
          describe(['DescribeDBInstances', 'DescribeDBClusters', 'DescribeDBSnapshots', 'DescribeDBClusterSnapshots']),
          // Any database may be snapshotted, but only into a snapferry- snapshot tagged as ours.
          new iam.PolicyStatement({
            sid: 'CreateManagedSnapshots',
            actions: ['rds:CreateDBSnapshot', 'rds:CreateDBClusterSnapshot', 'rds:AddTagsToResource'],
            resources: [arns.rds('db', '*'), arns.rds('cluster', '*'), ...ownSnapshots],
            conditions: requestTag(MANAGED_TAG),
          }),
        ],
      },
      'share-snapshot': {
        environment: {
          TARGET_ACCOUNTS: targetAccounts.join(','),
          SHARING_KMS_KEY_ARN: this.sharingKey.keyArn,
          ...selection,
          RECHECK_SECONDS: String(source.recheckSeconds),
        },
        statements: [
          describe(['DescribeDBSnapshots', 'DescribeDBClusterSnapshots', 'DescribeDBSnapshotAttributes', 'DescribeDBClusterSnapshotAttributes']),
          // Reads any snapshot (automated ones are rds:<name>), writes only tagged snapferry- copies.
          new iam.PolicyStatement({
            sid: 'CopyToManagedSnapshots',
            actions: ['rds:CopyDBSnapshot', 'rds:CopyDBClusterSnapshot', 'rds:AddTagsToResource'],
            resources: [arns.rds('snapshot', '*'), arns.rds('cluster-snapshot', '*')],
            conditions: requestTag(MANAGED_TAG),
          }),
          new iam.PolicyStatement({
            sid: 'TagManagedSnapshots',
            actions: ['rds:AddTagsToResource'],
            resources: ownSnapshots,
            conditions: resourceTag(MANAGED_TAG),
          }),
          new iam.PolicyStatement({
            sid: 'ShareManagedSnapshots',
            actions: ['rds:ModifyDBSnapshotAttribute', 'rds:ModifyDBClusterSnapshotAttribute'],
            resources: ownSnapshots,
            conditions: resourceTag(MANAGED_TAG),
          }),
          new iam.PolicyStatement({ sid: 'SharingKeyUse', actions: KEY_USE, resources: [this.sharingKey.keyArn] }),
          new iam.PolicyStatement({
            sid: 'SharingKeyGrants', actions: ['kms:CreateGrant'], resources: [this.sharingKey.keyArn], conditions: grantForAwsResource,
          }),
          // Sources on aws/rds (or another key of this account) must be readable to copy them.
          new iam.PolicyStatement({
            sid: 'ReadSourceKeysViaRds',
            actions: ['kms:Decrypt', 'kms:DescribeKey'],
            resources: [arns.kmsKeys(this.region, this.account)],
            conditions: { StringEquals: { 'kms:ViaService': `rds.${this.region}.amazonaws.com` } },
          }),
          new iam.PolicyStatement({
            sid: 'GrantSourceKeysToRds',
            actions: ['kms:CreateGrant'],
            resources: [arns.kmsKeys(this.region, this.account)],
            conditions: { StringEquals: { 'kms:ViaService': `rds.${this.region}.amazonaws.com` }, ...grantForAwsResource },
          }),
        ],
      },
    };

    this.steps = stepsFor(this, 'source', routing, settings, {
      assetsDir: props.assetsDir,
      pipelineBus: this.pipelineBus,
      memoryMb: config.lambdaMemoryMb,
      logRetentionDays: config.logRetentionDays,
      alarmTopic: ops.topic,
    });
    ops.addSteps(this.steps);
  }
}
