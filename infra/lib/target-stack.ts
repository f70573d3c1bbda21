// The backup (target) account: receive "Snapshot Shared" events from the allowlisted
// source accounts, copy each shared snapshot onto the target key (and on to the extra
// regions), test-restore copies in an isolated network, return each "Snapshot Copied" to
// its source, and expire the copies by the retention rules. The copy ledger (routing.json
// copy_ledger) keeps the copies in progress and waiting for a slot.
import { Fn, RemovalPolicy, Stack, StackProps } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as rds from 'aws-cdk-lib/aws-rds';
import { Construct } from 'constructs';
import { budgetEnvironment, Config, ConfigError, copySlotsVariable, dataChecksJson, optionGroupsVariable } from './config';
import { DATA_CHECK_STEP, DataCheckNetwork, endpointsFor } from './data-checks';
import { DeliveryDlq } from './delivery';
import { Arns, forwardedEvents, forwarderRoleName } from './iam';
import { Operations } from './operations';
import { COPY_LEDGER_SCOPE, loadPermissions, PERMISSIONS_FILE } from './permissions';
import { copiedBackRule, Routing } from './routing';
import { cdkEventPattern, Step } from './step';
import { EXPIRE_CONCURRENCY, expireEnvironment, RECONCILE_CONCURRENCY, stepsFor, StepSettings } from './steps';
import { TARGET_KEY_ALIAS, targetKey } from './target-key';

export interface TargetStackProps extends StackProps {
  readonly config: Config;
  readonly routing: Routing;
  readonly assetsDir: string;
}

export const RESTORE_SUBNET_GROUP = 'snapferry-restore-test';

export class TargetStack extends Stack {
  readonly pipelineBus: events.EventBus;
  /** Puts the sources' "Snapshot Copied" events on their pipeline buses (routing.json copied_back). */
  readonly forwarder: iam.Role;
  readonly targetKey: kms.Key;
  /** The copy ledger (routing.json copy_ledger), in the home region. */
  readonly copyLedger: dynamodb.Table;
  readonly steps: Step[];

  constructor(scope: Construct, id: string, props: TargetStackProps) {
    super(scope, id, props);
    const { config, routing } = props;
    const { target } = config;
    const sourceAccounts = config.sources.map((s) => s.account);
    const permissions = loadPermissions(PERMISSIONS_FILE, routing);

    this.pipelineBus = new events.EventBus(this, 'PipelineBus', { eventBusName: routing.pipeline_bus });
    // Only each allowlisted source account's forwarding role (source-stack.ts) may put events
    // here, not any other principal of that account, and only snapferry's own "Snapshot
    // Shared" events: nothing else on this bus can start work in the backup account. The
    // conditions are explained at forwardedEvents (iam.ts).
    for (const s of config.sources) {
      this.pipelineBus.addToResourcePolicy(forwardedEvents({
        sid: `SourceForwarder${s.account}`,
        account: s.account,
        region: s.region,
        partition: this.partition,
        busArn: this.pipelineBus.eventBusArn,
        source: routing.source,
        detailType: 'Snapshot Shared',
      }));
    }

    const ops = new Operations(this, 'Operations', { dashboardName: 'snapferry-target', alarmEmail: config.alarmEmail });
    // Every rule below, and each step's, dead-letters what EventBridge cannot deliver here.
    const delivery = new DeliveryDlq(this, 'DeliveryDlq', { routing, alarmTopic: ops.topic });

    // The way back (routing.json copied_back): each source's "Snapshot Copied" events, once
    // its backup is copied here, go to that source's pipeline bus, where expire-snapshots
    // withdraws the share and deletes the intermediate copy that fed it. One rule per
    // allowlisted source, filtered on the event's origin account, so a source hears only of
    // its own backups. The mirror of the source stack's forwarding: this role, whose fixed name
    // each source's bus policy admits (aws:PrincipalArn) and nothing else of this account, may
    // only put events on those buses.
    const arns = new Arns(this);
    this.forwarder = new iam.Role(this, 'ForwarderRole', {
      roleName: forwarderRoleName(this.region),
      assumedBy: new iam.ServicePrincipal('events.amazonaws.com'),
      description: 'snapferry: returns "Snapshot Copied" events to the source accounts\' pipeline buses',
    });
    for (const s of config.sources) {
      const back = copiedBackRule(routing, s.account);
      const rule = new events.Rule(this, `CopiedBack${s.account}`, {
        ruleName: back.name,
        eventBus: this.pipelineBus,
        eventPattern: cdkEventPattern(back.pattern),
      });
      // Adds events:PutEvents on that bus, and only that, to the role's policy. What the source's
      // bus refuses (its stack not deployed, its policy) goes to the delivery DLQ.
      delivery.deliverToBus(rule,
        events.EventBus.fromEventBusArn(this, `SourceBus${s.account}`, arns.eventBus(s.region, s.account, routing.pipeline_bus)),
        this.forwarder);
    }

    this.targetKey = targetKey(this, 'TargetKey', { breakGlassRoleArn: target.breakGlassRoleArn });

    // Restore tests run in their own VPC with no route anywhere: a restored copy of
    // production data is reachable by nobody (with data checks: by the restore function alone).
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
    // With data checks it admits the restore function on the database ports (DataCheckNetwork).
    // The description stays: changing it would replace the group, and a restore test running
    // with the old one would keep CloudFormation from deleting it.
    const securityGroup = new ec2.SecurityGroup(this, 'RestoreTestSecurityGroup', {
      vpc,
      description: 'snapferry restore tests: no ingress, no egress',
      allowAllOutbound: false,
    });

    // Data checks (off unless configured): the restore function itself connects to each restored
    // test database, so it runs in this VPC and reaches AWS through interface endpoints here
    // (data-checks.ts); without them it stays outside any VPC and none of this exists.
    const { dataChecks } = target.restoreTest;
    let dataCheckNetwork: DataCheckNetwork | undefined;
    if (dataChecks !== undefined) {
      const restoreFn = routing.functions.find((f) => f.name === DATA_CHECK_STEP);
      if (restoreFn !== undefined && dataChecks.timeoutSeconds >= restoreFn.timeout_seconds) {
        throw new ConfigError(`target.restoreTest.dataChecks.timeoutSeconds: ${dataChecks.timeoutSeconds} is not less than the restore `
          + `function's timeout of ${restoreFn.timeout_seconds} seconds (shared/routing.json): one slow check would time the whole invocation out`);
      }
      dataCheckNetwork = new DataCheckNetwork(this, 'DataChecks', {
        vpc,
        databases: securityGroup,
        endpoints: endpointsFor(permissions, target.kinds, target.extraRegions),
        endpointZones: dataChecks.endpointZones,
      });
    }

    // The copy ledger: the copies in progress and those waiting for a copy slot, per region and
    // kind, and each source's counts. copy-shared-snapshot takes a slot and its source's budget in
    // one conditional TransactWriteItems; expire-copies counts a deleted copy out; reconcile-copies
    // corrects it from what AWS reports. One table, here in the home region, for every region of
    // the pipeline (the steps run here). Its name and key schema are the steps' (routing.json).
    this.copyLedger = new dynamodb.Table(this, 'CopyLedger', {
      tableName: routing.copy_ledger,
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
      // A few writes per copy, in bursts when sources share: nothing to provision for.
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      // The AWS managed key (aws/dynamodb), not the backup key: the items hold snapshot names,
      // source account ids and counts, no backup data. Its key policy admits DynamoDB's own use on
      // behalf of this account's principals, so the steps' roles need no KMS statement for it.
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      // An index reconcile-copies rebuilds from AWS, never the truth; but deleting the stack must
      // not silently drop the slots taken and the copies waiting mid-backlog. Retained, it must be
      // deleted by hand before this stack is deployed again in the account: its name is fixed.
      removalPolicy: RemovalPolicy.RETAIN,
    });

    const extraKeyAliasArn = (r: string) => `arn:${this.partition}:kms:${r}:${this.account}:${TARGET_KEY_ALIAS}`;

    // As the restore step gets them: whether, and how often, copies are restore-tested.
    const restoreTests = {
      RESTORE_ENABLED: String(target.restoreTest.enabled),
      RESTORE_EVERY_NTH: String(target.restoreTest.everyNth),
    };
    const settings: Record<string, StepSettings> = {
      'copy-shared-snapshot': {
        environment: {
          SOURCE_ACCOUNTS: sourceAccounts.join(','),
          TARGET_KMS_KEY_ARN: this.targetKey.keyArn,
          EXTRA_REGIONS: target.extraRegions.join(','),
          EXTRA_REGION_KMS_KEYS: target.extraRegions.map((r) => `${r}=${extraKeyAliasArn(r)}`).join(','),
          // The option group in each extra region for the non-default ones DB snapshots use;
          // unset unless configured (a snapshot of an unmapped one is then rejected there).
          OPTION_GROUPS: optionGroupsVariable(target.copy.optionGroups),
          IDENTIFIER_REGEX: target.copy.identifierRegex,
          DESCRIPTION_REGEX: target.copy.descriptionRegex,
          COPY_SLOTS: copySlotsVariable(target.copy.copySlots),
          // What one source may take of this account; unset unless configured (the step then
          // divides AWS's quotas among SOURCE_ACCOUNTS).
          ...budgetEnvironment(target.copy.budgets),
          RECHECK_SECONDS: String(target.copy.recheckSeconds),
        },
        // Copies in progress are capped at 20 per destination region (RDS User Guide,
        // USER_CopySnapshot, Limitations); more concurrent batches would only collect
        // SnapshotQuotaExceeded. Capped on the event source mapping, not by reserved
        // concurrency (whose throttled polls would count as receives and dead-letter messages).
        maxConcurrency: target.copy.maxConcurrency,
        // Copies count against the backup account's manual snapshot quota, per region.
        quotaAlarm: true,
        // A share rejected because its source is past its budget (SourceBudgetExceeded).
        budgetAlarm: true,
      },
      restore: {
        environment: {
          ...restoreTests,
          RESTORE_SUBNET_GROUP: subnetGroup.subnetGroupName,
          RESTORE_SECURITY_GROUP_IDS: securityGroup.securityGroupId,
          RESTORE_INSTANCE_CLASS: target.restoreTest.instanceClass,
          TARGET_KMS_KEY_ARN: this.targetKey.keyArn,
          RECHECK_SECONDS: String(target.restoreTest.recheckSeconds),
          RESTORE_TIMEOUT_MINUTES: String(target.restoreTest.timeoutMinutes),
          // EBS: where test volumes are created, and EBS Snapshot Lock of verified copies (config.ts validates them).
          RESTORE_AVAILABILITY_ZONE: target.restoreTest.availabilityZone,
          LOCK_MODE: target.restoreTest.lockMode,
          LOCK_DAYS: target.restoreTest.lockDays === undefined ? undefined : String(target.restoreTest.lockDays),
          LOCK_COMPLIANCE_OPT_IN: target.restoreTest.lockComplianceOptIn === undefined ? undefined : String(target.restoreTest.lockComplianceOptIn),
          // Not even named without data checks (the step then runs none). DATA_CHECK_CA_BUNDLE is
          // never set: the binary carries the RDS CAs.
          ...(dataChecks === undefined ? {} : {
            DATA_CHECKS: dataChecksJson(dataChecks),
            DATA_CHECK_TIMEOUT_SECONDS: String(dataChecks.timeoutSeconds),
          }),
        },
        vpc: dataCheckNetwork === undefined ? undefined : {
          vpc, subnets: dataCheckNetwork.subnets, securityGroup: dataCheckNetwork.functionSecurityGroup,
        },
        // A verified copy whose data fell against the previous good copy (RestoreSuspicious):
        // it restored fine, so nothing fails.
        suspiciousAlarm: true,
      },
      'expire-copies': {
        // A resource it fails at is reported (ResourceFailed) and passed over.
        sweepAlarm: true,
        environment: {
          KINDS: target.kinds.join(','),
          EXTRA_REGIONS: target.extraRegions.join(','),
          ...expireEnvironment(target),
        },
        // See EXPIRE_CONCURRENCY.
        maxConcurrency: EXPIRE_CONCURRENCY,
        // It checks the manual snapshot quotas every run (QUOTA_WARNING_PERCENT), in every region of the pipeline.
        quotaWarningAlarm: true,
      },
      'reconcile-copies': {
        // A resource it fails at is reported (ResourceFailed) and passed over.
        sweepAlarm: true,
        environment: {
          EXTRA_REGIONS: target.extraRegions.join(','),
          GRACE_MINUTES: String(target.reconcile.graceMinutes),
          RPO_MINUTES: String(target.reconcile.rpoMinutes),
          // expire-copies' rules: a copy an extra region's rules would not keep is not copied back there.
          RETENTION: expireEnvironment(target).RETENTION,
          KINDS: target.kinds.join(','),
          ...restoreTests,
        },
        // A stalled copy or extra-region copy is restarted in copy-shared-snapshot's queue, a copy
        // never restore-tested (every copy tested) in restore's.
        queueUrls: { COPY_QUEUE_URL: 'copy-shared-snapshot', RESTORE_QUEUE_URL: 'restore' },
        // See RECONCILE_CONCURRENCY.
        maxConcurrency: RECONCILE_CONCURRENCY,
        // A source resource whose newest verified copy is older than the RPO...
        backupOverdueAlarm: true,
        // ...and the oldest of them all against the RPO, or no run at all (snapferry-recovery-point-over-rpo).
        rpoMinutes: target.reconcile.rpoMinutes,
      },
    };

    this.steps = stepsFor(this, 'target', routing, settings, {
      assetsDir: props.assetsDir,
      pipelineBus: this.pipelineBus,
      deliveryDlq: delivery,
      memoryMb: config.lambdaMemoryMb,
      logRetentionDays: config.logRetentionDays,
      alarmTopic: ops.topic,
    }, {
      // Everything a permissions.json scope names, as this account has it.
      kinds: target.kinds,
      extraRegions: target.extraRegions,
      sources: config.sources,
      targetKeyArn: this.targetKey.keyArn,
      extraRegionKeyAlias: TARGET_KEY_ALIAS,
      restoreSubnetGroup: RESTORE_SUBNET_GROUP,
      copyLedger: routing.copy_ledger,
    }, permissions);
    // The statements name the table by its ARN, not by a reference: a step using it would
    // otherwise start (its event source mapping refers to its function) before the table exists.
    const onLedger = Object.entries(permissions.steps).filter(([, sts]) => sts.some((st) => st.resources.includes(COPY_LEDGER_SCOPE))).map(([step]) => step);
    for (const step of this.steps.filter((st) => onLedger.includes(st.stepName))) step.function.node.addDependency(this.copyLedger);
    ops.addSteps(this.steps, delivery);
  }

  /**
   * The first two zones of the region, resolved by CloudFormation: CDK would otherwise look
   * them up in the account (synth must work offline), and an RDS subnet group needs two.
   */
  override get availabilityZones(): string[] {
    return [0, 1].map((i) => Fn.select(i, Fn.getAzs()));
  }
}
