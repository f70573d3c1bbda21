// Shared test setup: the example config synthesized against placeholder Lambda packages,
// so the tests need neither a Rust build nor AWS credentials.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { buildDeployment, Deployment } from '../lib/app';
import { Config, loadConfig } from '../lib/config';
import { INFRA_DIR, loadRouting, Routing } from '../lib/routing';
import { LAMBDA_PACKAGE, lambdaZip } from '../lib/step';

export const routing: Routing = loadRouting();
export const exampleConfig = (): Config => loadConfig(path.join(INFRA_DIR, 'config', 'example.json'));

/** The example with the source backing up EBS volumes too (the backup account copies every kind by default). */
export function ebsConfig(): Config {
  const c = exampleConfig();
  c.sources[0].kinds = [...c.sources[0].kinds, 'ebs'];
  return c;
}

/** A cargo-lambda-shaped output dir holding the one package every step runs, as an empty zip. */
export function placeholderAssets(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'snapferry-assets-'));
  const zip = lambdaZip(dir);
  fs.mkdirSync(path.dirname(zip));
  const comment = Buffer.from(LAMBDA_PACKAGE);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0); // end-of-central-directory record of an empty zip
  eocd.writeUInt16LE(comment.length, 20);
  fs.writeFileSync(zip, Buffer.concat([eocd, comment]));
  return dir;
}

/** The feature flags the CLI app runs with (cdk.json), so tests synthesize the same templates. */
export function newApp(): App {
  const cdkJson = JSON.parse(fs.readFileSync(path.join(INFRA_DIR, 'cdk.json'), 'utf8'));
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'snapferry-cdkout-'));
  return new App({ context: cdkJson.context, outdir });
}

export interface Synth {
  app: App;
  deployment: Deployment;
  target: Template;
  source: Template;
  regions: Template[];
}

export function synthExample(config: Config = exampleConfig()): Synth {
  const app = newApp();
  const deployment = buildDeployment(app, config, routing, placeholderAssets());
  return {
    app,
    deployment,
    target: Template.fromStack(deployment.target),
    source: Template.fromStack(deployment.sources[0]),
    regions: deployment.regions.map((r) => Template.fromStack(r)),
  };
}

export type Resources = Record<string, { Type: string; Properties: any; [k: string]: any }>;

export function resources(t: Template, type: string): Resources {
  return t.findResources(type) as Resources;
}

/** The one resource of `type` whose properties contain `match` (shallow). */
export function only(t: Template, type: string, match: Record<string, unknown>): { id: string; Properties: any } {
  const found = Object.entries(resources(t, type)).filter(([, r]) =>
    Object.entries(match).every(([k, v]) => JSON.stringify(r.Properties?.[k]) === JSON.stringify(v)));
  if (found.length !== 1) throw new Error(`expected one ${type} with ${JSON.stringify(match)}, found ${found.length}`);
  return { id: found[0][0], Properties: found[0][1].Properties };
}

export const templateFor = (s: Synth, account: 'source' | 'target'): Template => (account === 'source' ? s.source : s.target);

export interface Statement { Sid?: string; Effect: string; Action: string | string[]; Resource: any; Condition?: any; Principal?: any }
export const list = <T>(x: T | T[] | undefined): T[] => (x === undefined ? [] : Array.isArray(x) ? x : [x]);

/** Every statement of every IAM policy attached to a role in the template, with the role's logical id. */
export function roleStatements(t: Template): { role: string; st: Statement }[] {
  return Object.values(resources(t, 'AWS::IAM::Policy')).flatMap((p) =>
    (p.Properties.PolicyDocument.Statement as Statement[]).map((st) => ({ role: p.Properties.Roles[0].Ref as string, st })));
}

/** The logical id of a function's role. */
export function stepRole(t: Template, fnName: string): string {
  return only(t, 'AWS::Lambda::Function', { FunctionName: fnName }).Properties.Role['Fn::GetAtt'][0];
}

/** The statements of a function's role. */
export function statementsOf(t: Template, fnName: string): Statement[] {
  const role = stepRole(t, fnName);
  return roleStatements(t).filter((x) => x.role === role).map((x) => x.st);
}
