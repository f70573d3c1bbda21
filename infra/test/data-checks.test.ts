// Data checks (target.restoreTest.dataChecks): off unless configured; on, the restore function
// runs in the isolated restore-test VPC, reaches the restored databases on their ports only and
// AWS through one interface endpoint per service it calls, and gets DATA_CHECKS as the step
// reads it.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Template } from 'aws-cdk-lib/assertions';
import { buildDeployment } from '../lib/app';
import { Config, ConfigError } from '../lib/config';
import { DATA_CHECK_STEP, endpointsFor, ENDPOINTS } from '../lib/data-checks';
import { loadPermissions, PERMISSIONS_FILE } from '../lib/permissions';
import { exampleConfig, list, newApp, only, placeholderAssets, resources, routing, Statement, statementsOf, synthExample } from './helpers';

const RESTORE = 'snapferry-restore';
const DATABASES_GROUP = 'snapferry restore tests: no ingress, no egress';
const FUNCTION_GROUP = 'snapferry restore function (data checks): to the restored databases and the VPC endpoints only';
const ENDPOINTS_GROUP = 'snapferry restore-test VPC endpoints: HTTPS from the restore function only';

const withoutChecks = (): Config => {
  const c = exampleConfig();
  delete c.target.restoreTest.dataChecks;
  return c;
};
const config = exampleConfig();
const on = synthExample(config).target;
const off = synthExample(withoutChecks()).target;

const restoreFn = (t: Template) => only(t, 'AWS::Lambda::Function', { FunctionName: RESTORE }).Properties;
const group = (t: Template, description: string) => only(t, 'AWS::EC2::SecurityGroup', { GroupDescription: description });
const groupId = (t: Template, description: string) => ({ 'Fn::GetAtt': [group(t, description).id, 'GroupId'] });
const isolatedSubnets = (t: Template) => Object.keys(resources(t, 'AWS::EC2::Subnet')).map((id) => ({ Ref: id }));
/** The interface endpoints, by the service they serve (com.amazonaws.<region>.<service>). */
const endpoints = (t: Template) => Object.values(resources(t, 'AWS::EC2::VPCEndpoint'))
  .map((e) => ({ service: String(e.Properties.ServiceName).split('.').pop()!, ...e.Properties }))
  .sort((a, b) => a.service.localeCompare(b.service));

type Rule = { IpProtocol: string; FromPort?: number; ToPort?: number; CidrIp?: string; CidrIpv6?: string; peer?: unknown };
/** Every ingress (or egress) rule of a security group, inline or a resource of its own; `peer` is the other group or CIDR. */
function rules(t: Template, groupLogicalId: string, direction: 'ingress' | 'egress'): Rule[] {
  const sg = resources(t, 'AWS::EC2::SecurityGroup')[groupLogicalId].Properties;
  const inline = (direction === 'ingress' ? sg.SecurityGroupIngress : sg.SecurityGroupEgress) ?? [];
  const own = Object.values(resources(t, direction === 'ingress' ? 'AWS::EC2::SecurityGroupIngress' : 'AWS::EC2::SecurityGroupEgress'))
    .map((r) => r.Properties).filter((p) => JSON.stringify(p.GroupId) === JSON.stringify({ 'Fn::GetAtt': [groupLogicalId, 'GroupId'] }));
  return [...inline, ...own].map((r: any) => ({
    IpProtocol: r.IpProtocol, FromPort: r.FromPort, ToPort: r.ToPort, CidrIp: r.CidrIp, CidrIpv6: r.CidrIpv6,
    peer: r.SourceSecurityGroupId ?? r.DestinationSecurityGroupId ?? r.CidrIp ?? r.CidrIpv6,
  }));
}
const tcp = (port: number, peer: unknown) => ({ IpProtocol: 'tcp', FromPort: port, ToPort: port, peer });
const sortRules = (r: Rule[]) => r.map((x) => JSON.stringify({ p: x.IpProtocol, f: x.FromPort, t: x.ToPort, peer: x.peer })).sort();

describe('data checks off (the default)', () => {
  test('without dataChecks: the restore function has no VpcConfig, no endpoint exists, no DATA_CHECKS', () => {
    const fn = restoreFn(off);
    assert.equal(fn.VpcConfig, undefined);
    off.resourceCountIs('AWS::EC2::VPCEndpoint', 0);
    // Only the restored databases' group, with no rule (no function group, no endpoints' group).
    assert.deepEqual(Object.values(resources(off, 'AWS::EC2::SecurityGroup')).map((g) => g.Properties.GroupDescription), [DATABASES_GROUP]);
    off.resourceCountIs('AWS::EC2::SecurityGroupIngress', 0);
    off.resourceCountIs('AWS::EC2::SecurityGroupEgress', 0);
    for (const v of ['DATA_CHECKS', 'DATA_CHECK_TIMEOUT_SECONDS', 'DATA_CHECK_CA_BUNDLE']) assert.ok(!(v in fn.Environment.Variables), v);
    // And no network interface permission in its role.
    assert.deepEqual(statementsOf(off, RESTORE).filter((st) => list(st.Action).some((a) => /NetworkInterface|PrivateIpAddresses|DescribeSubnets/.test(a))), []);
  });

  test('no function of either stack runs in a VPC without data checks, and only restore with them', () => {
    const c = withoutChecks();
    const s = synthExample(c);
    for (const t of [s.target, s.source]) {
      for (const f of Object.values(resources(t, 'AWS::Lambda::Function'))) assert.equal(f.Properties.VpcConfig, undefined, f.Properties.FunctionName);
    }
    const inVpc = Object.values(resources(on, 'AWS::Lambda::Function')).filter((f) => f.Properties.VpcConfig !== undefined).map((f) => f.Properties.FunctionName);
    assert.deepEqual(inVpc, [RESTORE]);
  });
});

describe('data checks on (the example)', () => {
  test('the restore function runs in the isolated restore-test subnets with its own security group', () => {
    const vpc = restoreFn(on).VpcConfig;
    assert.deepEqual(vpc.SubnetIds, isolatedSubnets(on));
    assert.deepEqual(vpc.SecurityGroupIds, [groupId(on, FUNCTION_GROUP)]);
    // The subnets are the restore-test VPC's only ones, and isolated: no route anywhere, no gateway.
    assert.equal(isolatedSubnets(on).length, 2);
    on.resourceCountIs('AWS::EC2::Route', 0);
    on.resourceCountIs('AWS::EC2::InternetGateway', 0);
    on.resourceCountIs('AWS::EC2::NatGateway', 0);
    // Private DNS of the endpoints needs DNS support and host names in the VPC.
    const v = only(on, 'AWS::EC2::VPC', {}).Properties;
    assert.deepEqual([v.EnableDnsSupport, v.EnableDnsHostnames], [true, true]);
  });

  test('exactly one interface endpoint per AWS service the restore step calls: ec2, events, rds, sqs; private DNS on, in both subnets, behind their own group', () => {
    const found = endpoints(on);
    assert.deepEqual(found.map((e) => e.service), ['ec2', 'events', 'rds', 'sqs']);
    for (const e of found) {
      assert.equal(e.ServiceName, `com.amazonaws.${config.target.region}.${e.service}`);
      assert.equal(e.VpcEndpointType, 'Interface', e.service);
      assert.equal(e.PrivateDnsEnabled, true, e.service);
      assert.deepEqual(e.SubnetIds, isolatedSubnets(on), e.service);
      assert.deepEqual(e.SecurityGroupIds, [groupId(on, ENDPOINTS_GROUP)], e.service);
      assert.deepEqual(e.VpcId, { Ref: only(on, 'AWS::EC2::VPC', {}).id }, e.service);
    }
    // No gateway endpoint either: nothing else leaves the VPC.
    assert.equal(Object.values(resources(on, 'AWS::EC2::VPCEndpoint')).length, 4);
  });

  test('the restored databases\' group admits 5432 and 3306 from the function\'s group only, and sends nothing', () => {
    const db = group(on, DATABASES_GROUP).id;
    assert.deepEqual(sortRules(rules(on, db, 'ingress')), sortRules([tcp(5432, groupId(on, FUNCTION_GROUP)), tcp(3306, groupId(on, FUNCTION_GROUP))]));
    // CDK's marker for "no egress": a rule matching nothing (ICMP type 252 to 255.255.255.255/32).
    assert.deepEqual(rules(on, db, 'egress').map((r) => r.CidrIp), ['255.255.255.255/32']);
  });

  test('the function\'s group: out to the restored databases on 5432 and 3306 and to the endpoints on 443, nothing else (no 0.0.0.0/0); nothing in', () => {
    const fnGroup = group(on, FUNCTION_GROUP).id;
    const egress = rules(on, fnGroup, 'egress');
    assert.deepEqual(sortRules(egress), sortRules([
      tcp(5432, groupId(on, DATABASES_GROUP)), tcp(3306, groupId(on, DATABASES_GROUP)), tcp(443, groupId(on, ENDPOINTS_GROUP)),
    ]));
    for (const r of egress) {
      assert.notEqual(r.CidrIp, '0.0.0.0/0');
      assert.notEqual(r.CidrIpv6, '::/0');
      assert.notEqual(r.IpProtocol, '-1');
    }
    assert.deepEqual(rules(on, fnGroup, 'ingress'), []);
  });

  test('the endpoints\' group admits 443 from the function\'s group only (not CDK\'s default, the VPC\'s CIDR), and sends nothing', () => {
    const endpointGroup = group(on, ENDPOINTS_GROUP).id;
    assert.deepEqual(sortRules(rules(on, endpointGroup, 'ingress')), sortRules([tcp(443, groupId(on, FUNCTION_GROUP))]));
    assert.deepEqual(rules(on, endpointGroup, 'egress').map((r) => r.CidrIp), ['255.255.255.255/32']);
  });

  test('no security group of the stack allows anything from or to 0.0.0.0/0', () => {
    for (const id of Object.keys(resources(on, 'AWS::EC2::SecurityGroup'))) {
      for (const r of [...rules(on, id, 'ingress'), ...rules(on, id, 'egress')]) {
        assert.ok(r.CidrIp !== '0.0.0.0/0' && r.CidrIpv6 !== '::/0', `${id}: ${JSON.stringify(r)}`);
      }
    }
  });

  test('DATA_CHECKS is the example\'s checks as the snake_case JSON the step reads; DATA_CHECK_TIMEOUT_SECONDS its timeout; no CA bundle', () => {
    const env = restoreFn(on).Environment.Variables;
    assert.equal(typeof env.DATA_CHECKS, 'string');
    assert.deepEqual(JSON.parse(env.DATA_CHECKS), {
      databases: [
        {
          resources: '^prod-orders$', database: 'app', tables: ['public.orders', 'public.order_items'],
          probes: [
            { name: 'orders', sql: 'select count(*) from orders', min: 1 },
            { name: 'newest order', sql: 'select max(created_at) from orders', max_age_minutes: 120 },
          ],
        },
        {
          resources: '^prod-billing', database: 'billing',
          probes: [{ name: 'negative balances', sql: 'select count(*) from accounts where balance < 0', max: 0 }],
        },
      ],
    });
    assert.equal(env.DATA_CHECK_TIMEOUT_SECONDS, '10');
    assert.ok(!('DATA_CHECK_CA_BUNDLE' in env));
    // The rest of the restore step's environment is as without data checks.
    const { DATA_CHECKS: _, DATA_CHECK_TIMEOUT_SECONDS: __, ...rest } = env;
    assert.deepEqual(Object.keys(rest).sort(), Object.keys(restoreFn(off).Environment.Variables).sort());
  });

  test('Lambda\'s VPC access on the role: Describe on "*" alone, new interfaces only in the restore-test subnets with the function\'s group, the others only in that VPC', () => {
    const vpcRef = { Ref: only(on, 'AWS::EC2::VPC', {}).id };
    const arn = (rest: string) => `arn:aws:ec2:${config.target.region}:${config.target.account}:${rest}`;
    const join = (prefix: string, x: unknown) => ({ 'Fn::Join': ['', [arn(prefix), x]] });
    const byId = Object.fromEntries(statementsOf(on, RESTORE).filter((st) => st.Sid?.startsWith('LambdaVpc')).map((st) => [st.Sid, st]));
    assert.deepEqual(byId, {
      LambdaVpcDescribe: { Sid: 'LambdaVpcDescribe', Effect: 'Allow', Action: ['ec2:DescribeNetworkInterfaces', 'ec2:DescribeSubnets'], Resource: '*' },
      LambdaVpcCreateInterfaces: {
        Sid: 'LambdaVpcCreateInterfaces', Effect: 'Allow', Action: 'ec2:CreateNetworkInterface',
        Resource: [arn('network-interface/*'), join('security-group/', groupId(on, FUNCTION_GROUP)), ...isolatedSubnets(on).map((s) => join('subnet/', s))],
      },
      LambdaVpcManageInterfaces: {
        Sid: 'LambdaVpcManageInterfaces', Effect: 'Allow',
        Action: ['ec2:AssignPrivateIpAddresses', 'ec2:DeleteNetworkInterface', 'ec2:UnassignPrivateIpAddresses'],
        Resource: arn('network-interface/*'),
        Condition: { ArnEquals: { 'ec2:Vpc': join('vpc/', vpcRef) } },
      },
    } satisfies Record<string, Statement>);
    // No AWS managed policy (AWSLambdaVPCAccessExecutionRole would grant all of it on "*").
    const role = only(on, 'AWS::IAM::Role', { Description: `${RESTORE} Lambda` }).Properties;
    assert.equal(role.ManagedPolicyArns, undefined);
    // Lambda creates the interfaces with the role when it creates the function: the policy comes first.
    const fnId = only(on, 'AWS::Lambda::Function', { FunctionName: RESTORE }).id;
    const policy = Object.entries(resources(on, 'AWS::IAM::Policy')).find(([, p]) => p.Properties.PolicyDocument.Statement.some((st: Statement) => st.Sid === 'LambdaVpcDescribe'))![0];
    assert.ok(list(resources(on, 'AWS::Lambda::Function')[fnId].DependsOn).includes(policy));
  });

  test('endpointZones 1: every endpoint in the first restore-test subnet only; the function still in both', () => {
    const c = exampleConfig();
    c.target.restoreTest.dataChecks!.endpointZones = 1;
    const t = synthExample(c).target;
    const [first] = isolatedSubnets(t);
    for (const e of endpoints(t)) assert.deepEqual(e.SubnetIds, [first], e.service);
    assert.deepEqual(restoreFn(t).VpcConfig.SubnetIds, isolatedSubnets(t));
  });

  test('a backup account that restores no EBS: no ec2 endpoint (its EC2 statements are for kind ebs only)', () => {
    const c = exampleConfig();
    c.target.kinds = ['db-instance', 'db-cluster'];
    assert.deepEqual(endpoints(synthExample(c).target).map((e) => e.service), ['events', 'rds', 'sqs']);
  });

  test('a data check timeout not under the restore function\'s timeout fails synth, naming the field', () => {
    const limit = routing.functions.find((f) => f.name === DATA_CHECK_STEP)!.timeout_seconds;
    const c = exampleConfig();
    c.target.restoreTest.dataChecks!.timeoutSeconds = limit;
    assert.throws(() => buildDeployment(newApp(), c, routing, placeholderAssets()), (e: Error) => e instanceof ConfigError
      && e.message === `target.restoreTest.dataChecks.timeoutSeconds: ${limit} is not less than the restore function's timeout of ${limit} seconds `
        + '(shared/routing.json): one slow check would time the whole invocation out');
    c.target.restoreTest.dataChecks!.timeoutSeconds = limit - 1;
    assert.doesNotThrow(() => buildDeployment(newApp(), c, routing, placeholderAssets()));
  });
});

describe('endpointsFor: the endpoints follow the restore step\'s permissions.json statements', () => {
  const permissions = loadPermissions(PERMISSIONS_FILE, routing);
  const services = (kinds: Config['target']['kinds']) => endpointsFor(permissions, kinds, ['eu-central-1']).map((e) => e.prefix);

  test('every service prefix the restore role uses is decided: an endpoint, or none with the reason (kms)', () => {
    const prefixes = new Set([...permissions.every_step, ...permissions.steps[DATA_CHECK_STEP]].flatMap((st) => st.actions.map((a) => a.split(':')[0])));
    for (const p of prefixes) assert.ok(p in ENDPOINTS, p);
    assert.deepEqual([...prefixes].sort(), ['ec2', 'events', 'kms', 'rds', 'sqs']);
    assert.equal(ENDPOINTS.kms.service, null);
    assert.deepEqual(services(['db-instance', 'db-cluster', 'ebs']), ['ec2', 'events', 'rds', 'sqs']);
    assert.deepEqual(services(['db-cluster']), ['events', 'rds', 'sqs']);
    // STS and CloudWatch Logs are not called from the VPC: no statement for them, no endpoint.
    for (const none of ['sts', 'logs']) assert.ok(!prefixes.has(none), none);
  });

  test('a service the step would call with no endpoint decided fails synth, naming the statement', () => {
    const p = structuredClone(permissions);
    p.steps[DATA_CHECK_STEP].push({ sid: 'ReadSecret', actions: ['secretsmanager:GetSecretValue'], resources: ['account'], why: 'test' });
    assert.throws(() => endpointsFor(p, ['db-instance'], []),
      /^Error: permissions\.json restore\.ReadSecret calls secretsmanager, for which lib\/data-checks\.ts has no interface endpoint: .*add it to ENDPOINTS$/);
  });

  test('a statement in the extra regions fails synth: the endpoints serve the home region only', () => {
    const p = structuredClone(permissions);
    p.steps[DATA_CHECK_STEP][0].regions = 'pipeline';
    assert.throws(() => endpointsFor(p, ['db-instance'], ['eu-central-1']), /^Error: permissions\.json restore\.Describe acts in the extra regions/);
    // Without extra regions, "pipeline" is home only.
    assert.deepEqual(endpointsFor(p, ['db-instance'], []).map((e) => e.prefix), ['events', 'rds', 'sqs']);
  });

  test('each endpoint is CDK\'s service of the same name as the action prefix', () => {
    for (const [prefix, e] of Object.entries(ENDPOINTS)) {
      if (e.service !== null) assert.equal((e.service as ec2.InterfaceVpcEndpointAwsService).shortName, prefix);
    }
  });
});
