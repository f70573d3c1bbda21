// The environment contract shared with the step code and the local host
// (../shared/environment.json): every variable a step may be given, and which ones it must
// be given. The Step construct checks each function's environment against it at synth, so
// a stack cannot set a variable the code does not declare or leave out a required one.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { INFRA_DIR } from './routing';

export interface EnvVar {
  name: string;
  required: boolean;
  /**
   * Set by the deployment itself, never by the config: the Step construct's QUEUE_URL, DLQ_URL,
   * PIPELINE_BUS, and other steps' queue URLs (StepSettings.queueUrls: the reconcile steps').
   */
  platform: boolean;
  /** The step's own default when the variable is unset or blank; null: none. */
  default: string | null;
  doc: string;
}

export interface EnvironmentContract {
  /** Declared for every step. */
  common: EnvVar[];
  /** Declared for one step, by its routing.json name. */
  functions: Record<string, EnvVar[]>;
}

export const ENVIRONMENT_FILE = path.resolve(INFRA_DIR, '..', 'shared', 'environment.json');

const NAME = /^[A-Z][A-Z0-9_]*$/;

export function loadEnvironment(file: string = ENVIRONMENT_FILE): EnvironmentContract {
  const contract = JSON.parse(fs.readFileSync(file, 'utf8')) as EnvironmentContract;
  // A malformed contract would otherwise let any environment through, or refuse a valid one obscurely.
  const check = (where: string, vars: unknown) => {
    if (!Array.isArray(vars)) throw new Error(`${file}: ${where} must be a list of variables`);
    for (const v of vars as EnvVar[]) {
      const at = `${file}: ${where} ${JSON.stringify(v?.name)}`;
      if (typeof v?.name !== 'string' || !NAME.test(v.name)) throw new Error(`${at}: name must be an UPPER_SNAKE_CASE string`);
      if (typeof v.required !== 'boolean' || typeof v.platform !== 'boolean') throw new Error(`${at}: required and platform must be true or false`);
      if (v.default !== null && typeof v.default !== 'string') throw new Error(`${at}: default must be a string or null`);
      if (v.required && v.default !== null) throw new Error(`${at}: a required variable cannot have a default`);
      if (typeof v.doc !== 'string' || v.doc.trim() === '') throw new Error(`${at}: doc must say what it is`);
    }
  };
  check('common', contract.common);
  if (contract.functions === null || typeof contract.functions !== 'object' || Array.isArray(contract.functions)) {
    throw new Error(`${file}: functions must map each step's name to its variables`);
  }
  for (const [fn, vars] of Object.entries(contract.functions)) {
    check(`functions.${fn}`, vars);
    const names = [...contract.common, ...vars].map((v) => v.name);
    const twice = names.find((n, i) => names.indexOf(n) !== i);
    if (twice !== undefined) throw new Error(`${file}: ${twice} is declared twice for ${fn} (common and per-function lists included)`);
  }
  return contract;
}

let loaded: EnvironmentContract | undefined;
/** shared/environment.json, read once. */
export function environmentContract(): EnvironmentContract {
  loaded ??= loadEnvironment();
  return loaded;
}

/** Every variable declared for one step (common ones first), or undefined if the contract does not know the step. */
export function declaredFor(contract: EnvironmentContract, step: string): EnvVar[] | undefined {
  const own = Object.prototype.hasOwnProperty.call(contract.functions, step) ? contract.functions[step] : undefined;
  return own === undefined ? undefined : [...contract.common, ...own];
}

/**
 * A step's full environment: `platform` (what the deployment sets) plus `settings` (what the
 * stack sets from the config; blank values are left out, the step treats blank as unset).
 * Throws, naming the step and the variable, if either sets a variable the contract does not
 * declare for the step, if the settings set a platform variable, or if a required one is missing.
 */
export function stepEnvironment(
  contract: EnvironmentContract, step: string,
  platform: Record<string, string>, settings: Record<string, string | undefined>,
): Record<string, string> {
  const where = `step ${step}`;
  const declared = declaredFor(contract, step);
  if (declared === undefined) throw new Error(`${where}: shared/environment.json declares no variables for it (add it under "functions")`);
  const byName = new Map(declared.map((v) => [v.name, v]));

  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(platform)) {
    const v = byName.get(name);
    if (v === undefined) throw new Error(`${where}: the Step construct sets ${name}, which shared/environment.json does not declare for it`);
    if (!v.platform) throw new Error(`${where}: the Step construct sets ${name}, which shared/environment.json does not mark as platform`);
    env[name] = value;
  }
  for (const [name, value] of Object.entries(settings)) {
    const v = byName.get(name);
    if (v === undefined) throw new Error(`${where}: environment variable ${name} is not declared for it in shared/environment.json`);
    if (v.platform) throw new Error(`${where}: ${name} is a platform variable (set by the Step construct), not a setting`);
    if (value !== undefined && value.trim() !== '') env[name] = value;
  }
  const missing = declared.filter((v) => v.required && !(v.name in env)).map((v) => v.name);
  if (missing.length > 0) {
    throw new Error(`${where}: required environment variable${missing.length > 1 ? 's' : ''} ${missing.join(', ')} not set (shared/environment.json)`);
  }
  return env;
}
