// Each step's role policy is rendered twice from shared/permissions.json: by the CDK stacks
// (lib/permissions.ts, renderStep) and by the local host, which runs each step in the
// emulator as a role of its own (shared/src/permissions.rs, Permissions::role_policy). A call
// the emulator allows must be one the deployed role allows, and the other way round: for
// several deployments (a backup account with an extra region and sources in two regions, one
// with neither, a source account with and without source data checks) every step of the
// account is rendered both ways, the Rust side through `snapferry-local role-policy`, and the
// statements must be the same, sid by sid.
//
// Left out of the comparison, by design: the statements of permissions.json's `event_source`
// (sid "Poll"), which the local host renders into every role and the stacks leave to CDK's
// SqsEventSource (test/permissions.test.ts checks CDK's grant). The stacks render a statement
// only for the kinds they handle (`kinds`); the local host handles every kind, so the stacks'
// side is rendered here with every kind.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import { Stack } from 'aws-cdk-lib';
import { KINDS } from '../lib/config';
import { loadPermissions, Permissions, PERMISSIONS_FILE, renderStep, StepScopes } from '../lib/permissions';
import { INFRA_DIR } from '../lib/routing';
import { TARGET_KEY_ALIAS } from '../lib/target-key';
import { newApp, routing } from './helpers';

const ROOT = path.resolve(INFRA_DIR, '..');
/** The binary: SNAPFERRY_LOCAL_BIN (a relative path is from the repository root, where the scripts run), else the debug build. */
const BIN = path.resolve(ROOT, process.env.SNAPFERRY_LOCAL_BIN || path.join('target', 'debug', 'snapferry-local'));

/** The alias Rust's `alias:backup` condition names (BACKUP_KEY_ALIAS in shared/src/permissions.rs). */
const RUST_BACKUP_KEY_ALIAS = 'alias/snapferry-target';

const RAW: Permissions = JSON.parse(fs.readFileSync(PERMISSIONS_FILE, 'utf8'));
const permissions = loadPermissions(PERMISSIONS_FILE, routing);
/** The sids the local host renders and the stacks leave to CDK's SqsEventSource. */
const EVENT_SOURCE_SIDS = new Set(permissions.event_source.map((s) => s.sid));

/** One deployment of the stacks: the account kind (routing.json's `account` of its steps) and what its stack knows. */
interface Deployment {
  name: string;
  account: 'source' | 'target';
  env: { account: string; region: string };
  extraRegions: string[];
  sources?: { account: string; region: string }[];
  sharingKeyArn?: string;
  targetKeyArn?: string;
  restoreSubnetGroup?: string;
  sourceDatabaseSecrets?: string[];
}

const DEPLOYMENTS: Deployment[] = [
  {
    name: 'backup account, an extra region, two sources (one in another region)',
    account: 'target',
    env: { account: '222222222222', region: 'us-east-1' },
    extraRegions: ['eu-west-1'],
    sources: [{ account: '111111111111', region: 'us-east-1' }, { account: '444444444444', region: 'eu-west-1' }],
    targetKeyArn: 'arn:aws:kms:us-east-1:222222222222:key/22222222-aaaa-bbbb-cccc-222222222222',
    restoreSubnetGroup: 'snapferry-restore-test',
  },
  {
    name: 'backup account, home region only, one source',
    account: 'target',
    env: { account: '222222222222', region: 'us-west-2' },
    extraRegions: [],
    sources: [{ account: '111111111111', region: 'us-west-2' }],
    targetKeyArn: 'arn:aws:kms:us-west-2:222222222222:key/22222222-aaaa-bbbb-cccc-222222222222',
    restoreSubnetGroup: 'snapferry-restore-test',
  },
  {
    name: 'source account with source data checks',
    account: 'source',
    env: { account: '111111111111', region: 'us-east-1' },
    extraRegions: [],
    sharingKeyArn: 'arn:aws:kms:us-east-1:111111111111:key/11111111-aaaa-bbbb-cccc-111111111111',
    sourceDatabaseSecrets: ['arn:aws:secretsmanager:us-east-1:111111111111:secret:snapferry-reader-AbCdEf'],
  },
  {
    name: 'source account without source data checks',
    account: 'source',
    env: { account: '444444444444', region: 'eu-west-1' },
    extraRegions: [],
    sharingKeyArn: 'arn:aws:kms:eu-west-1:444444444444:key/44444444-aaaa-bbbb-cccc-444444444444',
  },
];

/** The steps of a deployment's account, by routing.json. */
const stepsOf = (d: Deployment): string[] => routing.functions.filter((f) => f.account === d.account).map((f) => f.name);

const queueArn = (d: Deployment, step: string) => `arn:aws:sqs:${d.env.region}:${d.env.account}:snapferry-${step}`;
const dlqArn = (d: Deployment, step: string) => `${queueArn(d, step)}-dlq`;
const busArn = (d: Deployment) => `arn:aws:events:${d.env.region}:${d.env.account}:event-bus/snapferry`;
const stepQueueArns = (d: Deployment) => Object.fromEntries(stepsOf(d).map((s) => [s, queueArn(d, s)]));

/** An IAM policy statement as JSON. */
type Statement = Record<string, unknown>;

/** The stacks' rendering of `step` in `d`: renderStep with every kind, resolved in a stack of literal account and region. */
function tsStatements(d: Deployment, step: string, p: Permissions = permissions): Statement[] {
  const stack = new Stack(newApp(), 'IamAgrees', { env: d.env });
  const scopes: StepScopes = {
    kinds: KINDS,
    extraRegions: d.extraRegions,
    sources: d.sources,
    sharingKeyArn: d.sharingKeyArn,
    targetKeyArn: d.targetKeyArn,
    extraRegionKeyAlias: RUST_BACKUP_KEY_ALIAS,
    restoreSubnetGroup: d.restoreSubnetGroup,
    sourceDatabaseSecrets: d.sourceDatabaseSecrets,
    // The local host knows it from routing.json in every deployment; no source statement names it.
    copyLedger: routing.copy_ledger,
    queueArn: queueArn(d, step),
    dlqArn: dlqArn(d, step),
    pipelineBusArn: busArn(d),
    stepQueueArns: stepQueueArns(d),
  };
  return renderStep(stack, p, step, scopes).map((st) => stack.resolve(st.toStatementJson()) as Statement);
}

const rustCache = new Map<string, Record<string, { Version: string; Statement: Statement[] }>>();

/** The local host's rendering of `step` in `d` (snapferry-local role-policy), without the event source's statements. */
function rustStatements(d: Deployment, step: string): Statement[] {
  const scope = {
    partition: 'aws',
    account: d.env.account,
    region: d.env.region,
    extra_regions: d.extraRegions,
    sources: (d.sources ?? []).map((s) => [s.account, s.region]),
    sharing_key: d.sharingKeyArn ?? null,
    target_key: d.targetKeyArn ?? null,
    restore_subnet_group: d.restoreSubnetGroup ?? null,
    queue_arn: queueArn(d, step),
    dlq_arn: dlqArn(d, step),
    bus_arn: busArn(d),
    step_queue_arns: stepQueueArns(d),
    source_database_secrets: d.sourceDatabaseSecrets ?? null,
  };
  const input = JSON.stringify(scope);
  let policies = rustCache.get(input);
  if (policies === undefined) {
    assert.ok(fs.existsSync(BIN), `${BIN} is missing: run \`cargo build -p snapferry-local\` (scripts/test-infra does), `
      + 'or set SNAPFERRY_LOCAL_BIN to the binary');
    const r = spawnSync(BIN, ['role-policy'], { input, encoding: 'utf8', cwd: ROOT, maxBuffer: 64 * 1024 * 1024 });
    if (r.error) throw r.error;
    assert.equal(r.status, 0, `snapferry-local role-policy failed for ${input}:\n${r.stdout}${r.stderr}`);
    policies = JSON.parse(r.stdout) as Record<string, { Version: string; Statement: Statement[] }>;
    rustCache.set(input, policies);
  }
  const policy = policies[step];
  assert.ok(policy !== undefined, `snapferry-local role-policy rendered no policy for ${step} (it has ${Object.keys(policies).join(', ')})`);
  assert.equal(policy.Version, '2012-10-17');
  return policy.Statement.filter((s) => !EVENT_SOURCE_SIDS.has(s.Sid as string));
}

const asList = (x: unknown): unknown[] => (Array.isArray(x) ? x : [x]);
const sorted = (xs: unknown[]): unknown[] => [...xs].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));

/**
 * A statement as both sides must agree on it: Action, NotAction, Resource and NotResource as
 * sorted lists (a single string is a list of one); in Condition, a value list of one is that
 * value, a longer list is sorted (IAM reads it as a set); an empty Condition is none.
 */
function normalize(st: Statement): Statement {
  const out: Statement = {};
  for (const [key, value] of Object.entries(st)) {
    if (['Action', 'NotAction', 'Resource', 'NotResource'].includes(key)) {
      out[key] = sorted(asList(value));
    } else if (key === 'Condition') {
      const blocks = Object.entries(value as Record<string, Record<string, unknown>>).filter(([, keys]) => Object.keys(keys).length > 0);
      if (blocks.length === 0) continue;
      out[key] = Object.fromEntries(blocks.map(([op, keys]) => [op, Object.fromEntries(Object.entries(keys).map(([k, v]) => {
        const values = asList(v);
        return [k, values.length === 1 ? values[0] : sorted(values)];
      }))]));
    } else {
      out[key] = value;
    }
  }
  return out;
}

/** A side's statements by sid; a statement without a sid or a sid twice is a difference of its own. */
function bySid(statements: Statement[], side: string, problems: string[]): Map<string, Statement> {
  const out = new Map<string, Statement>();
  statements.forEach((st, i) => {
    const sid = typeof st.Sid === 'string' ? st.Sid : `<statement ${i} without a sid>`;
    if (out.has(sid)) problems.push(`${side} renders sid ${sid} twice`);
    out.set(sid, normalize(st));
  });
  return out;
}

interface Difference {
  step: string;
  sid: string;
  /** The statement's field, or 'statement' when only one side renders the sid. */
  field: string;
  ts: unknown;
  rust: unknown;
}

/** Where the stacks' and the local host's renderings of `step` differ: none when they agree. */
function differences(step: string, ts: Statement[], rust: Statement[]): Difference[] {
  const problems: string[] = [];
  const t = bySid(ts, 'the stacks (TypeScript)', problems);
  const r = bySid(rust, 'the local host (Rust)', problems);
  const out: Difference[] = problems.map((p) => ({ step, sid: '-', field: 'sids', ts: p, rust: p }));
  const sids = [...new Set([...t.keys(), ...r.keys()])].sort();
  for (const sid of sids) {
    const a = t.get(sid);
    const b = r.get(sid);
    if (a === undefined || b === undefined) {
      out.push({ step, sid, field: 'statement', ts: a, rust: b });
      continue;
    }
    for (const field of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
      if (!isDeepStrictEqual(a[field], b[field])) out.push({ step, sid, field, ts: a[field], rust: b[field] });
    }
  }
  return out;
}

const show = (x: unknown) => (x === undefined ? '(none)' : JSON.stringify(x));
const report = (ds: Difference[]): string => ds.map((d) =>
  `  ${d.step} ${d.sid} ${d.field}:\n    TS (infra/lib/permissions.ts):   ${show(d.ts)}\n    Rust (shared/src/permissions.rs): ${show(d.rust)}`).join('\n');

describe('the stacks and the local host render the same role policy for every step', () => {
  test('the deployments below cover every step of permissions.json', () => {
    assert.deepEqual([...new Set(DEPLOYMENTS.flatMap(stepsOf))].sort(), Object.keys(permissions.steps).sort());
  });

  test(`the backup key alias the target stack gives the stacks' rendering is Rust's (${RUST_BACKUP_KEY_ALIAS})`, () => {
    assert.equal(TARGET_KEY_ALIAS, RUST_BACKUP_KEY_ALIAS);
  });

  for (const d of DEPLOYMENTS) {
    describe(d.name, () => {
      for (const step of stepsOf(d)) {
        test(step, () => {
          const ts = tsStatements(d, step);
          for (const st of ts) {
            assert.ok(!JSON.stringify(st).includes('"Fn::') && !JSON.stringify(st).includes('"Ref"'),
              `${step}: the stacks' statement ${st.Sid} did not resolve to plain strings: ${JSON.stringify(st)}`);
          }
          const rust = rustStatements(d, step);
          const ds = differences(step, ts, rust);
          assert.equal(ds.length, 0, `${d.name}: ${step}'s role differs between the stacks and the local host:\n${report(ds)}`);
          // Agreeing on nothing would mean nothing.
          assert.ok(ts.length > 0, `${step}: no statements rendered`);
        });
      }
    });
  }
});

describe('the comparison finds a difference (so an agreement above means something)', () => {
  const backup = DEPLOYMENTS[0];
  const source = DEPLOYMENTS[2];
  /** The stacks' rendering of `step` from permissions.json with `change` made to a copy of it, against Rust's of the real one. */
  const changed = (d: Deployment, step: string, change: (p: Permissions) => void): Difference[] => {
    const copy = structuredClone(RAW);
    change(copy);
    return differences(step, tsStatements(d, step, loadPermissions(copy, routing)), rustStatements(d, step));
  };
  const statement = (p: Permissions, step: string, sid: string) => {
    const st = p.steps[step].find((s) => s.sid === sid);
    assert.ok(st, `permissions.json has no ${step}.${sid}`);
    return st;
  };

  test('one more action', () => {
    const ds = changed(source, 'expire-snapshots', (p) => { statement(p, 'expire-snapshots', 'ExpireManagedSnapshots').actions.push('rds:DeleteDBInstance'); });
    assert.equal(ds.length, 1, report(ds));
    assert.deepEqual([ds[0].step, ds[0].sid, ds[0].field], ['expire-snapshots', 'ExpireManagedSnapshots', 'Action']);
    assert.ok((ds[0].ts as string[]).includes('rds:DeleteDBInstance') && !(ds[0].rust as string[]).includes('rds:DeleteDBInstance'));
    assert.match(report(ds), /expire-snapshots ExpireManagedSnapshots Action/);
  });

  test('one more resource scope', () => {
    const ds = changed(backup, 'restore', (p) => { statement(p, 'restore', 'TagManagedSnapshots').resources.push('rds:restore-tests'); });
    assert.equal(ds.length, 1, report(ds));
    assert.deepEqual([ds[0].step, ds[0].sid, ds[0].field], ['restore', 'TagManagedSnapshots', 'Resource']);
    assert.ok((ds[0].ts as string[]).includes('arn:aws:rds:us-east-1:222222222222:db:snapferry-*'), report(ds));
  });

  test('a region more (home to pipeline)', () => {
    const ds = changed(backup, 'restore', (p) => { statement(p, 'restore', 'DeleteRestoreTestsOnly').regions = 'pipeline'; });
    assert.deepEqual(ds.map((d) => [d.step, d.sid, d.field]), [['restore', 'DeleteRestoreTestsOnly', 'Resource']], report(ds));
  });

  test('one more condition', () => {
    const ds = changed(backup, 'reconcile-copies', (p) => { (statement(p, 'reconcile-copies', 'Describe').conditions ??= []).push('resource-tag:managed'); });
    assert.deepEqual(ds.map((d) => [d.step, d.sid, d.field]), [['reconcile-copies', 'Describe', 'Condition']], report(ds));
    assert.equal(ds[0].rust, undefined);
  });

  test('a statement fewer', () => {
    const ds = changed(backup, 'copy-shared-snapshot', (p) => {
      p.steps['copy-shared-snapshot'] = p.steps['copy-shared-snapshot'].filter((s) => s.sid !== 'SourceSharingKeysUse');
    });
    // Split by kms:ViaService into one statement per source region on both sides.
    assert.deepEqual(ds.map((d) => [d.step, d.sid, d.field, d.ts === undefined]), [
      ['copy-shared-snapshot', 'SourceSharingKeysUseEuWest1', 'statement', true],
      ['copy-shared-snapshot', 'SourceSharingKeysUseUsEast1', 'statement', true],
    ], report(ds));
  });

  test('normalization: order of lists and a one-element list against its string are no difference', () => {
    const a = { Sid: 'X', Effect: 'Allow', Action: ['b:B', 'a:A'], Resource: 'r', Condition: { StringEquals: { k: ['v'], m: ['2', '1'] } } };
    const b = { Sid: 'X', Effect: 'Allow', Action: ['a:A', 'b:B'], Resource: ['r'], Condition: { StringEquals: { k: 'v', m: ['1', '2'] } } };
    assert.deepEqual(differences('s', [a], [b]), []);
    assert.deepEqual(differences('s', [a], [{ ...b, Resource: ['r', 's'] }]).map((d) => [d.sid, d.field]), [['X', 'Resource']]);
  });
});
