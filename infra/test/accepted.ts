// Configurations the config validator accepts, each the example (config/example.json) with one
// change, as raw JSON: read by config.test.ts, which holds that parseConfig accepts every one,
// and by rust-parsers.test.ts, which holds that the steps' own parsers (the Rust the Lambdas
// run at init) accept every environment the stacks render from them. A grammar sample the
// validator accepts belongs here, so the Rust side sees it too.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Config, MAX_DATA_CHECKS_BYTES, parseConfig } from '../lib/config';
import { INFRA_DIR, loadRouting } from '../lib/routing';

export interface Sample {
  name: string;
  /** Applied to the example's raw JSON. */
  change: (c: any) => void;
}

export const exampleJson = (): any => JSON.parse(fs.readFileSync(path.join(INFRA_DIR, 'config', 'example.json'), 'utf8'));

/** The example with `s` applied, parsed (and so validated) as `cdk synth` would. */
export const acceptedConfig = (s: Sample): Config => {
  const c = exampleJson();
  s.change(c);
  return parseConfig(c);
};

/** A source data check configuration: the databases, and the network share-snapshot runs in. */
export const sourceDataChecks = () => ({
  databases: [
    { resources: '^prod-orders$', database: 'app', secret: 'arn:aws:secretsmanager:eu-west-1:111111111111:secret:orders-reader-AbCdEf' },
    { resources: '^prod-' },
  ],
  vpcId: 'vpc-0123456789abcdef0',
  subnetIds: ['subnet-0123456789abcdef0', 'subnet-0123456789abcdef1'],
  databaseSecurityGroupId: 'sg-0123456789abcdef0',
});

/** SQL that makes DATA_CHECKS exactly MAX_DATA_CHECKS_BYTES long with one database of one probe. */
const sqlAtTheLimit = () => {
  const size = (sql: string) => Buffer.byteLength(JSON.stringify({ databases: [{ resources: '^a$', probes: [{ name: 'p', sql, min: 0 }] }] }));
  return 'x'.repeat(MAX_DATA_CHECKS_BYTES - size(''));
};

/**
 * Every optional feature on, as the local host renders its environments for `snapferry-local
 * local-env` (local/src/pipeline.rs, PipelineOptions::everything): every kind, selection by
 * identifiers, regex, tag and instance tag, both retention lists, an extra region, the copy
 * regexes, copy slots, budgets per source (with the local host's second source, 444444444444),
 * data checks and source data checks, a governance lock. Not here, as the local host has no
 * option for them: a restore instance class and zone, the compliance opt-in; nor option groups
 * (target.copy.optionGroups), which PipelineOptions::everything leaves unset (OPTION_GROUPS blank).
 */
export const everything: Sample = {
  name: 'every optional feature on (as snapferry-local local-env)',
  change: (c) => {
    const s = c.sources[0];
    s.kinds = ['db-instance', 'db-cluster', 'ebs'];
    s.selection = { identifiers: ['orders'], regex: '.*', tag: 'backup=daily', instanceTag: 'fleet=web' };
    s.retention = [{ keep_last: 1 }];
    s.dataChecks = { ...sourceDataChecks(), databases: [{ resources: '.*', database: 'app' }] };
    c.target.retention = [{ resources: '^prod-', regions: ['eu-west-1'], keep_last: 2 }, { daily: 7, monthly: 12 }];
    c.target.copy.descriptionRegex = '.*';
    c.target.copy.copySlots = { 'db-instance': 20, 'db-cluster': 5, ebs: 20 };
    // COPIES_HELD_PER_SOURCE=40,444444444444=10 and COPIES_IN_FLIGHT_PER_SOURCE=4, as the local host's.
    c.sources.push({ ...structuredClone(s), account: '444444444444' });
    c.target.copy.budgets = { copiesHeld: 40, copiesInFlight: 4, sources: { 444444444444: { copiesHeld: 10 } } };
    Object.assign(c.target.restoreTest, { lockMode: 'governance', lockDays: 7 });
  },
};

const withoutDataChecks = (c: any) => { delete c.target.restoreTest.dataChecks; };

/**
 * The configurations the infra tests treat as accepted (config.test.ts, data-checks.test.ts,
 * source-data-checks.test.ts, environment.test.ts), and a few more for grammar they leave out.
 */
export const ACCEPTED: Sample[] = [
  { name: 'the example', change: () => {} },

  // config.test.ts
  {
    name: 'ebs with an instance tag, a zone, a compliance lock and a break-glass role',
    change: (c) => {
      c.sources[0].kinds = ['db-instance', 'ebs'];
      c.sources[0].selection.instanceTag = 'backup=snapferry';
      Object.assign(c.target.restoreTest, { availabilityZone: 'eu-west-1b', lockMode: 'compliance', lockDays: 90, lockComplianceOptIn: true });
      c.target.breakGlassRoleArn = 'arn:aws:iam::222222222222:role/snapferry-break-glass';
    },
  },
  {
    name: 'ebs only, selected by an instance tag key alone, a governance lock',
    change: (c) => {
      c.sources[0].kinds = ['ebs'];
      c.sources[0].selection = { identifiers: [], instanceTag: 'backup' };
      c.target.kinds = ['ebs'];
      withoutDataChecks(c);
      Object.assign(c.target.restoreTest, { lockMode: 'governance', availabilityZone: 'eu-west-1c' });
    },
  },
  {
    name: 'retention and expire left to the steps\' defaults',
    change: (c) => { delete c.target.retention; delete c.target.expire; delete c.sources[0].retention; delete c.sources[0].expire; },
  },
  {
    name: 'one expire field, the others the step\'s defaults',
    change: (c) => { c.sources[0].expire = { maxDeletesPerRun: 5 }; },
  },
  {
    name: 'every retention criterion at its bounds, regions, $comment, an empty source list, every expire field',
    change: (c) => {
      c.target.retention = [
        { $comment: 'orders: a year of monthlies', resources: '^prod-orders', keep_last: 0, max_age_days: 1, daily: 0, weekly: 1, monthly: 12, yearly: 100000 },
        { regions: ['eu-central-1', 'eu-west-1'], resources: '.*', keep_last: 3 },
        { keep_last: 7 },
      ];
      c.sources[0].retention = [];
      c.target.expire = { dryRun: false, allowDeleteAll: true, maxDeletesPerRun: 1000, quotaWarningPercent: 100 };
    },
  },
  { name: 'a source rule naming its own region', change: (c) => { c.sources[0].retention = [{ regions: ['eu-west-1'], keep_last: 3 }]; } },
  { name: 'reconcile left to the steps\' defaults', change: (c) => { delete c.sources[0].reconcile; delete c.target.reconcile; } },
  {
    name: 'the longest grace and RPO',
    change: (c) => { c.sources[0].reconcile = { graceMinutes: 10080 }; c.target.reconcile = { rpoMinutes: 525600 }; },
  },
  {
    name: 'a daily schedule, restore tests off',
    change: (c) => {
      c.sources[0].minIntervalMinutes = 1440;
      c.sources[0].reconcile = { graceMinutes: 1, scheduleMinutes: 1440 };
      c.target.restoreTest.enabled = false;
      withoutDataChecks(c);
      c.target.reconcile = { graceMinutes: 1, rpoMinutes: 1441 };
    },
  },
  {
    name: 'the smallest RPO, restore tests off',
    change: (c) => {
      c.sources[0].minIntervalMinutes = 10;
      c.sources[0].reconcile = { scheduleMinutes: 14 };
      c.target.restoreTest.enabled = false;
      withoutDataChecks(c);
      c.target.reconcile = { rpoMinutes: 15 };
    },
  },
  {
    name: 'data checks: tables alone, a fractional negative bound, $comment, the default timeout, endpoints in one zone',
    change: (c) => {
      c.target.restoreTest.dataChecks = {
        $comment: 'two databases',
        endpointZones: 1,
        databases: [
          { resources: '.*', tables: ['public.schema_migrations'] },
          { $comment: 'ledger', resources: '^prod-ledger$', probes: [{ $comment: 'x', name: 'drift', sql: 'select sum(amount) from ledger', min: -0.5 }] },
        ],
      };
    },
  },
  {
    name: 'DATA_CHECKS exactly at its size limit',
    change: (c) => { c.target.restoreTest.dataChecks = { databases: [{ resources: '^a$', probes: [{ name: 'p', sql: sqlAtTheLimit(), min: 0 }] }] }; },
  },

  // data-checks.test.ts
  { name: 'no data checks', change: withoutDataChecks },
  { name: 'a backup account that restores no EBS', change: (c) => { c.target.kinds = ['db-instance', 'db-cluster']; } },
  {
    name: 'a data check timeout just under the restore function\'s',
    change: (c) => { c.target.restoreTest.dataChecks.timeoutSeconds = loadRouting().functions.find((f) => f.name === 'restore')!.timeout_seconds - 1; },
  },

  // source-data-checks.test.ts
  { name: 'source data checks, one with a database and a secret', change: (c) => { c.sources[0].dataChecks = sourceDataChecks(); } },

  // environment.test.ts (which changes parsed configs; here as configs the validator accepts:
  // restore tests off without data checks, and no retention rule for a region that is gone)
  {
    name: 'identifiers and an instance tag, no extra region, restore tests off but sampled',
    change: (c) => {
      c.sources[0].kinds = ['db-instance', 'ebs'];
      c.sources[0].selection = { identifiers: ['orders', 'vol-0a1b2c3d4e5f60001'], instanceTag: 'backup' };
      c.sources[0].minIntervalMinutes = 120;
      c.sources[0].reconcile = { graceMinutes: 30, scheduleMinutes: 180 };
      c.target.extraRegions = [];
      c.target.retention = [{ keep_last: 7 }];
      c.target.restoreTest.enabled = false;
      c.target.restoreTest.everyNth = 3;
      withoutDataChecks(c);
      c.target.reconcile = { graceMinutes: 90, rpoMinutes: 720 };
    },
  },
  { name: 'a restore instance class', change: (c) => { c.target.restoreTest.instanceClass = 'db.r6g.large'; } },
  {
    name: 'an ebs-only source with an instance tag besides its regex and tag',
    change: (c) => { c.sources[0].kinds = ['ebs']; c.sources[0].selection.instanceTag = 'backup=snapferry'; },
  },
  {
    name: 'other retention and expire settings, no extra region',
    change: (c) => {
      c.target.extraRegions = [];
      c.target.retention = [{ resources: '^orders-', max_age_days: 30 }];
      c.target.expire = { dryRun: false, allowDeleteAll: true, maxDeletesPerRun: 7, quotaWarningPercent: 95 };
      c.sources[0].kinds = ['ebs'];
    },
  },

  // Grammar the tests above leave out.
  {
    name: 'data checks compared with the source and the previous copy or not, max, maxAgeMinutes, identifiers and the copy regexes',
    change: (c) => {
      c.sources[0].selection = { identifiers: ['prod-orders', 'prod-billing'] };
      c.target.copy.descriptionRegex = '^(snapferry|manual) backup of [a-z0-9-]+$';
      c.target.restoreTest.dataChecks.databases = [
        { resources: '^prod-orders$', compareWithSource: { rowTolerancePercent: 0 }, compareWithPrevious: { rowsDropPercent: 0 } },
        { resources: '^prod-billing', compareWithSource: false, compareWithPrevious: false, probes: [{ name: 'max', sql: 'select 1', max: 1e6 }] },
        { resources: '^prod-archive-', compareWithPrevious: { rowsDropPercent: 100 } },
        { resources: '^prod-', compareWithSource: { rowTolerancePercent: 12.5 }, compareWithPrevious: { rowsDropPercent: 37.5 }, probes: [{ name: 'age', sql: 'select now()', maxAgeMinutes: 5256000 }] },
      ];
    },
  },
  {
    // Escaped, what the validator refuses unescaped (look-ahead, backreference, {, [); classes, repetitions, \z, \p.
    name: 'regexes both engines read: escapes of what is refused unescaped, ASCII and Unicode classes, repetitions',
    change: (c) => {
      c.sources[0].selection.regex = '^prod-(?:orders|billing)-\\d{2,4}$';
      c.target.copy.identifierRegex = '^snapferry-[[:alnum:]-]+\\z';
      c.target.copy.descriptionRegex = '\\(?!\\) \\\\1 \\{x\\} \\[y\\]';
      c.target.retention = [{ resources: '^prod-\\p{L}+[\\w.-]*$', keep_last: 3 }, { keep_last: 7 }];
    },
  },
  {
    // Both shapes of the grammar: a bare default with accounts (held), accounts alone (in flight); the bounds; accounts out of order.
    name: 'budgets per source: a default and two source accounts, at the bounds',
    change: (c) => {
      c.sources.push({ ...structuredClone(c.sources[0]), account: '333333333333' });
      c.target.copy.budgets = {
        copiesHeld: 40,
        sources: {
          333333333333: { copiesHeld: 100000, copiesInFlight: 1000 },
          111111111111: { copiesHeld: 1, copiesInFlight: 1 },
        },
      };
    },
  },
  {
    // OPTION_GROUPS: two extra regions (rendered by region, then source), a source mapped in both, upper case, a name of 255 characters.
    name: 'option groups mapped in two extra regions, names at the bounds',
    change: (c) => {
      c.target.extraRegions = ['eu-north-1', 'eu-central-1'];
      c.target.copy.optionGroups = {
        $comment: 'the timezone option groups of the orders databases',
        'eu-north-1': { 'orders-tz': 'orders-tz-stockholm' },
        'eu-central-1': { 'orders-tz': 'orders-tz-dr', 'Billing-2': 'B', [`a${'b'.repeat(254)}`]: 'c'.repeat(255) },
      };
    },
  },
  everything,
];
