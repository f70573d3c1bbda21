// The copy ledger (routing.json copy_ledger): the backup account's DynamoDB table of the copies
// in progress and waiting for a copy slot. Only the backup account's stack has it, in its home
// region; only the steps permissions.json names it for may use it, each with its own actions,
// on that one table; no source account has a table or any DynamoDB permission.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { Config } from '../lib/config';
import { COPY_LEDGER_SCOPE, loadPermissions, PERMISSIONS_FILE, renderStep, StepScopes } from '../lib/permissions';
import { functionName, loadRouting, ROUTING_FILE } from '../lib/routing';
import { ebsConfig, exampleConfig, list, newApp, only, resources, roleStatements, routing, statementsOf, synthExample } from './helpers';

/** The example plus a second source in another region, backing up EBS too: every source statement rendered somewhere. */
function multiSourceConfig(): Config {
  const c = ebsConfig();
  c.sources.push({ ...c.sources[0], account: '333333333333', region: 'us-east-1' });
  return c;
}
const configs: Record<string, Config> = { example: exampleConfig(), 'ebs source': ebsConfig(), 'two sources': multiSourceConfig() };
const synths = Object.fromEntries(Object.entries(configs).map(([name, c]) => [name, synthExample(c)]));
const synth = synths.example;

/** The table's ARN as the steps' roles name it (and as DynamoDB gives it): the home region of the backup account. */
const ledgerArn = (c: Config) => `arn:aws:dynamodb:${c.target.region}:${c.target.account}:table/${routing.copy_ledger}`;

/** What each backup-account step may do on the ledger (shared/permissions.json, sid CopyLedger); no other step may do anything. */
const LEDGER_ACTIONS: Record<string, string[]> = {
  'copy-shared-snapshot': ['dynamodb:DeleteItem', 'dynamodb:PutItem', 'dynamodb:Query', 'dynamodb:UpdateItem'],
  'expire-copies': ['dynamodb:UpdateItem'],
  'reconcile-copies': ['dynamodb:DeleteItem', 'dynamodb:Query', 'dynamodb:UpdateItem'],
};

describe('the copy ledger table (backup account, home region)', () => {
  test('routing.json names it', () => {
    const raw = JSON.parse(fs.readFileSync(ROUTING_FILE, 'utf8'));
    assert.equal(typeof raw.copy_ledger, 'string');
    assert.equal(routing.copy_ledger, raw.copy_ledger);
  });

  for (const [name, s] of Object.entries(synths)) {
    test(`${name}: one table, named by routing.json, keys pk (HASH) and sk (RANGE) both strings, on demand, encrypted, point-in-time recovery, retained`, () => {
      const tables = Object.values(resources(s.target, 'AWS::DynamoDB::Table'));
      assert.equal(tables.length, 1);
      const [table] = tables;
      assert.equal(table.DeletionPolicy, 'Retain');
      assert.equal(table.UpdateReplacePolicy, 'Retain');
      assert.deepEqual(table.Properties, {
        TableName: routing.copy_ledger,
        KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }, { AttributeName: 'sk', KeyType: 'RANGE' }],
        AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }, { AttributeName: 'sk', AttributeType: 'S' }],
        BillingMode: 'PAY_PER_REQUEST',
        // The AWS managed key (aws/dynamodb): no KMSMasterKeyId, so no key policy or KMS statement to keep.
        SSESpecification: { SSEEnabled: true },
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      });
      s.target.resourceCountIs('AWS::DynamoDB::GlobalTable', 0);
    });

    test(`${name}: no table in the extra regions' stacks or in any source account's stack`, () => {
      const others = [...s.regions, ...s.deployment.sources.map((st) => Template.fromStack(st))];
      assert.ok(others.length >= 2);
      for (const t of others) {
        t.resourceCountIs('AWS::DynamoDB::Table', 0);
        t.resourceCountIs('AWS::DynamoDB::GlobalTable', 0);
      }
    });
  }

  test('the steps that use it start only once it exists (their functions depend on it); the others do not wait for it', () => {
    const table = only(synth.target, 'AWS::DynamoDB::Table', { TableName: routing.copy_ledger }).id;
    for (const fn of routing.functions.filter((f) => f.account === 'target')) {
      const f = Object.values(resources(synth.target, 'AWS::Lambda::Function')).find((r) => r.Properties.FunctionName === functionName(fn))!;
      assert.equal(list(f.DependsOn).includes(table), fn.name in LEDGER_ACTIONS, fn.name);
    }
  });
});

describe('the steps\' permissions on the copy ledger', () => {
  test('permissions.json: CopyLedger, on the scope dynamodb:copy-ledger alone, in exactly copy-shared-snapshot, expire-copies and reconcile-copies, with the actions the steps need', () => {
    const p = loadPermissions(PERMISSIONS_FILE, routing);
    const naming = Object.entries(p.steps).flatMap(([step, sts]) => sts.filter((st) => st.resources.includes(COPY_LEDGER_SCOPE)).map((st) => [step, st] as const));
    assert.deepEqual(Object.fromEntries(naming.map(([step, st]) => [step, [...st.actions].sort()])), LEDGER_ACTIONS);
    for (const [step, st] of naming) {
      assert.equal(st.sid, 'CopyLedger', step);
      assert.deepEqual(st.resources, [COPY_LEDGER_SCOPE], step);
    }
    assert.ok(!p.every_step.some((st) => st.resources.includes(COPY_LEDGER_SCOPE)));
  });

  for (const [name, s] of Object.entries(synths)) {
    const c = configs[name];
    test(`${name}: each backup-account step has exactly its ledger actions, on exactly the table's ARN, in one statement without wildcards`, () => {
      // The ARN DynamoDB gives the table the stack creates (no extra region in it, although the example has one).
      const table = only(s.target, 'AWS::DynamoDB::Table', { TableName: routing.copy_ledger });
      assert.ok(c.target.extraRegions.length > 0);
      for (const fn of routing.functions.filter((f) => f.account === 'target')) {
        const onDynamo = statementsOf(s.target, functionName(fn)).filter((st) => list(st.Action).some((a) => a.startsWith('dynamodb:')));
        if (!(fn.name in LEDGER_ACTIONS)) {
          assert.deepEqual(onDynamo, [], fn.name);
          continue;
        }
        assert.deepEqual(onDynamo.map((st) => ({ ...st, Action: list(st.Action).sort() })), [{
          Sid: 'CopyLedger', Effect: 'Allow', Action: LEDGER_ACTIONS[fn.name], Resource: ledgerArn(c),
        }], fn.name);
        assert.equal(ledgerArn(c), `arn:aws:dynamodb:${c.target.region}:${c.target.account}:table/${table.Properties.TableName}`);
      }
    });

    test(`${name}: no other role of the backup account, and no role of any source account, has a DynamoDB action`, () => {
      const stepRoles = new Set(routing.functions.filter((f) => f.name in LEDGER_ACTIONS)
        .map((f) => only(s.target, 'AWS::Lambda::Function', { FunctionName: functionName(f) }).Properties.Role['Fn::GetAtt'][0]));
      const dynamo = (t: Template) => roleStatements(t).filter(({ st }) => list(st.Action).some((a) => a.startsWith('dynamodb:')));
      assert.deepEqual(dynamo(s.target).filter(({ role }) => !stepRoles.has(role)), []);
      for (const t of [...s.regions, ...s.deployment.sources.map((st) => Template.fromStack(st))]) {
        assert.deepEqual(dynamo(t), []);
        assert.ok(!JSON.stringify(t.toJSON()).includes(':dynamodb:'), 'no DynamoDB ARN at all');
      }
    });
  }

  const probe = (account: string, region: string) => new Stack(newApp(), 'Probe', { env: { account, region } });
  const scopes = (extra: Partial<StepScopes> = {}): StepScopes => ({
    kinds: ['db-instance'], extraRegions: ['eu-central-1'], sources: [{ account: '111111111111', region: 'us-east-1' }],
    targetKeyArn: 'k', extraRegionKeyAlias: 'alias/snapferry-target', restoreSubnetGroup: 'g', queueArn: 'q', dlqArn: 'd', pipelineBusArn: 'b',
    stepQueueArns: { 'copy-shared-snapshot': 'cq', restore: 'rq' }, ...extra,
  });

  test('the scope renders the home region\'s table only, even for a statement over the pipeline\'s regions (as shared/src/permissions.rs does)', () => {
    const stack = probe('222222222222', 'eu-west-1');
    const p = structuredClone(loadPermissions(PERMISSIONS_FILE, routing));
    p.steps['expire-copies'].find((st) => st.sid === 'CopyLedger')!.regions = 'pipeline';
    const ledger = renderStep(stack, loadPermissions(p, routing), 'expire-copies', scopes({ copyLedger: 'snapferry-copy-ledger' }))
      .map((st) => stack.resolve(st.toStatementJson())).filter((st) => st.Sid === 'CopyLedger');
    assert.deepEqual(ledger, [{ Sid: 'CopyLedger', Effect: 'Allow', Action: 'dynamodb:UpdateItem', Resource: 'arn:aws:dynamodb:eu-west-1:222222222222:table/snapferry-copy-ledger' }]);
  });

  test('a stack without the ledger (a source account\'s) fails synth on a statement naming it, naming the step and statement', () => {
    const stack = probe('111111111111', 'eu-west-1');
    assert.throws(() => renderStep(stack, loadPermissions(PERMISSIONS_FILE, routing), 'reconcile-copies', scopes()),
      /^Error: permissions\.json reconcile-copies\.CopyLedger: needs the copy ledger, which this stack does not have$/);
  });
});

test('routing.json refuses a copy_ledger that is no DynamoDB table name', () => {
  const raw = JSON.parse(fs.readFileSync(ROUTING_FILE, 'utf8'));
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'snapferry-routing-')), 'routing.json');
  for (const bad of [undefined, '', 'ab', 'snapferry copy ledger', 'snapferry/ledger', 42]) {
    const r = structuredClone(raw);
    if (bad === undefined) delete r.copy_ledger; else r.copy_ledger = bad;
    fs.writeFileSync(file, JSON.stringify(r));
    assert.throws(() => loadRouting(file), /copy_ledger must be a DynamoDB table name/, JSON.stringify(bad));
  }
  fs.writeFileSync(file, JSON.stringify(raw));
  assert.equal(loadRouting(file).copy_ledger, raw.copy_ledger);
});
