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
    ['no kind', (c) => { c.sources[0].kinds = []; }, /^sources\[0\]\.kinds: expected at least one kind$/],
    ['a kind twice', (c) => { c.sources[0].kinds = ['ebs', 'ebs']; }, /^sources\[0\]\.kinds: has duplicates$/],
    ['an unknown target kind', (c) => { c.target.kinds = ['ebs', 's3']; }, /^target\.kinds\[1\]: expected db-instance, db-cluster, ebs/],
    ['an empty target.kinds', (c) => { c.target.kinds = []; }, /^target\.kinds: expected at least one kind$/],
    ['a source kind the backup account does not copy', (c) => { c.sources[0].kinds = ['db-instance', 'ebs']; c.target.kinds = ['db-instance', 'db-cluster']; },
      /^target\.kinds: lacks "ebs", which sources\[0\]\.kinds has \(the backup account could not copy those snapshots\)$/],
    ['an instance tag without ebs', (c) => { c.sources[0].selection.instanceTag = 'backup'; },
      /^sources\[0\]\.selection\.instanceTag: selects the EBS volumes of tagged EC2 instances; the source's kinds have no "ebs"$/],
    ['a bad instance tag selector', (c) => { c.sources[0].kinds = ['ebs']; c.sources[0].selection.instanceTag = '=x'; },
      /^sources\[0\]\.selection\.instanceTag: expected "key" or "key=value"/],
    ['an unknown lock mode', (c) => { c.target.restoreTest.lockMode = 'legal-hold'; },
      /^target\.restoreTest\.lockMode: expected "governance" or "compliance", got "legal-hold"$/],
    ['a lock of 0 days', (c) => { c.target.restoreTest.lockMode = 'governance'; c.target.restoreTest.lockDays = 0; },
      /^target\.restoreTest\.lockDays: expected an integer from 1 to 36500, got 0$/],
    ['a lock longer than EBS allows', (c) => { c.target.restoreTest.lockMode = 'governance'; c.target.restoreTest.lockDays = 36501; },
      /^target\.restoreTest\.lockDays: expected an integer from 1 to 36500, got 36501$/],
    ['lockDays without lockMode', (c) => { c.target.restoreTest.lockDays = 30; },
      /^target\.restoreTest\.lockDays: only with lockMode \(unset: copies are not locked\)$/],
    ['compliance without the opt-in', (c) => { c.target.restoreTest.lockMode = 'compliance'; c.target.restoreTest.lockDays = 3650; },
      /^target\.restoreTest\.lockMode: "compliance" needs lockComplianceOptIn: true\. Once its cool-off period has passed, nobody, the account's root user included, can unlock .* for the whole 3650 days\./],
    ['compliance with the opt-in false', (c) => { c.target.restoreTest.lockMode = 'compliance'; c.target.restoreTest.lockComplianceOptIn = false; },
      /^target\.restoreTest\.lockMode: "compliance" needs lockComplianceOptIn: true/],
    ['the compliance opt-in with governance', (c) => { c.target.restoreTest.lockMode = 'governance'; c.target.restoreTest.lockComplianceOptIn = true; },
      /^target\.restoreTest\.lockComplianceOptIn: only with lockMode "compliance"$/],
    ['a lock when the backup account copies no EBS', (c) => { c.target.kinds = ['db-instance', 'db-cluster']; c.target.restoreTest.lockMode = 'governance'; },
      /^target\.restoreTest\.lockMode: EBS Snapshot Lock locks EBS copies only \(RDS and Aurora snapshots have no lock\); target\.kinds has no "ebs"$/],
    ['a lock with restore tests off', (c) => { c.target.restoreTest.enabled = false; c.target.restoreTest.lockMode = 'governance'; },
      /^target\.restoreTest\.lockMode: a copy is locked once its restore test passes; with restoreTest\.enabled false no copy would ever be locked$/],
    ['a zone of another region', (c) => { c.target.restoreTest.availabilityZone = 'eu-central-1a'; },
      /^target\.restoreTest\.availabilityZone: expected an availability zone of eu-west-1, like eu-west-1a, got "eu-central-1a"$/],
    ['a zone when the backup account copies no EBS', (c) => { c.target.kinds = ['db-instance']; c.target.restoreTest.availabilityZone = 'eu-west-1b'; },
      /^target\.restoreTest\.availabilityZone: the zone of EBS test volumes; target\.kinds has no "ebs"$/],
    ['a break-glass role of another account', (c) => { c.target.breakGlassRoleArn = 'arn:aws:iam::111111111111:role/break-glass'; },
      /^target\.breakGlassRoleArn: expected the ARN of an IAM role of the backup account 222222222222/],
    ['a break-glass user instead of a role', (c) => { c.target.breakGlassRoleArn = 'arn:aws:iam::222222222222:user/admin'; },
      /^target\.breakGlassRoleArn: expected the ARN of an IAM role/],
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

  test('accepts ebs, the new EBS settings, and defaults target.kinds to every kind', () => {
    const c = example();
    c.sources[0].kinds = ['db-instance', 'ebs'];
    c.sources[0].selection.instanceTag = 'backup=snapferry';
    Object.assign(c.target.restoreTest, { availabilityZone: 'eu-west-1b', lockMode: 'compliance', lockDays: 90, lockComplianceOptIn: true });
    c.target.breakGlassRoleArn = 'arn:aws:iam::222222222222:role/snapferry-break-glass';
    const parsed = parseConfig(c);
    assert.deepEqual(parsed.sources[0].kinds, ['db-instance', 'ebs']);
    assert.equal(parsed.sources[0].selection.instanceTag, 'backup=snapferry');
    assert.deepEqual(parsed.target.kinds, ['db-instance', 'db-cluster', 'ebs']);
    const { availabilityZone, lockMode, lockDays, lockComplianceOptIn } = parsed.target.restoreTest;
    assert.deepEqual({ availabilityZone, lockMode, lockDays, lockComplianceOptIn },
      { availabilityZone: 'eu-west-1b', lockMode: 'compliance', lockDays: 90, lockComplianceOptIn: true });
    assert.equal(parsed.target.breakGlassRoleArn, 'arn:aws:iam::222222222222:role/snapferry-break-glass');
    // An instance tag alone is a selection; governance needs no opt-in.
    const d = example();
    d.sources[0].kinds = ['ebs'];
    d.sources[0].selection = { identifiers: [], instanceTag: 'backup' };
    d.target.kinds = ['ebs'];
    Object.assign(d.target.restoreTest, { lockMode: 'governance', availabilityZone: 'eu-west-1c' });
    assert.equal(parseConfig(d).target.restoreTest.lockMode, 'governance');
  });

  test('loadConfig names the file', () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'snapferry-config-')), 'bad.json');
    const c = example();
    c.lambdaMemoryMb = 64;
    fs.writeFileSync(file, JSON.stringify(c));
    assert.throws(() => loadConfig(file), new RegExp(`^ConfigError: ${file}: lambdaMemoryMb: expected an integer from 128`));
  });
});
