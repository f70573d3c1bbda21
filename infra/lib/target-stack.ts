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
import {
  Arns, forwarderRoleArn, grantForAwsResource, KEY_GRANTS, KEY_USE, MANAGED_TAG, PREFIX, requestTag, resourceTag, RESTORE_TEST_TAG, viaRds,
} from './iam';
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
    // Only each allowlisted source account's forwarding role (source-stack.ts) may put events
    // here, not any other principal of that account, and only snapferry's own "Snapshot
    // Shared" events: nothing else on this bus can start work in the backup account. The role
    // is matched with aws:PrincipalArn under the account principal rather than named as the
    // principal: this stack deploys before the source stacks create the role, and a role
    // principal must exist when the policy is saved (and stops matching if the role is recreated).
    for (const s of config.sources) {
      this.pipelineBus.addToResourcePolicy(new iam.PolicyStatement({
        sid: `SourceForwarder${s.account}`,
        principals: [new iam.AccountPrincipal(s.account)],
        actions: ['events:PutEvents'],
        resources: [this.pipelineBus.eventBusArn],
        conditions: {
          StringEquals: {
            'aws:PrincipalArn': forwarderRoleArn(this.partition, s.account, s.region),
            'events:source': routing.source,
            'events:detail-type': 'Snapshot Shared',
          },
        },
      }));
    }

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
        // SnapshotQuotaExceeded. Capped on the event source mapping, not by reserved
        // concurrency (whose throttled polls would count as receives and dead-letter messages).
        maxConcurrency: target.copy.maxConcurrency,
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
          // The sources' sharing keys, only as RDS in each source's region uses them during a
          // copy: the keys of that region only, kms:ViaService rds.<region>.amazonaws.com.
          ...sourceSharingKeys(config.sources, arns),
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

/**
 * The copy role's use of the sources' sharing keys: per source region, a use statement and a
 * grant statement on the keys of the sources in that region, each only through RDS there. The
 * actions are those the RDS User Guide gives the external account's IAM policy (iam.ts
 * KEY_USE, KEY_GRANTS) without kms:RetireGrant: a grant names who may retire it, and under
 * kms:ViaService the permission could never apply (KMS Developer Guide, conditions-kms,
 * kms:ViaService: not valid for RetireGrant; grant-delete, "Retiring and revoking grants").
 */
function sourceSharingKeys(sources: Config['sources'], arns: Arns): iam.PolicyStatement[] {
  const regions = [...new Set(sources.map((s) => s.region))];
  return regions.flatMap((region) => {
    const resources = sources.filter((s) => s.region === region).map((s) => arns.kmsKeys(region, s.account));
    // Sids are unique per policy: suffixed with the region only when there are several.
    const suffix = regions.length > 1 ? region.replace(/(^|-)([a-z0-9])/g, (_, __, c: string) => c.toUpperCase()) : '';
    return [
      new iam.PolicyStatement({ sid: `SourceSharingKeysUse${suffix}`, actions: KEY_USE, resources, conditions: viaRds(region) }),
      new iam.PolicyStatement({
        sid: `SourceSharingKeysGrants${suffix}`, actions: KEY_GRANTS, resources, conditions: { ...viaRds(region), ...grantForAwsResource },
      }),
    ];
  });
}
