// The source account: snapshot the selected databases, copy them onto the sharing key,
// share them with the backup account(s) and tell those accounts about it; expire its own
// snapshots, and clean up each share once the backup account says it is copied.
import { RemovalPolicy, Stack, StackProps, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { Config, SourceConfig, sourceDataChecksJson } from './config';
import { DATA_CHECK_PORTS } from './data-checks';
import { DeliveryDlq } from './delivery';
import { Arns, forwardedEvents, forwarderRoleName, grantForAwsResource, KEY_GRANTS, KEY_USE, viaEc2, viaRds } from './iam';
import { Operations } from './operations';
import { crossAccountRule, Routing } from './routing';
import { cdkEventPattern, Step, StepVpc } from './step';
import { EXPIRE_CONCURRENCY, expireEnvironment, RECONCILE_CONCURRENCY, stepsFor, StepSettings } from './steps';

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
    // EBS snapshots shared on this key are copied by EC2 in the backup account, which uses the
    // key through EC2 in this region: the same two statements with kms:ViaService ec2.<region>
    // (EBS User Guide, ebs-modifying-snapshot-permissions: share the KMS key of an encrypted
    // snapshot), only where this account backs up EBS.
    if (source.kinds.includes('ebs')) {
      this.sharingKey.addToResourcePolicy(new iam.PolicyStatement({
        sid: 'BackupAccountsUseKeyViaEc2',
        principals: targetPrincipals,
        actions: KEY_USE,
        resources: ['*'],
        conditions: viaEc2(this.region),
      }));
      this.sharingKey.addToResourcePolicy(new iam.PolicyStatement({
        sid: 'BackupAccountsGrantToEc2',
        principals: targetPrincipals,
        actions: KEY_GRANTS,
        resources: ['*'],
        conditions: { ...viaEc2(this.region), ...grantForAwsResource },
      }));
    }

    const ops = new Operations(this, 'Operations', { dashboardName: 'snapferry-source', alarmEmail: config.alarmEmail });
    // Every rule below, and each step's, dead-letters what EventBridge cannot deliver here.
    const delivery = new DeliveryDlq(this, 'DeliveryDlq', { routing, alarmTopic: ops.topic });

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
      const rule = new events.Rule(this, `Forward${account}`, {
        ruleName: forward.name,
        eventBus: this.pipelineBus,
        eventPattern: cdkEventPattern(forward.pattern),
      });
      // Adds events:PutEvents on that bus, and only that, to the role's policy. What the backup
      // account's bus refuses (its stack not deployed yet, its policy) goes to the delivery DLQ.
      delivery.deliverToBus(rule, targetBuses[i], forwarder);
    });

    // The way back (routing.json copied_back): the backup accounts return each "Snapshot
    // Copied" event of this account's backups here, where expire-snapshots withdraws the share
    // and deletes the intermediate copy that fed the copy. Only each backup account's
    // forwarding role (target-stack.ts) may put events here, and only snapferry's "Snapshot
    // Copied": nothing else from another account can make this account delete anything. Same
    // conditions as the backup account's bus policy (forwardedEvents, iam.ts).
    for (const account of targetAccounts) {
      this.pipelineBus.addToResourcePolicy(forwardedEvents({
        sid: `BackupForwarder${account}`,
        account,
        region: config.target.region,
        partition: this.partition,
        busArn: this.pipelineBus.eventBusArn,
        source: routing.source,
        detailType: 'Snapshot Copied',
      }));
    }

    const selection = {
      SELECT_IDENTIFIERS: source.selection.identifiers.join(','),
      SELECT_REGEX: source.selection.regex,
      SELECT_TAG: source.selection.tag,
      SELECT_INSTANCE_TAG: source.selection.instanceTag,
    };
    // What create-snapshot backs up: reconcile-snapshots watches exactly that.
    const backedUp = { KINDS: source.kinds.join(','), ...selection };
    const settings: Record<string, StepSettings> = {
      'create-snapshot': {
        // A resource it fails at is reported (ResourceFailed) and passed over.
        sweepAlarm: true,
        environment: {
          ...backedUp,
          MIN_INTERVAL_MINUTES: String(source.minIntervalMinutes),
          MANUAL_SNAPSHOT_QUOTA: String(source.manualSnapshotQuota),
        },
        // Full quotas refuse new snapshots.
        quotaAlarm: true,
      },
      'share-snapshot': {
        environment: {
          TARGET_ACCOUNTS: targetAccounts.join(','),
          SHARING_KMS_KEY_ARN: this.sharingKey.keyArn,
          ...selection,
          RECHECK_SECONDS: String(source.recheckSeconds),
          ...(source.dataChecks === undefined ? {} : {
            SOURCE_DATA_CHECKS: sourceDataChecksJson(source.dataChecks),
            DATA_CHECK_TIMEOUT_SECONDS: String(source.dataChecks.timeoutSeconds),
          }),
        },
        // Its copies onto the sharing key count against the same quota.
        quotaAlarm: true,
        vpc: source.dataChecks === undefined ? undefined : this.sourceDataCheckNetwork(source.dataChecks),
      },
      'expire-snapshots': {
        // A resource it fails at is reported (ResourceFailed) and passed over.
        sweepAlarm: true,
        environment: {
          KINDS: source.kinds.join(','),
          TARGET_ACCOUNTS: targetAccounts.join(','),
          ...expireEnvironment(source),
        },
        // See EXPIRE_CONCURRENCY.
        maxConcurrency: EXPIRE_CONCURRENCY,
        // It checks the manual snapshot quotas every run (QUOTA_WARNING_PERCENT).
        quotaWarningAlarm: true,
      },
      'reconcile-snapshots': {
        // A resource it fails at is reported (ResourceFailed) and passed over.
        sweepAlarm: true,
        environment: {
          ...backedUp,
          SCHEDULE_MINUTES: String(source.reconcile.scheduleMinutes),
          GRACE_MINUTES: String(source.reconcile.graceMinutes),
        },
        // A snapshot created but never shared is restarted by a re-check in share-snapshot's queue.
        queueUrls: { SHARE_QUEUE_URL: 'share-snapshot' },
        // See RECONCILE_CONCURRENCY.
        maxConcurrency: RECONCILE_CONCURRENCY,
        // A selected resource with no recent snapshot (the dead man's switch of this account).
        backupOverdueAlarm: true,
      },
    };

    this.steps = stepsFor(this, 'source', routing, settings, {
      assetsDir: props.assetsDir,
      pipelineBus: this.pipelineBus,
      deliveryDlq: delivery,
      memoryMb: config.lambdaMemoryMb,
      logRetentionDays: config.logRetentionDays,
      alarmTopic: ops.topic,
    }, {
      // Everything a permissions.json scope names, as this account has it.
      kinds: source.kinds,
      extraRegions: [],
      sharingKeyArn: this.sharingKey.keyArn,
      sourceDatabaseSecrets: source.dataChecks?.databases.flatMap((d) => (d.secret === undefined ? [] : [d.secret])),
    });
    ops.addSteps(this.steps, delivery);
  }

  /**
   * share-snapshot in the databases' VPC (source dataChecks), in the subnets the config names,
   * with a group of its own: out to the databases' group on the database ports, and to 443 for
   * the AWS APIs (through the VPC's NAT gateway or its endpoints: this VPC is the account's, not
   * snapferry's); the databases' group admits the ports from the function's group only.
   */
  private sourceDataCheckNetwork(c: NonNullable<SourceConfig['dataChecks']>): StepVpc {
    const vpc = ec2.Vpc.fromVpcAttributes(this, 'SourceDataCheckVpc', {
      vpcId: c.vpcId,
      availabilityZones: c.subnetIds.map((_, i) => `${this.region}-subnet-${i}`),
      privateSubnetIds: c.subnetIds,
    });
    for (const subnet of vpc.privateSubnets) {
      Validations.of(subnet).acknowledge({
        id: 'Annotation::@aws-cdk/aws-ec2:noSubnetRouteTableId',
        reason: 'The source VPC is the account\'s: snapferry places the function in its subnets and never reads or changes their routes.',
      });
    }
    const securityGroup = new ec2.SecurityGroup(this, 'SourceDataCheckSecurityGroup', {
      vpc,
      description: 'snapferry share-snapshot (source data checks): to the source databases and HTTPS only',
      allowAllOutbound: false,
    });
    const databases = ec2.SecurityGroup.fromSecurityGroupId(this, 'SourceDatabases', c.databaseSecurityGroupId, { mutable: true });
    for (const port of DATA_CHECK_PORTS) {
      securityGroup.connections.allowTo(databases, ec2.Port.tcp(port), `share-snapshot to the source databases, ${port}`);
    }
    securityGroup.addEgressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(443), 'share-snapshot to the AWS APIs, HTTPS');
    return { vpc, subnets: { subnets: vpc.privateSubnets }, securityGroup };
  }
}
