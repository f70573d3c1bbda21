// The backup (target) account: receive "Snapshot Shared" events from the allowlisted
// source accounts, copy each shared snapshot onto the target key (and on to the extra
// regions), and test-restore copies in an isolated network.
import { Fn, RemovalPolicy, Stack, StackProps } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as rds from 'aws-cdk-lib/aws-rds';
import { Construct } from 'constructs';
import { Config } from './config';
import { Arns, grantForAwsResource, KEY_GRANTS, KEY_USE, MANAGED_TAG, PREFIX, requestTag, resourceTag, RESTORE_TEST_TAG } from './iam';
import { Operations } from './operations';
import { Routing } from './routing';
import { Step } from './step';
import { stepsFor, StepSettings } from './steps';
import { TARGET_KEY_ALIAS, targetKey } from './target-key';

export interface TargetStackProps extends StackProps {
  readonly config: Config;
  readonly routing: Routing;
  readonly assetsDir: string;
}

export const RESTORE_SUBNET_GROUP = 'snapferry-restore-test';

export class TargetStack extends Stack {
  readonly pipelineBus: events.EventBus;
  readonly targetKey: kms.Key;
  readonly steps: Step[];

  constructor(scope: Construct, id: string, props: TargetStackProps) {
    super(scope, id, props);
    const { config, routing } = props;
    const { target } = config;
    const arns = new Arns(this);
    const sourceAccounts = config.sources.map((s) => s.account);

    this.pipelineBus = new events.EventBus(this, 'PipelineBus', { eventBusName: routing.pipeline_bus });
    // Only the allowlisted source accounts may put events here, and only snapferry's own
    // "Snapshot Shared" events: nothing else on this bus can start work in the backup account.
    this.pipelineBus.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'AllowlistedSourceAccounts',
      principals: sourceAccounts.map((a) => new iam.AccountPrincipal(a)),
      actions: ['events:PutEvents'],
      resources: [this.pipelineBus.eventBusArn],
      conditions: { StringEquals: { 'events:source': routing.source, 'events:detail-type': 'Snapshot Shared' } },
    }));

    this.targetKey = targetKey(this, 'TargetKey');

    // Restore tests run in their own VPC with no route anywhere: a restored copy of
    // production data is reachable by nobody.
    const flowLogs = new logs.LogGroup(this, 'RestoreTestFlowLogs', {
      retention: config.logRetentionDays as logs.RetentionDays,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const vpc = new ec2.Vpc(this, 'RestoreTestVpc', {
      ipAddresses: ec2.IpAddresses.cidr(target.restoreTest.vpcCidr),
      natGateways: 0,
      subnetConfiguration: [{ name: 'restore-test', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 28 }],
      // Nothing ever uses the default security group here; restricting it would need a
      // custom-resource Lambda in the stack.
      restrictDefaultSecurityGroup: false,
      flowLogs: { all: { destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogs) } },
    });
    const subnetGroup = new rds.SubnetGroup(this, 'RestoreTestSubnetGroup', {
      subnetGroupName: RESTORE_SUBNET_GROUP,
      description: 'snapferry restore tests (isolated, no route out)',
      vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const securityGroup = new ec2.SecurityGroup(this, 'RestoreTestSecurityGroup', {
      vpc,
      description: 'snapferry restore tests: no ingress, no egress',
      allowAllOutbound: false,
    });

    const ops = new Operations(this, 'Operations', { dashboardName: 'snapferry-target', alarmEmail: config.alarmEmail });
    const regions = [this.region, ...target.extraRegions];
    const extraKeyAliasArn = (r: string) => `arn:${this.partition}:kms:${r}:${this.account}:${TARGET_KEY_ALIAS}`;
    const keyUse = (sid: string, resources: string[], conditions?: Record<string, unknown>) => [
      new iam.PolicyStatement({ sid: `${sid}Use`, actions: KEY_USE, resources, conditions }),
      new iam.PolicyStatement({
        sid: `${sid}Grants`, actions: ['kms:CreateGrant'], resources, conditions: { ...conditions, ...grantForAwsResource },
      }),
    ];
    const describe = (actions: string[], inRegions: string[]) => new iam.PolicyStatement({
      sid: 'Describe', actions: actions.map((a) => `rds:${a}`), resources: inRegions.map((r) => arns.rdsAll(r)),
    });
    const ownSnapshots = (inRegions: string[]) =>
      inRegions.flatMap((r) => [arns.rds('snapshot', `${PREFIX}*`, r), arns.rds('cluster-snapshot', `${PREFIX}*`, r)]);

    const settings: Record<string, StepSettings> = {
      'copy-shared-snapshot': {
        environment: {
          SOURCE_ACCOUNTS: sourceAccounts.join(','),
          TARGET_KMS_KEY_ARN: this.targetKey.keyArn,
          EXTRA_REGIONS: target.extraRegions.join(','),
          EXTRA_REGION_KMS_KEYS: target.extraRegions.map((r) => `${r}=${extraKeyAliasArn(r)}`).join(','),
          IDENTIFIER_REGEX: target.copy.identifierRegex,
          DESCRIPTION_REGEX: target.copy.descriptionRegex,
          RECHECK_SECONDS: String(target.copy.recheckSeconds),
        },
        // Copies in progress are capped at 20 per destination region (RDS User Guide,
        // USER_CopySnapshot, Limitations); more concurrent batches would only collect
        // SnapshotQuotaExceeded.
        reservedConcurrency: target.copy.reservedConcurrency,
        statements: [
          describe(['DescribeDBSnapshots', 'DescribeDBClusterSnapshots'], regions),
          // Reads snapshots shared by the allowlisted sources (and, for the extra regions,
          // our own copies); writes only tagged snapferry- copies.
          new iam.PolicyStatement({
            sid: 'CopyToManagedSnapshots',
            actions: ['rds:CopyDBSnapshot', 'rds:CopyDBClusterSnapshot', 'rds:AddTagsToResource'],
            resources: [
              ...config.sources.flatMap((s) => [
                arns.rds('snapshot', '*', s.region, s.account), arns.rds('cluster-snapshot', '*', s.region, s.account)]),
              ...ownSnapshots(regions),
            ],
            conditions: requestTag(MANAGED_TAG),
          }),
          new iam.PolicyStatement({
            sid: 'TagManagedSnapshots', actions: ['rds:AddTagsToResource'], resources: ownSnapshots(regions), conditions: resourceTag(MANAGED_TAG),
          }),
          ...keyUse('TargetKey', [this.targetKey.keyArn]),
          // Extra-region keys are found by their alias: no cross-region reference needed.
          ...(target.extraRegions.length > 0
            ? keyUse('ExtraRegionKeys', target.extraRegions.map((r) => arns.kmsKeys(r, this.account)),
              { 'ForAnyValue:StringEquals': { 'kms:ResourceAliases': TARGET_KEY_ALIAS } })
            : []),
          // The sources' sharing keys, only as RDS uses them during a copy.
          new iam.PolicyStatement({
            sid: 'SourceSharingKeysUse',
            actions: KEY_USE,
            resources: sourceAccounts.map((a) => arns.kmsKeys('*', a)),
            conditions: { StringLike: { 'kms:ViaService': 'rds.*.amazonaws.com' } },
          }),
          new iam.PolicyStatement({
            sid: 'SourceSharingKeysGrants',
            actions: [...KEY_GRANTS, 'kms:RetireGrant'],
            resources: sourceAccounts.map((a) => arns.kmsKeys('*', a)),
            conditions: { StringLike: { 'kms:ViaService': 'rds.*.amazonaws.com' }, ...grantForAwsResource },
          }),
        ],
      },
      restore: {
        environment: {
          RESTORE_ENABLED: String(target.restoreTest.enabled),
          RESTORE_EVERY_NTH: String(target.restoreTest.everyNth),
          RESTORE_SUBNET_GROUP: subnetGroup.subnetGroupName,
          RESTORE_SECURITY_GROUP_IDS: securityGroup.securityGroupId,
          RESTORE_INSTANCE_CLASS: target.restoreTest.instanceClass,
          TARGET_KMS_KEY_ARN: this.targetKey.keyArn,
          RECHECK_SECONDS: String(target.restoreTest.recheckSeconds),
          RESTORE_TIMEOUT_MINUTES: String(target.restoreTest.timeoutMinutes),
        },
        statements: [
          describe(['DescribeDBInstances', 'DescribeDBClusters'], [this.region]),
          // A restore (and its tagging) is only allowed when it tags what it creates as a
          // restore test, into a snapferry- name, from one of our copies, in the isolated subnet group.
          new iam.PolicyStatement({
            sid: 'RestoreTestsOnly',
            actions: ['rds:RestoreDBInstanceFromDBSnapshot', 'rds:RestoreDBClusterFromSnapshot', 'rds:CreateDBInstance', 'rds:AddTagsToResource'],
            resources: [
              arns.rds('db', `${PREFIX}*`), arns.rds('cluster', `${PREFIX}*`), ...ownSnapshots([this.region]),
              arns.rds('subgrp', RESTORE_SUBNET_GROUP), arns.rds('og', '*'), arns.rds('pg', '*'), arns.rds('cluster-pg', '*'),
            ],
            conditions: requestTag(RESTORE_TEST_TAG),
          }),
          new iam.PolicyStatement({
            sid: 'DeleteRestoreTestsOnly',
            actions: ['rds:DeleteDBInstance', 'rds:DeleteDBCluster'],
            resources: [arns.rds('db', `${PREFIX}*`), arns.rds('cluster', `${PREFIX}*`)],
            conditions: resourceTag(RESTORE_TEST_TAG),
          }),
          new iam.PolicyStatement({
            sid: 'TagManagedSnapshots', actions: ['rds:AddTagsToResource'], resources: ownSnapshots([this.region]), conditions: resourceTag(MANAGED_TAG),
          }),
          ...keyUse('TargetKey', [this.targetKey.keyArn]),
        ],
      },
    };

    this.steps = stepsFor(this, 'target', routing, settings, {
      assetsDir: props.assetsDir,
      pipelineBus: this.pipelineBus,
      memoryMb: config.lambdaMemoryMb,
      logRetentionDays: config.logRetentionDays,
      alarmTopic: ops.topic,
    });
    ops.addSteps(this.steps);
  }

  /**
   * The first two zones of the region, resolved by CloudFormation: CDK would otherwise look
   * them up in the account (synth must work offline), and an RDS subnet group needs two.
   */
  override get availabilityZones(): string[] {
    return [0, 1].map((i) => Fn.select(i, Fn.getAzs()));
  }
}
