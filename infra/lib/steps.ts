// Builds the steps routing.json assigns to one account, each with its settings.
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { acknowledgeWildcards } from './nag';
import { Routing } from './routing';
import { Step, StepProps } from './step';

/**
 * What differs between steps: their environment (checked by the Step construct against
 * shared/environment.json), their IAM statements, their concurrency.
 */
export interface StepSettings {
  readonly environment: Record<string, string | undefined>;
  readonly statements: iam.PolicyStatement[];
  readonly maxConcurrency?: number;
}

type Common = Omit<StepProps, 'routing' | 'fn' | 'environment' | 'maxConcurrency'>;

export function stepsFor(
  scope: Construct, account: 'source' | 'target', routing: Routing,
  settings: Record<string, StepSettings>, common: Common,
): Step[] {
  const fns = routing.functions.filter((f) => f.account === account);
  // A step added to routing.json must get its permissions here before it can deploy.
  const missing = fns.filter((f) => !(f.name in settings)).map((f) => f.name);
  if (missing.length > 0) throw new Error(`routing.json has ${account} functions the ${account} stack does not configure: ${missing.join(', ')}`);
  const extra = Object.keys(settings).filter((n) => !fns.some((f) => f.name === n));
  if (extra.length > 0) throw new Error(`the ${account} stack configures functions routing.json does not have: ${extra.join(', ')}`);

  return fns.map((fn) => {
    const s = settings[fn.name];
    const step = new Step(scope, pascal(fn.name), {
      ...common, routing, fn, environment: s.environment, maxConcurrency: s.maxConcurrency,
    });
    s.statements.forEach((st) => step.role.addToPrincipalPolicy(st));
    acknowledgeWildcards(step.role, s.statements);
    return step;
  });
}

const pascal = (s: string) => s.replace(/(^|-)([a-z])/g, (_, __, c: string) => c.toUpperCase());
