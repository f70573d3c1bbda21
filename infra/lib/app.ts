// The whole deployment for one configuration: the target stack, one key stack per extra
// region, one stack per source account, all checked by cdk-nag's AwsSolutions pack.
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { Config } from './config';
import { TargetRegionStack } from './region-stack';
import { Routing } from './routing';
import { SourceStack } from './source-stack';
import { TargetStack } from './target-stack';

export interface Deployment {
  target: TargetStack;
  regions: TargetRegionStack[];
  sources: SourceStack[];
}

export const targetStackName = () => 'SnapferryTarget';
export const regionStackName = (region: string) => `SnapferryTargetKey-${region}`;
export const sourceStackName = (account: string) => `SnapferrySource-${account}`;

export function buildDeployment(app: App, config: Config, routing: Routing, assetsDir: string): Deployment {
  const t = config.target;
  const regions = t.extraRegions.map((region) =>
    new TargetRegionStack(app, regionStackName(region), {
      env: { account: t.account, region },
      description: `snapferry backup account: key for copies in ${region}`,
      key: { breakGlassRoleArn: t.breakGlassRoleArn },
    }));
  const target = new TargetStack(app, targetStackName(), {
    env: { account: t.account, region: t.region },
    description: 'snapferry backup account: pipeline bus, copy and restore-test steps',
    config, routing, assetsDir,
  });
  // Copies to an extra region need its key to exist first.
  regions.forEach((r) => target.addStackDependency(r));

  // No stack dependency on the target stack, although the forwarding rule needs its bus:
  // each account is deployed with its own credentials (the backup account trusts no other
  // account to deploy into it), and the CLI would otherwise try to deploy the target stack
  // with the source account's credentials. docs/deploy.md orders the deploys instead.
  const sources = config.sources.map((source) =>
    new SourceStack(app, sourceStackName(source.account), {
      env: { account: source.account, region: source.region },
      description: 'snapferry source account: snapshot, share and forward to the backup account',
      config, source, routing, assetsDir,
    }));

  // Runs at synth: `cdk synth` and `cdk deploy` fail on any unacknowledged finding.
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
  return { target, regions, sources };
}
