// The network of the restore step's data checks (target.restoreTest.dataChecks): the restore
// function connects over TLS to each restored test database, so it runs in the restore-test
// VPC, which has no route out (no internet gateway, no NAT). Everything else it calls, it
// reaches through interface VPC endpoints in that VPC, one per AWS service the step calls.
// Created only when data checks are configured: without them the function stays outside any
// VPC and nothing here exists.
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Construct } from 'constructs';
import { Kind } from './config';
import { forKinds, Permissions } from './permissions';

/** The database ports the function may reach on the restored databases: PostgreSQL, MySQL (and MariaDB, Aurora MySQL). */
export const DATA_CHECK_PORTS = [5432, 3306] as const;

/** The step whose function gets the network. */
export const DATA_CHECK_STEP = 'restore';

/**
 * Per service prefix of the actions permissions.json gives the restore step: the interface
 * endpoint its calls need, or null with the reason it needs none. A prefix that is not here
 * fails synth (endpointsFor): a new service the step calls must be decided on, not forgotten
 * (without an endpoint its calls would time out in the isolated VPC).
 */
export const ENDPOINTS: Record<string, { service: ec2.InterfaceVpcEndpointAwsService; why: string } | { service: null; why: string }> = {
  rds: { service: ec2.InterfaceVpcEndpointAwsService.RDS, why: 'restores, describes, tags and deletes the test databases and reads the copies' },
  ec2: { service: ec2.InterfaceVpcEndpointAwsService.EC2, why: 'EBS (target.kinds with ebs): creates, describes and deletes test volumes, tags and locks copies' },
  sqs: { service: ec2.InterfaceVpcEndpointAwsService.SQS, why: 'delayed re-checks go to the step\'s own queue, permanent failures to its DLQ' },
  events: { service: ec2.InterfaceVpcEndpointAwsService.EVENTBRIDGE, why: '"Restore Verified" / "Restore Failed" are put on the pipeline bus' },
  // The restore step never calls KMS itself: its KMS statements let RDS and EBS use the backup
  // key on its behalf (RDS and EC2 call KMS from their own network, with the step's permissions
  // passed along), and the key check of a restored copy compares ARNs in the code.
  kms: { service: null, why: 'only RDS and EBS use the backup key, on the step\'s behalf, from their own network' },
};

/*
 * Services the function reaches without an endpoint here, on purpose:
 * - CloudWatch Logs (and the embedded-metric-format metrics, which are log lines): a function
 *   writes to stdout; the Lambda service, not the function's network interface, ships the lines
 *   to CloudWatch Logs, so a function in a VPC with no route out still logs (the role's
 *   logs:CreateLogStream/PutLogEvents are used by Lambda's log delivery).
 * - SQS polling: the event source mapping polls the queue from the Lambda service, not from
 *   the VPC (permissions.json event_source).
 * - STS: never called. The stacks set ACCOUNT_ID (step.ts), so the function's init does not
 *   ask GetCallerIdentity, and the role's credentials come from the Lambda runtime.
 */

/** The interface endpoints the restore step needs: one per service its permissions.json statements (for `kinds`) call, sorted. */
export function endpointsFor(permissions: Permissions, kinds: readonly Kind[], extraRegions: string[]): { prefix: string; service: ec2.InterfaceVpcEndpointAwsService; why: string }[] {
  const statements = [...permissions.every_step, ...permissions.steps[DATA_CHECK_STEP]].filter((st) => forKinds(st, kinds));
  // An endpoint serves its own region only: a call to another region would have no way out.
  const far = statements.find((st) => st.regions === 'pipeline' && extraRegions.length > 0);
  if (far !== undefined) {
    throw new Error(`permissions.json ${DATA_CHECK_STEP}.${far.sid} acts in the extra regions (regions "pipeline"), which the restore function `
      + 'cannot reach from the restore-test VPC when data checks put it there');
  }
  const prefixes = [...new Set(statements.flatMap((st) => st.actions.map((a) => a.split(':')[0])))].sort();
  return prefixes.flatMap((prefix) => {
    const e = ENDPOINTS[prefix];
    if (e === undefined) {
      const sid = statements.find((st) => st.actions.some((a) => a.startsWith(`${prefix}:`)))!.sid;
      throw new Error(`permissions.json ${DATA_CHECK_STEP}.${sid} calls ${prefix}, for which lib/data-checks.ts has no interface endpoint: `
        + 'with data checks the restore function runs in the isolated restore-test VPC, and its calls would time out; add it to ENDPOINTS');
    }
    return e.service === null ? [] : [{ prefix, service: e.service, why: e.why }];
  });
}

export interface DataCheckNetworkProps {
  readonly vpc: ec2.IVpc;
  /** The restored databases' security group (RESTORE_SECURITY_GROUP_IDS). */
  readonly databases: ec2.ISecurityGroup;
  readonly endpoints: { prefix: string; service: ec2.InterfaceVpcEndpointAwsService }[];
  /** 2: an endpoint interface in every restore-test subnet; 1: in the first only. */
  readonly endpointZones: 1 | 2;
}

/**
 * The function's security group, the endpoints and theirs, and the rules between them:
 * - function -> restored databases: the database ports only (ingress on the databases' group
 *   from the function's group, and the matching egress);
 * - function -> endpoints: 443 only;
 * - nothing else out of the function's group (no 0.0.0.0/0), nothing into the endpoints' group
 *   but 443 from the function.
 */
export class DataCheckNetwork extends Construct {
  readonly functionSecurityGroup: ec2.SecurityGroup;
  readonly endpointSecurityGroup: ec2.SecurityGroup;
  readonly subnets: ec2.SubnetSelection = { subnetType: ec2.SubnetType.PRIVATE_ISOLATED };
  readonly endpoints: ec2.InterfaceVpcEndpoint[];

  constructor(scope: Construct, id: string, props: DataCheckNetworkProps) {
    super(scope, id);
    const { vpc } = props;
    this.functionSecurityGroup = new ec2.SecurityGroup(this, 'FunctionSecurityGroup', {
      vpc,
      description: 'snapferry restore function (data checks): to the restored databases and the VPC endpoints only',
      allowAllOutbound: false,
    });
    this.endpointSecurityGroup = new ec2.SecurityGroup(this, 'EndpointSecurityGroup', {
      vpc,
      description: 'snapferry restore-test VPC endpoints: HTTPS from the restore function only',
      allowAllOutbound: false,
    });
    for (const port of DATA_CHECK_PORTS) {
      this.functionSecurityGroup.connections.allowTo(props.databases, ec2.Port.tcp(port), `restore function to restored databases, ${port}`);
    }
    this.functionSecurityGroup.connections.allowTo(this.endpointSecurityGroup, ec2.Port.tcp(443), 'restore function to the VPC endpoints, HTTPS');

    const isolated = vpc.selectSubnets(this.subnets).subnets;
    const endpointSubnets: ec2.SubnetSelection = { subnets: isolated.slice(0, props.endpointZones) };
    this.endpoints = props.endpoints.map(({ prefix, service }) => new ec2.InterfaceVpcEndpoint(this, `Endpoint-${prefix}`, {
      vpc,
      service,
      subnets: endpointSubnets,
      securityGroups: [this.endpointSecurityGroup],
      // Not CDK's default ingress from the whole VPC's CIDR: only the rule above.
      open: false,
      // The SDK's usual host names (rds.<region>.amazonaws.com, ...) resolve to the endpoint.
      privateDnsEnabled: true,
    }));
  }
}
