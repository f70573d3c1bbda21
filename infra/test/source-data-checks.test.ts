// Source data checks (sources[].dataChecks): off unless configured; on, share-snapshot runs in
// the databases' VPC with a group of its own that reaches them on their ports, gets
// SOURCE_DATA_CHECKS as the step reads it, and may read the master secrets RDS manages (and the
// secrets the config names), nothing else of Secrets Manager.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { Template } from 'aws-cdk-lib/assertions';
import { Config, ConfigError, parseConfig } from '../lib/config';
import { INFRA_DIR } from '../lib/routing';
import { list, only, resources, statementsOf, synthExample, exampleConfig } from './helpers';

const SHARE = 'snapferry-share-snapshot';
const SECRET = 'arn:aws:secretsmanager:eu-west-1:111111111111:secret:orders-reader-AbCdEf';
const FUNCTION_GROUP = 'snapferry share-snapshot (source data checks): to the source databases and HTTPS only';

const dataChecks = () => ({
  databases: [{ resources: '^prod-orders$', database: 'app', secret: SECRET }, { resources: '^prod-' }],
  vpcId: 'vpc-0123456789abcdef0',
  subnetIds: ['subnet-0123456789abcdef0', 'subnet-0123456789abcdef1'],
  databaseSecurityGroupId: 'sg-0123456789abcdef0',
});

/** The example's raw JSON, with `change` applied to its first source. */
function raw(change: (source: Record<string, unknown>) => void): unknown {
  const json = JSON.parse(fs.readFileSync(path.join(INFRA_DIR, 'config', 'example.json'), 'utf8'));
  change(json.sources[0]);
  return json;
}

const withChecks = (): Config => parseConfig(raw((s) => { s.dataChecks = dataChecks(); }));
const on = synthExample(withChecks()).source;
const off = synthExample(exampleConfig()).source;
const shareFn = (t: Template) => only(t, 'AWS::Lambda::Function', { FunctionName: SHARE }).Properties;
const secretStatements = (t: Template) => statementsOf(t, SHARE).filter((st) => list<string>(st.Action).some((a) => a.startsWith('secretsmanager:')));

describe('source data checks', () => {
  test('off by default: share-snapshot outside any VPC, no SOURCE_DATA_CHECKS, no secret readable', () => {
    assert.equal(shareFn(off).VpcConfig, undefined);
    assert.equal(shareFn(off).Environment.Variables.SOURCE_DATA_CHECKS, undefined);
    assert.deepEqual(secretStatements(off), []);
  });

  test('on: SOURCE_DATA_CHECKS as the step reads it, and its time limit', () => {
    const env = shareFn(on).Environment.Variables;
    assert.deepEqual(JSON.parse(env.SOURCE_DATA_CHECKS), { databases: dataChecks().databases });
    assert.equal(env.DATA_CHECK_TIMEOUT_SECONDS, '10');
  });

  test('on: the function in the configured subnets, with a group that reaches the databases on their ports and HTTPS only', () => {
    const vpc = shareFn(on).VpcConfig;
    assert.deepEqual(vpc.SubnetIds, ['subnet-0123456789abcdef0', 'subnet-0123456789abcdef1']);
    const group = only(on, 'AWS::EC2::SecurityGroup', { GroupDescription: FUNCTION_GROUP });
    assert.deepEqual(vpc.SecurityGroupIds, [{ 'Fn::GetAtt': [group.id, 'GroupId'] }]);
    // Inline (to a CIDR) or a resource of its own (to another group).
    const own = Object.values(resources(on, 'AWS::EC2::SecurityGroupEgress')).map((r) => r.Properties)
      .filter((p) => JSON.stringify(p.GroupId) === JSON.stringify({ 'Fn::GetAtt': [group.id, 'GroupId'] }));
    const egress = [...list<Record<string, unknown>>(group.Properties.SecurityGroupEgress), ...own]
      .map((r) => `${r.IpProtocol} ${r.FromPort} ${r.CidrIp ?? r.DestinationSecurityGroupId}`).sort();
    assert.deepEqual(egress, ['tcp 3306 sg-0123456789abcdef0', 'tcp 443 0.0.0.0/0', 'tcp 5432 sg-0123456789abcdef0']);
    const ingress = Object.values(resources(on, 'AWS::EC2::SecurityGroupIngress')).map((r) => r.Properties)
      .filter((p) => p.GroupId === 'sg-0123456789abcdef0').map((p) => p.FromPort).sort();
    assert.deepEqual(ingress, [3306, 5432], 'the databases\' group admits the function on the database ports');
  });

  test('on: GetSecretValue on RDS\'s master secrets of the account and the configured ones only', () => {
    const [st, ...more] = secretStatements(on);
    assert.deepEqual(more, []);
    assert.deepEqual(list(st.Action), ['secretsmanager:GetSecretValue']);
    const rendered = JSON.stringify(list(st.Resource));
    assert.ok(rendered.includes(':secretsmanager:') && rendered.includes(':secret:rds!*'), rendered);
    assert.ok(rendered.includes(SECRET), rendered);
    assert.ok(!rendered.includes('"*"'), rendered);
  });

  const bad: [string, (d: Record<string, unknown>) => void, RegExp][] = [
    ['no databases', (d) => { d.databases = []; }, /^sources\[0\]\.dataChecks\.databases: expected a non-empty list of databases to measure/],
    ['a secret that is not a secret ARN', (d) => { (d.databases as Record<string, unknown>[])[0].secret = 'orders-reader'; },
      /^sources\[0\]\.dataChecks\.databases\[0\]\.secret: expected a Secrets Manager secret ARN/],
    ['a regex that does not compile', (d) => { (d.databases as Record<string, unknown>[])[1].resources = '^prod-('; },
      /^sources\[0\]\.dataChecks\.databases\[1\]\.resources: not a valid regular expression/],
    ['an unknown field', (d) => { (d.databases as Record<string, unknown>[])[0].password = 'p'; }, /^sources\[0\]\.dataChecks\.databases\[0\]/],
    ['no subnets', (d) => { d.subnetIds = []; }, /^sources\[0\]\.dataChecks\.subnetIds: expected at least one subnet$/],
    ['a bad security group', (d) => { d.databaseSecurityGroupId = 'default'; }, /^sources\[0\]\.dataChecks\.databaseSecurityGroupId: expected a security group id/],
  ];
  for (const [name, change, message] of bad) {
    test(`refused: ${name}`, () => {
      assert.throws(() => parseConfig(raw((s) => { const d = dataChecks(); change(d); s.dataChecks = d; })), (e: Error) => e instanceof ConfigError && message.test(e.message));
    });
  }

  test('refused: source data checks where the source backs up no database', () => {
    assert.throws(() => parseConfig(raw((s) => { s.kinds = ['ebs']; s.dataChecks = dataChecks(); })),
      (e: Error) => e instanceof ConfigError && /sources\[0\]\.dataChecks: source data checks measure databases/.test(e.message));
  });
});
