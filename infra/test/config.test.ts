// The config file is validated before anything is built; errors name the bad field.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { ConfigError, loadConfig, parseConfig } from '../lib/config';
import { INFRA_DIR } from '../lib/routing';

const examplePath = path.join(INFRA_DIR, 'config', 'example.json');
const example = () => JSON.parse(fs.readFileSync(examplePath, 'utf8'));

describe('config', () => {
  test('the example is valid and uses only the two documentation accounts', () => {
    const c = loadConfig(examplePath);
    assert.equal(c.target.account, '222222222222');
    assert.deepEqual(c.sources.map((s) => s.account), ['111111111111']);
    assert.equal(c.target.region, c.sources[0].region, 'shared snapshots are copied in the region they are shared in');
  });

  const cases: [string, (c: any) => void, RegExp][] = [
    ['bad account id', (c) => { c.sources[0].account = '12345'; }, /^sources\[0\]\.account: expected a 12-digit AWS account id, got "12345"$/],
    ['bad region', (c) => { c.target.region = 'Ireland'; }, /^target\.region: expected an AWS region name/],
    ['unknown kind', (c) => { c.sources[0].kinds = ['db-instance', 'dynamodb']; }, /^sources\[0\]\.kinds\[1\]: expected db-instance, db-cluster, ebs/],
    ['ebs before the stacks support it', (c) => { c.sources[0].kinds = ['ebs']; }, /^sources\[0\]\.kinds: "ebs" cannot be deployed yet/],
    ['misspelt field', (c) => { c.target.restoreTest.everyNTh = 3; }, /^target\.restoreTest\.everyNTh: unknown field$/],
    ['missing field', (c) => { delete c.target.copy.recheckSeconds; }, /^target\.copy\.recheckSeconds: expected an integer from 1 to 900, got undefined$/],
    ['invalid regex', (c) => { c.sources[0].selection.regex = '(prod'; }, /^sources\[0\]\.selection\.regex: not a valid regular expression/],
    ['empty selection', (c) => { c.sources[0].selection = { identifiers: [] }; }, /^sources\[0\]\.selection: selects nothing/],
    ['log retention CloudWatch does not offer', (c) => { c.logRetentionDays = 31; }, /^logRetentionDays: expected one of 1, 3, 5/],
    // The copy step's concurrency is the SQS event source's maximum concurrency (2..1000), no
    // longer reserved concurrency: the old field name is refused, not silently ignored.
    ['the old reservedConcurrency field', (c) => { delete c.target.copy.maxConcurrency; c.target.copy.reservedConcurrency = 2; },
      /^target\.copy\.reservedConcurrency: renamed to maxConcurrency \(the SQS event source's maximum concurrency/],
    ['the old reservedConcurrency field next to the new one', (c) => { c.target.copy.reservedConcurrency = 2; },
      /^target\.copy\.reservedConcurrency: renamed to maxConcurrency/],
    ['copy concurrency below the event source minimum of 2', (c) => { c.target.copy.maxConcurrency = 1; },
      /^target\.copy\.maxConcurrency: expected an integer from 2 to 1000, got 1$/],
    ['copy concurrency above the event source maximum of 1000', (c) => { c.target.copy.maxConcurrency = 1001; },
      /^target\.copy\.maxConcurrency: expected an integer from 2 to 1000, got 1001$/],
    ['missing copy concurrency', (c) => { delete c.target.copy.maxConcurrency; },
      /^target\.copy\.maxConcurrency: expected an integer from 2 to 1000, got undefined$/],
    ['extra region equal to home', (c) => { c.target.extraRegions = ['eu-west-1']; }, /^target\.extraRegions: must not contain the home region eu-west-1$/],
    ['source = target', (c) => { c.sources[0].account = c.target.account; }, /^sources\[0\]\.account: must differ from target\.account/],
    ['duplicate source', (c) => { c.sources.push({ ...c.sources[0] }); }, /^sources\[1\]\.account: 111111111111 is listed twice$/],
    ['no sources', (c) => { c.sources = []; }, /^sources: expected a non-empty list$/],
    ['bad tag selector', (c) => { c.sources[0].selection.tag = '=x'; }, /^sources\[0\]\.selection\.tag: expected "key" or "key=value"/],
  ];
  for (const [name, mutate, message] of cases) {
    test(`rejects ${name}`, () => {
      const c = example();
      mutate(c);
      assert.throws(() => parseConfig(c), (e: Error) => e instanceof ConfigError && message.test(e.message));
    });
  }

  test('loadConfig names the file', () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'snapferry-config-')), 'bad.json');
    const c = example();
    c.lambdaMemoryMb = 64;
    fs.writeFileSync(file, JSON.stringify(c));
    assert.throws(() => loadConfig(file), new RegExp(`^ConfigError: ${file}: lambdaMemoryMb: expected an integer from 128`));
  });
});
