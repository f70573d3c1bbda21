#!/usr/bin/env node
// cdk entry point. Context: `config` (default config/example.json) and `lambdaAssets`
// (default ../target/lambda, cargo-lambda's output), both relative to infra/.
import * as path from 'node:path';
import { App } from 'aws-cdk-lib';
import { buildDeployment } from '../lib/app';
import { ConfigError, loadConfig } from '../lib/config';
import { INFRA_DIR, loadRouting } from '../lib/routing';

const app = new App();
const fromInfra = (key: string) => path.resolve(INFRA_DIR, String(app.node.getContext(key)));
try {
  buildDeployment(app, loadConfig(fromInfra('config')), loadRouting(), fromInfra('lambdaAssets'));
} catch (e) {
  // A config mistake is the operator's to fix: show the message, not a stack trace.
  if (!(e instanceof ConfigError)) throw e;
  console.error(`snapferry: invalid configuration: ${e.message}`);
  process.exit(1);
}
app.synth();
