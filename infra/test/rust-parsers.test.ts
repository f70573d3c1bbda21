// The stacks render each step's environment, and two other readers hold it against their own
// idea of it: the Rust the Lambdas run, which parses it at init, and the local host (the demo
// and the end-to-end tests), which renders its own. Both through the snapferry-local binary:
// - `check-env` parses environments exactly as each step's init does: every environment the
//   stacks render from an accepted configuration (test/accepted.ts) must pass, or the CDK
//   would deploy functions that fail their init;
// - `local-env` prints the local host's environments with every optional feature on: the
//   stacks, with the same features on, must set the same variables for each step, but for
//   the one-sided ones listed below with the reason.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { Stack, Token } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { INFRA_DIR } from '../lib/routing';
import { ACCEPTED, acceptedConfig, everything } from './accepted';
import { routing, Synth, synthExample } from './helpers';

const ROOT = path.resolve(INFRA_DIR, '..');
/** The binary: SNAPFERRY_LOCAL_BIN (a relative path is from the repository root, where the scripts run), else the debug build. */
const BIN = path.resolve(ROOT, process.env.SNAPFERRY_LOCAL_BIN || path.join('target', 'debug', 'snapferry-local'));

/** Runs snapferry-local; fails (never skips) when it is not built. */
function snapferryLocal(args: string[], input?: string): { status: number | null; output: string } {
  assert.ok(fs.existsSync(BIN), `${BIN} is missing: run \`cargo build -p snapferry-local\` (scripts/test-infra does), `
    + 'or set SNAPFERRY_LOCAL_BIN to the binary');
  const r = spawnSync(BIN, args, { input, encoding: 'utf8', cwd: ROOT, maxBuffer: 64 * 1024 * 1024 });
  if (r.error) throw r.error;
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

/** One function's environment, as check-env reads it and local-env prints it. */
interface FunctionEnvironment {
  function: string;
  /** The routing.json name of the step: the function's Handler. */
  step: string;
  environment: Record<string, string>;
}

/**
 * The string a CloudFormation value of `variable` becomes at deploy time, in a stack of
 * `account` and `region` whose resources are `template`'s: only the shapes the stacks render
 * today. Any other fails, naming it, so a new one is given a placeholder of the right form
 * (an ARN where the step wants an ARN) rather than passed on as JSON.
 */
function placeholder(value: unknown, variable: string, template: Record<string, any>, account: string, region: string): string {
  if (typeof value === 'string') return value;
  const v = value as Record<string, any>;
  const keys = v !== null && typeof v === 'object' ? Object.keys(v) : [];
  const resource = (id: unknown) => (typeof id === 'string' ? template.Resources?.[id] : undefined);
  const literal = (name: unknown, what: string): string => {
    if (typeof name !== 'string') throw new Error(`${variable}: ${what} is ${JSON.stringify(name)}, not a fixed name`);
    return name;
  };
  if (keys.length === 1 && keys[0] === 'Ref') {
    const r = resource(v.Ref);
    // A queue's Ref is its URL; a DB subnet group's, its name.
    if (r?.Type === 'AWS::SQS::Queue') return `https://sqs.${region}.amazonaws.com/${account}/${literal(r.Properties?.QueueName, `${v.Ref}'s QueueName`)}`;
    if (r?.Type === 'AWS::RDS::DBSubnetGroup') return literal(r.Properties?.DBSubnetGroupName, `${v.Ref}'s DBSubnetGroupName`);
  }
  if (keys.length === 1 && keys[0] === 'Fn::GetAtt' && Array.isArray(v['Fn::GetAtt']) && v['Fn::GetAtt'].length === 2) {
    const [id, attribute] = v['Fn::GetAtt'];
    const r = resource(id);
    if (r?.Type === 'AWS::KMS::Key' && attribute === 'Arn') return `arn:aws:kms:${region}:${account}:key/${id}`;
    if (r?.Type === 'AWS::EC2::SecurityGroup' && attribute === 'GroupId') return 'sg-0123456789abcdef0';
  }
  throw new Error(`${variable}: no placeholder for ${JSON.stringify(value)}: give placeholder() (test/rust-parsers.test.ts) one of the form the step reads`);
}

/** Every function of the stacks of `s` (the target stack and the source stack), as check-env reads them. */
function functionEnvironments(s: Synth): FunctionEnvironment[] {
  return ([[s.deployment.target, s.target], [s.deployment.sources[0], s.source]] as [Stack, Template][]).flatMap(([stack, template]) => {
    assert.ok(!Token.isUnresolved(stack.account) && !Token.isUnresolved(stack.region), `${stack.stackName}: account and region must be known at synth`);
    const json = template.toJSON();
    return Object.values(json.Resources as Record<string, any>).filter((r) => r.Type === 'AWS::Lambda::Function').map((r) => {
      const p = r.Properties;
      const vars: Record<string, unknown> = p.Environment?.Variables ?? {};
      return {
        function: p.FunctionName,
        step: p.Handler,
        environment: Object.fromEntries(Object.entries(vars).map(([k, v]) =>
          [k, placeholder(v, `${p.FunctionName}'s ${k}`, json, stack.account, stack.region)])),
      };
    });
  });
}

describe('snapferry-local check-env: the steps\' own parsers accept what the stacks render', () => {
  test('check-env refuses an environment its step refuses, naming the variable (so a pass below means something)', () => {
    const example = functionEnvironments(synthExample(acceptedConfig(ACCEPTED[0])));
    const restore = example.find((f) => f.step === 'restore')!;
    const r = snapferryLocal(['check-env'], JSON.stringify([{ ...restore, environment: { ...restore.environment, RESTORE_EVERY_NTH: '0' } }]));
    assert.equal(r.status, 1, r.output);
    assert.match(r.output, /^REFUSED .*restore.*RESTORE_EVERY_NTH/m);
  });

  for (const sample of ACCEPTED) {
    test(`${sample.name}: every function's environment`, () => {
      const functions = functionEnvironments(synthExample(acceptedConfig(sample)));
      // Each step once (one source account): none left out of the check.
      assert.deepEqual(functions.map((f) => f.step).sort(), routing.functions.map((f) => f.name).sort());
      const r = snapferryLocal(['check-env'], JSON.stringify(functions));
      assert.equal(r.status, 0, `the steps refuse an environment the stacks render from this accepted configuration:\n${r.output}`);
    });
  }
});

/**
 * Variables one side sets and the other leaves unset, by design: the variable, who sets it,
 * the steps (all when absent), and why.
 */
const ONE_SIDED: { variable: string; setBy: 'stacks' | 'local host'; steps?: string[]; why: string }[] = [
  {
    variable: 'ACCOUNT_ID', setBy: 'stacks',
    why: 'the stacks know the account at deploy time, so the Lambda runtime (Clients::from_env) need not ask STS for it; the '
      + 'local host builds each step\'s clients itself, for the step\'s role in its account (local/src/deploy.rs), and nothing '
      + 'there would read it',
  },
  {
    variable: 'RETRY_BASE_SECONDS', setBy: 'local host',
    why: 'the local host backs off 1 s, not the contract\'s 10 s, so runs on the emulator take seconds; the config has no '
      + 'field for it and the Lambdas use the contract\'s default (infra/README.md)',
  },
  {
    variable: 'RECHECK_SECONDS', setBy: 'local host', steps: ['create-snapshot', 'expire-snapshots', 'expire-copies', 'reconcile-snapshots', 'reconcile-copies'],
    why: 'the local host re-checks every second on the emulator; the config sets it only where it has a field for it '
      + '(share-snapshot, copy-shared-snapshot, restore), elsewhere the Lambdas use the contract\'s default (infra/README.md)',
  },
];
const oneSided = (step: string, variable: string, setBy: 'stacks' | 'local host') =>
  ONE_SIDED.some((o) => o.variable === variable && o.setBy === setBy && (o.steps === undefined || o.steps.includes(step)));

describe('snapferry-local local-env: the stacks and the local host set the same variables', () => {
  const stacks = new Map(functionEnvironments(synthExample(acceptedConfig(everything))).map((f) => [f.step, f.environment]));
  let rendered: Map<string, Record<string, string>> | undefined;
  const localHost = () => {
    if (rendered === undefined) {
      const r = snapferryLocal(['local-env']);
      assert.equal(r.status, 0, r.output);
      rendered = new Map((JSON.parse(r.output) as FunctionEnvironment[]).map((f) => [f.step, f.environment]));
    }
    return rendered;
  };
  // A blank value is an unset one: the stacks leave blank values out (stepEnvironment), and
  // the steps read a blank variable as unset (the local host renders DATA_CHECK_CA_BUNDLE
  // blank, for RDS's CAs, which the binary carries).
  const names = (env: Record<string, string>) => Object.keys(env).filter((k) => env[k].trim() !== '');

  test('the local host renders every step of routing.json, and only those', () => {
    assert.deepEqual([...localHost().keys()].sort(), routing.functions.map((f) => f.name).sort());
  });

  for (const fn of routing.functions) {
    test(`${fn.name}: the same variables, but for those one side sets by design`, () => {
      const cdk = names(stacks.get(fn.name) ?? {});
      const local = names(localHost().get(fn.name) ?? {});
      const onlyStacks = cdk.filter((v) => !local.includes(v) && !oneSided(fn.name, v, 'stacks')).sort();
      const onlyLocal = local.filter((v) => !cdk.includes(v) && !oneSided(fn.name, v, 'local host')).sort();
      assert.deepEqual({ onlyStacks, onlyLocal }, { onlyStacks: [], onlyLocal: [] },
        `${fn.name}: the stacks set ${onlyStacks.join(', ') || 'nothing'} that the local host does not, and the local host sets `
        + `${onlyLocal.join(', ') || 'nothing'} that the stacks do not (with the features of test/accepted.ts's everything on)`);
    });
  }

  test('every one-sided variable listed is still one-sided somewhere (the list does not outlive its reasons)', () => {
    for (const o of ONE_SIDED) {
      const steps = o.steps ?? routing.functions.map((f) => f.name);
      const [setter, other] = o.setBy === 'stacks' ? [stacks, localHost()] : [localHost(), stacks];
      const differs = steps.filter((s) => names(setter.get(s) ?? {}).includes(o.variable) && !names(other.get(s) ?? {}).includes(o.variable));
      assert.deepEqual(differs, steps, `${o.variable}: listed as set by the ${o.setBy} alone in ${steps.join(', ')}`);
    }
  });
});
