// The config file is validated before anything is built; errors name the bad field.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { budgetEnvironment, ConfigError, dataChecksJson, loadConfig, MAX_DATA_CHECKS_BYTES, MAX_OPTION_GROUPS_CHARS, optionGroupsVariable, parseConfig } from '../lib/config';
import { declaredFor, environmentContract } from '../lib/environment';
import { INFRA_DIR } from '../lib/routing';
import { ACCEPTED, acceptedConfig } from './accepted';

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
    ['no copy slot for a kind', (c) => { c.target.copy.copySlots = { 'db-cluster': 0 }; },
      /^target\.copy\.copySlots\.db-cluster: expected an integer from 1 to 1000, got 0$/],
    ['copy slots of a kind that is not one', (c) => { c.target.copy.copySlots = { 'db-snapshot': 5 }; },
      /^target\.copy\.copySlots\.db-snapshot: unknown field$/],
    // Budgets per source (COPIES_HELD_PER_SOURCE, COPIES_IN_FLIGHT_PER_SOURCE); the example has one source, 111111111111.
    ['budgets that are not an object', (c) => { c.target.copy.budgets = 50; }, /^target\.copy\.budgets: expected an object$/],
    ['budgets that set nothing', (c) => { c.target.copy.budgets = {}; },
      /^target\.copy\.budgets: sets no budget; leave it out for the copy step's defaults \(AWS's quotas divided among the sources\)$/],
    ['a held budget of 0', (c) => { c.target.copy.budgets = { copiesHeld: 0 }; },
      /^target\.copy\.budgets\.copiesHeld: expected an integer from 1 to 100000, got 0$/],
    ['a held budget over 100000', (c) => { c.target.copy.budgets = { copiesHeld: 100001 }; },
      /^target\.copy\.budgets\.copiesHeld: expected an integer from 1 to 100000, got 100001$/],
    ['a fractional in-flight budget', (c) => { c.target.copy.budgets = { copiesInFlight: 1.5 }; },
      /^target\.copy\.budgets\.copiesInFlight: expected an integer from 1 to 1000, got 1\.5$/],
    ['an in-flight budget over 1000', (c) => { c.target.copy.budgets = { copiesInFlight: 1001 }; },
      /^target\.copy\.budgets\.copiesInFlight: expected an integer from 1 to 1000, got 1001$/],
    ['a budget as a string', (c) => { c.target.copy.budgets = { copiesHeld: '20' }; },
      /^target\.copy\.budgets\.copiesHeld: expected an integer from 1 to 100000, got "20"$/],
    ['an unknown budget field', (c) => { c.target.copy.budgets = { copiesHeld: 20, maxCopies: 20 }; },
      /^target\.copy\.budgets\.maxCopies: unknown field$/],
    ['a snake_case budget field', (c) => { c.target.copy.budgets = { copies_in_flight: 2 }; },
      /^target\.copy\.budgets\.copies_in_flight: unknown field$/],
    ['budget sources that are a list', (c) => { c.target.copy.budgets = { sources: [{ account: '111111111111', copiesHeld: 5 }] }; },
      /^target\.copy\.budgets\.sources: expected an object$/],
    ['no source in budget sources', (c) => { c.target.copy.budgets = { copiesHeld: 20, sources: {} }; },
      /^target\.copy\.budgets\.sources: expected at least one source account \(leave it out for none\)$/],
    ['a budget source that is no account id', (c) => { c.target.copy.budgets = { sources: { prod: { copiesHeld: 5 } } }; },
      /^target\.copy\.budgets\.sources\.prod: expected a 12-digit AWS account id \(a source account\), got "prod"$/],
    ['a budget of an account that is not a source', (c) => { c.target.copy.budgets = { sources: { 111111111111: { copiesHeld: 5 }, 333333333333: { copiesHeld: 5 } } }; },
      /^target\.copy\.budgets\.sources\.333333333333: not a source account \(sources\[\]\.account: 111111111111\); the copy step copies only from those \(SOURCE_ACCOUNTS\), so the budget would never apply$/],
    ['a budget of the backup account itself', (c) => { c.target.copy.budgets = { sources: { 222222222222: { copiesInFlight: 2 } } }; },
      /^target\.copy\.budgets\.sources\.222222222222: not a source account/],
    ['a source budget that is a number', (c) => { c.target.copy.budgets = { sources: { 111111111111: 5 } }; },
      /^target\.copy\.budgets\.sources\.111111111111: expected an object$/],
    ['a source budget that sets nothing', (c) => { c.target.copy.budgets = { copiesHeld: 20, sources: { 111111111111: {} } }; },
      /^target\.copy\.budgets\.sources\.111111111111: sets neither copiesHeld nor copiesInFlight; leave it out for the default$/],
    ['a source in-flight budget of 0', (c) => { c.target.copy.budgets = { sources: { 111111111111: { copiesInFlight: 0 } } }; },
      /^target\.copy\.budgets\.sources\.111111111111\.copiesInFlight: expected an integer from 1 to 1000, got 0$/],
    ['a negative source held budget', (c) => { c.target.copy.budgets = { sources: { 111111111111: { copiesHeld: -1 } } }; },
      /^target\.copy\.budgets\.sources\.111111111111\.copiesHeld: expected an integer from 1 to 100000, got -1$/],
    ['an unknown source budget field', (c) => { c.target.copy.budgets = { sources: { 111111111111: { copiesHeld: 5, copiesInflight: 2 } } }; },
      /^target\.copy\.budgets\.sources\.111111111111\.copiesInflight: unknown field$/],
    // Option groups in the extra regions (OPTION_GROUPS); the example's one extra region is eu-central-1.
    ['option groups that are not an object', (c) => { c.target.copy.optionGroups = ['eu-central-1:orders-tz=orders-tz-dr']; },
      /^target\.copy\.optionGroups: expected an object$/],
    ['option groups of a region that are not an object', (c) => { c.target.copy.optionGroups = { 'eu-central-1': 'orders-tz=orders-tz-dr' }; },
      /^target\.copy\.optionGroups\.eu-central-1: expected an object$/],
    ['option groups that map nothing', (c) => { c.target.copy.optionGroups = {}; },
      /^target\.copy\.optionGroups: expected at least one extra region \(leave it out for none\)$/],
    ['option groups of a region that map nothing', (c) => { c.target.copy.optionGroups = { 'eu-central-1': { $comment: 'none yet' } }; },
      /^target\.copy\.optionGroups\.eu-central-1: maps no option group \(leave the region out for none\)$/],
    ['option groups of a region that is not an extra region', (c) => { c.target.copy.optionGroups = { 'us-east-1': { 'orders-tz': 'orders-tz-dr' } }; },
      /^target\.copy\.optionGroups\.us-east-1: "us-east-1" is not one of target\.extraRegions \(eu-central-1\); copies go to no other region, so the mapping would never apply \(and the copy step refuses it: OPTION_GROUPS\)$/],
    ['option groups of the home region', (c) => { c.target.copy.optionGroups = { 'eu-west-1': { 'orders-tz': 'orders-tz-dr' } }; },
      /^target\.copy\.optionGroups\.eu-west-1: "eu-west-1" is not one of target\.extraRegions \(eu-central-1\)/],
    ['option groups without extra regions', (c) => {
      c.target.extraRegions = [];
      c.target.retention = [{ keep_last: 7 }];
      c.target.copy.optionGroups = { 'eu-central-1': { 'orders-tz': 'orders-tz-dr' } };
    }, /^target\.copy\.optionGroups\.eu-central-1: "eu-central-1" is not one of target\.extraRegions \(none\)/],
    ['an option group name with an underscore', (c) => { c.target.copy.optionGroups = { 'eu-central-1': { orders_tz: 'orders-tz-dr' } }; },
      /^target\.copy\.optionGroups\.eu-central-1\.orders_tz: expected the name of an option group the DB snapshots use \(1 to 255 letters, digits and hyphens\), got "orders_tz"$/],
    ['an option group name of 256 characters', (c) => { c.target.copy.optionGroups = { 'eu-central-1': { ['a'.repeat(256)]: 'orders-tz-dr' } }; },
      /^target\.copy\.optionGroups\.eu-central-1\.a{256}: expected the name of an option group the DB snapshots use/],
    ['an option group name with a non-ASCII letter', (c) => { c.target.copy.optionGroups = { 'eu-central-1': { 'orders-tz': 'bestellungen-zeitzone-ä' } }; },
      /^target\.copy\.optionGroups\.eu-central-1\.orders-tz: expected the name of an option group in eu-central-1 \(1 to 255 letters, digits and hyphens\), got "bestellungen-zeitzone-ä"$/],
    ['a destination option group that is empty', (c) => { c.target.copy.optionGroups = { 'eu-central-1': { 'orders-tz': '' } }; },
      /^target\.copy\.optionGroups\.eu-central-1\.orders-tz: expected the name of an option group in eu-central-1 \(1 to 255 letters, digits and hyphens\), got ""$/],
    ['a destination option group with a blank around it', (c) => { c.target.copy.optionGroups = { 'eu-central-1': { 'orders-tz': 'orders-tz-dr ' } }; },
      /^target\.copy\.optionGroups\.eu-central-1\.orders-tz: expected the name of an option group in eu-central-1/],
    ['a destination option group that is not a string', (c) => { c.target.copy.optionGroups = { 'eu-central-1': { 'orders-tz': { name: 'orders-tz-dr' } } }; },
      /^target\.copy\.optionGroups\.eu-central-1\.orders-tz: expected the name of an option group in eu-central-1 \(1 to 255 letters, digits and hyphens\), got \{"name":"orders-tz-dr"\}$/],
    ['a default option group mapped', (c) => { c.target.copy.optionGroups = { 'eu-central-1': { 'default:mysql-8-0': 'orders-tz-dr' } }; },
      /^target\.copy\.optionGroups\.eu-central-1\.default:mysql-8-0: "default:mysql-8-0" is a default option group, which needs no mapping: the copy step copies a DB snapshot of a default option group as it is \(the copy gets the engine's default option group in eu-central-1\); leave it out$/],
    ['a mapping to a default option group', (c) => { c.target.copy.optionGroups = { 'eu-central-1': { 'orders-tz': 'default:mysql-8-0' } }; },
      /^target\.copy\.optionGroups\.eu-central-1\.orders-tz: "default:mysql-8-0" is a default option group, which has none of orders-tz's options \(a default option group needs no mapping\); name an option group of eu-central-1 with orders-tz's options$/],
    ['option groups when the backup account copies no DB instance snapshots', (c) => {
      c.sources[0].kinds = ['db-cluster'];
      c.target.kinds = ['db-cluster', 'ebs'];
      c.target.copy.optionGroups = { 'eu-central-1': { 'orders-tz': 'orders-tz-dr' } };
    }, /^target\.copy\.optionGroups: option groups are those of DB instance snapshots \(Aurora and EBS snapshots have none\); target\.kinds has no "db-instance"$/],
    ['option groups too long for Lambda\'s environment', (c) => {
      c.target.copy.optionGroups = { 'eu-central-1': Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`group-${i}`, 'x'.repeat(255)])) };
    }, /^target\.copy\.optionGroups: \d+ characters as OPTION_GROUPS, more than 2048 \(Lambda allows 4 KB for all of a function's environment variables\); map fewer option groups or shorten their names$/],
    ['copy concurrency above the event source maximum of 1000', (c) => { c.target.copy.maxConcurrency = 1001; },
      /^target\.copy\.maxConcurrency: expected an integer from 2 to 1000, got 1001$/],
    ['missing copy concurrency', (c) => { delete c.target.copy.maxConcurrency; },
      /^target\.copy\.maxConcurrency: expected an integer from 2 to 1000, got undefined$/],
    ['extra region equal to home', (c) => { c.target.extraRegions = ['eu-west-1']; }, /^target\.extraRegions: must not contain the home region eu-west-1$/],
    ['source = target', (c) => { c.sources[0].account = c.target.account; }, /^sources\[0\]\.account: must differ from target\.account/],
    ['duplicate source', (c) => { c.sources.push({ ...c.sources[0] }); }, /^sources\[1\]\.account: 111111111111 is listed twice$/],
    ['no sources', (c) => { c.sources = []; }, /^sources: expected a non-empty list$/],
    ['bad tag selector', (c) => { c.sources[0].selection.tag = '=x'; }, /^sources\[0\]\.selection\.tag: expected "key" or "key=value"/],

    // Retention rules, checked as the expire steps read them.
    ['retention that is not a list', (c) => { c.sources[0].retention = { keep_last: 2 }; },
      /^sources\[0\]\.retention: expected a list of retention rules, got \{"keep_last":2\}$/],
    ['a retention rule that is not an object', (c) => { c.target.retention = [7]; }, /^target\.retention\[0\]: expected an object$/],
    ['a retention rule without a criterion', (c) => { c.target.retention = [{ resources: '^orders-' }, { keep_last: 7 }]; },
      /^target\.retention\[0\]: no criterion; a rule needs at least one of keep_last, max_age_days, daily, weekly, monthly, yearly$/],
    ['an empty retention rule', (c) => { c.sources[0].retention = [{}]; }, /^sources\[0\]\.retention\[0\]: no criterion/],
    ['an unknown retention key', (c) => { c.target.retention = [{ keep_last: 7, hourly: 24 }]; }, /^target\.retention\[0\]\.hourly: unknown field$/],
    ['a camelCase retention key', (c) => { c.sources[0].retention = [{ keepLast: 2 }]; }, /^sources\[0\]\.retention\[0\]\.keepLast: unknown field$/],
    ['a look-ahead the steps\' regex engine lacks', (c) => { c.target.retention = [{ resources: '^prod-(?!test)', keep_last: 1 }]; },
      /^target\.retention\[0\]\.resources: "\(\?!": the steps' regex engine \(Rust's regex crate\) has no look-around or backreferences$/],
    ['a backreference in a selection regex', (c) => { c.sources[0].selection.regex = '^(a)\\1$'; },
      /^sources\[0\]\.selection\.regex: "\\\\1": the steps' regex engine/],
    // What JavaScript's RegExp reads (as literals, mostly) and the steps' engine refuses: caught
    // here, not at the step's init (rust-parsers.test.ts holds the accepted samples against the steps' parsers).
    ['a { that is no repetition', (c) => { c.sources[0].selection.regex = '^prod-{'; },
      /^sources\[0\]\.selection\.regex: "\{": the steps' regex engine \(Rust's regex crate\) reads it as a repetition, \{n\}, \{n,\} or \{n,m\}; write \\\{ for a literal$/],
    ['an escape the steps\' engine does not know', (c) => { c.target.copy.identifierRegex = '^snapferry-\\e'; },
      /^target\.copy\.identifierRegex: "\\\\e": an escape the steps' regex engine \(Rust's regex crate\) does not know$/],
    ['an escape the steps\' engine knows outside a class only', (c) => { c.target.copy.descriptionRegex = '[\\b]'; },
      /^target\.copy\.descriptionRegex: "\\\\b": an escape the steps' regex engine \(Rust's regex crate\) does not know in a character class$/],
    ['an octal escape', (c) => { c.target.restoreTest.dataChecks.databases[0].resources = '^prod\\0'; },
      /^target\.restoreTest\.dataChecks\.databases\[0\]\.resources: "\\\\0": the steps' regex engine \(Rust's regex crate\) has no backreferences or octal escapes$/],
    ['a \\x without its hex digits', (c) => { c.sources[0].selection.regex = '^prod\\x4'; },
      /^sources\[0\]\.selection\.regex: "\\\\x": the steps' regex engine \(Rust's regex crate\) expects 2 hex digits or \{hex\} after it/],
    ['an empty class', (c) => { c.target.retention = [{ resources: '^prod-[^]', keep_last: 1 }, { keep_last: 7 }]; },
      /^target\.retention\[0\]\.resources: "\[\^\]": JavaScript reads an empty class, the steps' regex engine \(Rust's regex crate\) a class that starts with a literal \]; write \\\] for a literal$/],
    ['a [ JavaScript reads as a literal in a class', (c) => { c.sources[0].selection.regex = '^prod-[a[b]'; },
      /^sources\[0\]\.selection\.regex: "\[": a character class left open: the steps' regex engine \(Rust's regex crate\) nests classes/],
    ['a class as the bound of a range', (c) => { c.sources[0].selection.regex = '^prod-[\\w-.]+$'; },
      /^sources\[0\]\.selection\.regex: "\\\\w-": the steps' regex engine \(Rust's regex crate\) has no range from a class; write \\- for a literal -$/],
    ['an escaped non-ASCII character', (c) => { c.sources[0].selection.regex = '^caf\\é'; },
      /^sources\[0\]\.selection\.regex: "\\\\é": the steps' regex engine \(Rust's regex crate\) escapes ASCII characters only$/],
    // The steps trim each variable, and split SELECT_IDENTIFIERS at commas.
    ['a selection regex with a blank around it', (c) => { c.sources[0].selection.regex = '^prod- '; },
      /^sources\[0\]\.selection\.regex: "\^prod- " has blanks around it, which the steps trim \(blank: unset\); leave them out$/],
    ['a blank tag', (c) => { c.sources[0].selection.tag = ' '; }, /^sources\[0\]\.selection\.tag: " " has blanks around it/],
    ['a copy regex with a blank around it', (c) => { c.target.copy.identifierRegex = ' ^snapferry-'; }, /^target\.copy\.identifierRegex: " \^snapferry-" has blanks around it/],
    ['an identifier with a comma', (c) => { c.sources[0].selection.identifiers = ['orders,billing']; },
      /^sources\[0\]\.selection\.identifiers\[0\]: expected a resource id \(no comma or blank: SELECT_IDENTIFIERS is a comma-separated list\), got "orders,billing"$/],
    ['a blank identifier', (c) => { c.sources[0].selection = { identifiers: [''] }; }, /^sources\[0\]\.selection\.identifiers\[0\]: expected a resource id/],
    // JSON.stringify writes a lone surrogate as \ud800, which the steps' JSON parser refuses.
    ['a lone surrogate in a probe\'s SQL', (c) => { c.target.restoreTest.dataChecks.databases[0].probes[0].sql = 'select \ud800'; },
      /^target\.restoreTest\.dataChecks\.databases\[0\]\.probes\[0\]\.sql: has a lone surrogate \(not well-formed Unicode\)/],
    ['an invalid resources regex', (c) => { c.sources[0].retention = [{ resources: '(prod', keep_last: 1 }, { keep_last: 2 }]; },
      /^sources\[0\]\.retention\[0\]\.resources: not a valid regular expression/],
    ['a resources regex that is not a string', (c) => { c.target.retention = [{ resources: ['prod'], keep_last: 1 }]; },
      /^target\.retention\[0\]\.resources: expected a string, got \["prod"\]$/],
    ['a negative count', (c) => { c.target.retention = [{ daily: -1 }]; }, /^target\.retention\[0\]\.daily: expected an integer from 0 to 100000, got -1$/],
    ['a fractional count', (c) => { c.target.retention = [{ weekly: 1.5 }]; }, /^target\.retention\[0\]\.weekly: expected an integer from 0 to 100000, got 1\.5$/],
    ['a count as a string', (c) => { c.sources[0].retention = [{ keep_last: '2' }]; }, /^sources\[0\]\.retention\[0\]\.keep_last: expected an integer from 0 to 100000, got "2"$/],
    ['max_age_days 0', (c) => { c.target.retention = [{ max_age_days: 0 }]; }, /^target\.retention\[0\]\.max_age_days: expected an integer from 1 to 36500, got 0$/],
    ['a region the backup account has no copies in', (c) => { c.target.retention = [{ regions: ['us-east-1'], keep_last: 1 }, { keep_last: 7 }]; },
      /^target\.retention\[0\]\.regions\[0\]: us-east-1 is not a region this stack expires snapshots in \(eu-west-1, eu-central-1\); the rule would never apply$/],
    ['a region other than the source\'s', (c) => { c.sources[0].retention = [{ regions: ['eu-central-1'], keep_last: 1 }, { keep_last: 2 }]; },
      /^sources\[0\]\.retention\[0\]\.regions\[0\]: eu-central-1 is not a region this stack expires snapshots in \(eu-west-1\); the rule would never apply$/],
    ['a bad region name', (c) => { c.target.retention = [{ regions: ['Frankfurt'], keep_last: 1 }]; }, /^target\.retention\[0\]\.regions\[0\]: expected an AWS region name, got "Frankfurt"$/],
    ['no region', (c) => { c.target.retention = [{ regions: [], keep_last: 1 }]; },
      /^target\.retention\[0\]\.regions: expected at least one region \(leave it out for every region\)$/],
    ['a region twice', (c) => { c.target.retention = [{ regions: ['eu-west-1', 'eu-west-1'], keep_last: 1 }]; }, /^target\.retention\[0\]\.regions: has duplicates$/],
    ['a rule after one that matches everything', (c) => { c.target.retention = [{ keep_last: 7 }, { regions: ['eu-central-1'], keep_last: 3 }]; },
      /^target\.retention\[1\]: never applies: target\.retention\[0\] has neither resources nor regions, so it matches every snapshot first; put it last$/],
    ['retention too long for Lambda\'s environment', (c) => {
      c.target.retention = Array.from({ length: 40 }, (_, i) => ({ resources: `^prod-database-number-${i}$`, keep_last: 7, daily: 7 }));
    }, /^target\.retention: \d+ characters as RETENTION, more than 2048 \(Lambda allows 4 KB for all of a function's environment variables\)/],

    // How the expire steps delete.
    ['expire that is not an object', (c) => { c.sources[0].expire = true; }, /^sources\[0\]\.expire: expected an object$/],
    ['an unknown expire field', (c) => { c.target.expire = { dry_run: true }; }, /^target\.expire\.dry_run: unknown field$/],
    ['dryRun not a boolean', (c) => { c.target.expire = { dryRun: 'yes' }; }, /^target\.expire\.dryRun: expected true or false, got "yes"$/],
    ['allowDeleteAll as a string', (c) => { c.sources[0].expire = { allowDeleteAll: 'true' }; }, /^sources\[0\]\.expire\.allowDeleteAll: expected true or false, got "true"$/],
    ['maxDeletesPerRun 0', (c) => { c.sources[0].expire = { maxDeletesPerRun: 0 }; }, /^sources\[0\]\.expire\.maxDeletesPerRun: expected an integer from 1 to 1000, got 0$/],
    ['maxDeletesPerRun over 1000', (c) => { c.target.expire = { maxDeletesPerRun: 1001 }; }, /^target\.expire\.maxDeletesPerRun: expected an integer from 1 to 1000, got 1001$/],
    ['quotaWarningPercent 0', (c) => { c.target.expire = { quotaWarningPercent: 0 }; }, /^target\.expire\.quotaWarningPercent: expected an integer from 1 to 100, got 0$/],
    ['quotaWarningPercent over 100', (c) => { c.sources[0].expire = { quotaWarningPercent: 101 }; }, /^sources\[0\]\.expire\.quotaWarningPercent: expected an integer from 1 to 100, got 101$/],

    // Reconcile: repairs after a grace, the dead man's switch, the RPO.
    ['reconcile that is not an object', (c) => { c.sources[0].reconcile = 60; }, /^sources\[0\]\.reconcile: expected an object$/],
    ['an unknown source reconcile field', (c) => { c.sources[0].reconcile = { rpoMinutes: 60 }; }, /^sources\[0\]\.reconcile\.rpoMinutes: unknown field$/],
    ['an unknown target reconcile field', (c) => { c.target.reconcile = { scheduleMinutes: 60 }; }, /^target\.reconcile\.scheduleMinutes: unknown field$/],
    ['a grace of 0 minutes', (c) => { c.sources[0].reconcile = { graceMinutes: 0 }; }, /^sources\[0\]\.reconcile\.graceMinutes: expected an integer from 1 to 10080, got 0$/],
    ['a grace over a week', (c) => { c.target.reconcile = { graceMinutes: 10081 }; }, /^target\.reconcile\.graceMinutes: expected an integer from 1 to 10080, got 10081$/],
    ['a grace as a string', (c) => { c.target.reconcile = { graceMinutes: '60' }; }, /^target\.reconcile\.graceMinutes: expected an integer from 1 to 10080, got "60"$/],
    ['a schedule of 0 minutes', (c) => { c.sources[0].reconcile = { scheduleMinutes: 0 }; }, /^sources\[0\]\.reconcile\.scheduleMinutes: expected an integer from 1 to 10080, got 0$/],
    ['a fractional schedule', (c) => { c.sources[0].reconcile = { scheduleMinutes: 90.5 }; }, /^sources\[0\]\.reconcile\.scheduleMinutes: expected an integer from 1 to 10080, got 90\.5$/],
    ['a schedule shorter than the minimum interval', (c) => { c.sources[0].minIntervalMinutes = 120; c.sources[0].reconcile = { scheduleMinutes: 90 }; },
      /^sources\[0\]\.reconcile\.scheduleMinutes: 90 is less than minIntervalMinutes 120: create-snapshot snapshots a resource at most every 120 minutes, so reconcile-snapshots would report it overdue .*; set it to at least 120$/],
    ['the default schedule shorter than the minimum interval', (c) => { c.sources[0].minIntervalMinutes = 1440; delete c.sources[0].reconcile; },
      /^sources\[0\]\.reconcile\.scheduleMinutes: 60 \(the default\) is less than minIntervalMinutes 1440/],
    ['an RPO under 15 minutes', (c) => { c.target.reconcile = { rpoMinutes: 14 }; }, /^target\.reconcile\.rpoMinutes: expected an integer from 15 to 525600, got 14$/],
    ['an RPO over a year', (c) => { c.target.reconcile = { rpoMinutes: 525601 }; }, /^target\.reconcile\.rpoMinutes: expected an integer from 15 to 525600, got 525601$/],
    ['an RPO no longer than the schedule', (c) => { c.target.restoreTest.everyNth = 1; c.target.reconcile = { rpoMinutes: 60 }; },
      /^target\.reconcile\.rpoMinutes: 60 is not more than 60 minutes, the age the recovery point of sources\[0\] reaches between two backups by design \(a snapshot every 60 minutes, sources\[0\]\.reconcile\.scheduleMinutes\): the RPO alarm would keep firing; raise the RPO$/],
    ['an RPO no longer than the schedule times the restore sampling', (c) => { c.target.restoreTest.everyNth = 7; c.target.reconcile = { rpoMinutes: 420 }; },
      /^target\.reconcile\.rpoMinutes: 420 is not more than 420 minutes, .*and only one copy in 7 restore-tested, target\.restoreTest\.everyNth\)/],
    ['an RPO no longer than a second source\'s schedule', (c) => {
      c.sources.push({ ...structuredClone(c.sources[0]), account: '333333333333', minIntervalMinutes: 1440, reconcile: { scheduleMinutes: 1440 } });
      c.target.restoreTest.everyNth = 1;
    }, /^target\.reconcile\.rpoMinutes: 1440 is not more than 1440 minutes, the age the recovery point of sources\[1\] reaches/],

    // Data checks (target.restoreTest.dataChecks; the example has two databases), checked as the restore step reads them.
    ['a data check regex that does not compile', (c) => { c.target.restoreTest.dataChecks.databases[0].resources = '^prod-(orders'; },
      /^target\.restoreTest\.dataChecks\.databases\[0\]\.resources: not a valid regular expression/],
    ['a data check regex the steps\' engine lacks', (c) => { c.target.restoreTest.dataChecks.databases[1].resources = '^prod-(?!billing-old)'; },
      /^target\.restoreTest\.dataChecks\.databases\[1\]\.resources: "\(\?!": the steps' regex engine \(Rust's regex crate\) has no look-around or backreferences$/],
    ['a data check database without resources', (c) => { delete c.target.restoreTest.dataChecks.databases[0].resources; },
      /^target\.restoreTest\.dataChecks\.databases\[0\]\.resources: expected a regex on the resource id \("\.\*" for every database\), got undefined$/],
    ['a probe with two expectations', (c) => { c.target.restoreTest.dataChecks.databases[0].probes[0].max = 1000000; },
      /^target\.restoreTest\.dataChecks\.databases\[0\]\.probes\[0\]\.max: expected exactly one of min, max, maxAgeMinutes, got min and max$/],
    ['a probe with no expectation', (c) => { delete c.target.restoreTest.dataChecks.databases[1].probes[0].max; },
      /^target\.restoreTest\.dataChecks\.databases\[1\]\.probes\[0\]: expected exactly one of min, max, maxAgeMinutes, got none$/],
    ['a probe name twice in one database', (c) => { c.target.restoreTest.dataChecks.databases[0].probes[1].name = 'orders'; },
      /^target\.restoreTest\.dataChecks\.databases\[0\]\.probes\[1\]\.name: "orders" is the name of probes\[0\] too; a probe's name is unique within its database/],
    ['a probe without a name', (c) => { c.target.restoreTest.dataChecks.databases[0].probes[0].name = ' '; },
      /^target\.restoreTest\.dataChecks\.databases\[0\]\.probes\[0\]\.name: expected a non-empty name, got " "$/],
    ['a probe without SQL', (c) => { c.target.restoreTest.dataChecks.databases[0].probes[1].sql = ''; },
      /^target\.restoreTest\.dataChecks\.databases\[0\]\.probes\[1\]\.sql: expected a non-empty SQL query, got ""$/],
    ['a minimum that is not a number', (c) => { c.target.restoreTest.dataChecks.databases[0].probes[0].min = '1'; },
      /^target\.restoreTest\.dataChecks\.databases\[0\]\.probes\[0\]\.min: expected a number, got "1"$/],
    ['maxAgeMinutes 0', (c) => { c.target.restoreTest.dataChecks.databases[0].probes[1].maxAgeMinutes = 0; },
      /^target\.restoreTest\.dataChecks\.databases\[0\]\.probes\[1\]\.maxAgeMinutes: expected an integer from 1 to 5256000, got 0$/],
    ['a fractional maxAgeMinutes', (c) => { c.target.restoreTest.dataChecks.databases[0].probes[1].maxAgeMinutes = 1.5; },
      /^target\.restoreTest\.dataChecks\.databases\[0\]\.probes\[1\]\.maxAgeMinutes: expected an integer from 1 to 5256000, got 1\.5$/],
    ['a snake_case probe key', (c) => { const p = c.target.restoreTest.dataChecks.databases[0].probes[1]; p.max_age_minutes = p.maxAgeMinutes; delete p.maxAgeMinutes; },
      /^target\.restoreTest\.dataChecks\.databases\[0\]\.probes\[1\]: expected exactly one of min, max, maxAgeMinutes, got none$/],
    ['an unknown probe field', (c) => { c.target.restoreTest.dataChecks.databases[1].probes[0].engine = 'postgres'; },
      /^target\.restoreTest\.dataChecks\.databases\[1\]\.probes\[0\]\.engine: unknown field$/],
    ['a table without its schema', (c) => { c.target.restoreTest.dataChecks.databases[0].tables = ['public.orders', 'orders']; },
      /^target\.restoreTest\.dataChecks\.databases\[0\]\.tables\[1\]: expected a table as schema\.table, got "orders"$/],
    ['a table with two dots', (c) => { c.target.restoreTest.dataChecks.databases[0].tables = ['app.public.orders']; },
      /^target\.restoreTest\.dataChecks\.databases\[0\]\.tables\[0\]: expected a table as schema\.table, got "app\.public\.orders"$/],
    ['a table twice', (c) => { c.target.restoreTest.dataChecks.databases[0].tables = ['public.orders', 'public.orders']; },
      /^target\.restoreTest\.dataChecks\.databases\[0\]\.tables: has duplicates$/],
    ['an empty table list', (c) => { c.target.restoreTest.dataChecks.databases[0].tables = []; },
      /^target\.restoreTest\.dataChecks\.databases\[0\]\.tables: expected at least one table \(leave it out for none\)$/],
    ['an empty database name', (c) => { c.target.restoreTest.dataChecks.databases[0].database = ''; },
      /^target\.restoreTest\.dataChecks\.databases\[0\]\.database: expected a database name, got ""$/],
    ['a database that checks nothing', (c) => { c.target.restoreTest.dataChecks.databases[1].probes = []; },
      /^target\.restoreTest\.dataChecks\.databases\[1\]: checks nothing; give it tables, probes, compareWithSource, compareWithPrevious or more than one$/],
    // compareWithPrevious: false or { rowsDropPercent: 0..100 }, as the step's percent_or_off reads compare_with_previous.
    ['a rows drop over 100 percent', (c) => { c.target.restoreTest.dataChecks.databases[0].compareWithPrevious = { rowsDropPercent: 120 }; },
      /^target\.restoreTest\.dataChecks\.databases\[0\]\.compareWithPrevious\.rowsDropPercent: expected a number from 0 to 100, got 120$/],
    ['a negative rows drop', (c) => { c.target.restoreTest.dataChecks.databases[1].compareWithPrevious = { rowsDropPercent: -1 }; },
      /^target\.restoreTest\.dataChecks\.databases\[1\]\.compareWithPrevious\.rowsDropPercent: expected a number from 0 to 100, got -1$/],
    ['a rows drop that is not a number', (c) => { c.target.restoreTest.dataChecks.databases[0].compareWithPrevious = { rowsDropPercent: '20' }; },
      /^target\.restoreTest\.dataChecks\.databases\[0\]\.compareWithPrevious\.rowsDropPercent: expected a number from 0 to 100, got "20"$/],
    ['compareWithPrevious without rowsDropPercent', (c) => { c.target.restoreTest.dataChecks.databases[0].compareWithPrevious = {}; },
      /^target\.restoreTest\.dataChecks\.databases\[0\]\.compareWithPrevious\.rowsDropPercent: expected a number from 0 to 100, got undefined$/],
    ['a snake_case rows drop', (c) => { c.target.restoreTest.dataChecks.databases[0].compareWithPrevious = { rows_drop_percent: 20 }; },
      /^target\.restoreTest\.dataChecks\.databases\[0\]\.compareWithPrevious\.rowsDropPercent: expected a number from 0 to 100, got undefined$/],
    ['an unknown field beside rowsDropPercent', (c) => { c.target.restoreTest.dataChecks.databases[0].compareWithPrevious = { rowsDropPercent: 20, tables: 1 }; },
      /^target\.restoreTest\.dataChecks\.databases\[0\]\.compareWithPrevious\.tables: unknown field$/],
    // true, the default, is said by leaving it out: false or an object only, as for compareWithSource.
    ['compareWithPrevious true', (c) => { c.target.restoreTest.dataChecks.databases[0].compareWithPrevious = true; },
      /^target\.restoreTest\.dataChecks\.databases\[0\]\.compareWithPrevious: expected an object$/],
    ['compareWithPrevious a bare number', (c) => { c.target.restoreTest.dataChecks.databases[1].compareWithPrevious = 20; },
      /^target\.restoreTest\.dataChecks\.databases\[1\]\.compareWithPrevious: expected an object$/],
    ['no database to check', (c) => { c.target.restoreTest.dataChecks.databases = []; },
      /^target\.restoreTest\.dataChecks\.databases: expected a non-empty list of databases to check \(leave dataChecks out to turn data checks off\), got \[\]$/],
    ['a data check timeout of 0', (c) => { c.target.restoreTest.dataChecks.timeoutSeconds = 0; },
      /^target\.restoreTest\.dataChecks\.timeoutSeconds: expected an integer from 1 to 300, got 0$/],
    ['a data check timeout over the step\'s 300 seconds', (c) => { c.target.restoreTest.dataChecks.timeoutSeconds = 301; },
      /^target\.restoreTest\.dataChecks\.timeoutSeconds: expected an integer from 1 to 300, got 301$/],
    ['endpoints in 3 zones', (c) => { c.target.restoreTest.dataChecks.endpointZones = 3; },
      /^target\.restoreTest\.dataChecks\.endpointZones: expected an integer from 1 to 2, got 3$/],
    ['data checks with restore tests off', (c) => { c.target.restoreTest.enabled = false; },
      /^target\.restoreTest\.dataChecks: data checks run in restore tests; with restoreTest\.enabled false none would run/],
    ['data checks when the backup account restores no database', (c) => { c.sources[0].kinds = ['ebs']; c.target.kinds = ['ebs']; },
      /^target\.restoreTest\.dataChecks: data checks query restored databases; target\.kinds has neither "db-instance" nor "db-cluster"$/],
    ['data checks too long for Lambda\'s environment', (c) => {
      c.target.restoreTest.dataChecks.databases = Array.from({ length: 30 }, (_, i) => ({
        resources: `^prod-database-number-${i}$`, database: 'app',
        probes: [{ name: 'rows', sql: `select count(*) from table_number_${i} where deleted_at is null`, min: 1 }],
      }));
    }, /^target\.restoreTest\.dataChecks: \d+ bytes as DATA_CHECKS, more than 3072 \(Lambda allows 4 KB for all of a function's environment variables, and the restore function's others need the rest\); check fewer databases, or shorten the SQL$/],
  ];
  for (const [name, mutate, message] of cases) {
    test(`rejects ${name}`, () => {
      const c = example();
      mutate(c);
      assert.throws(() => parseConfig(c), (e: Error) => e instanceof ConfigError && message.test(e.message));
    });
  }

  // The same samples go to the steps' own parsers in rust-parsers.test.ts.
  for (const sample of ACCEPTED) {
    test(`accepts the shared sample: ${sample.name}`, () => {
      assert.doesNotThrow(() => acceptedConfig(sample));
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
    // Data checks query databases: refused with kinds that restore none (a case below).
    delete d.target.restoreTest.dataChecks;
    Object.assign(d.target.restoreTest, { lockMode: 'governance', availabilityZone: 'eu-west-1c' });
    assert.equal(parseConfig(d).target.restoreTest.lockMode, 'governance');
  });

  test('retention and expire default to the expire steps\' own defaults (shared/environment.json)', () => {
    const c = example();
    delete c.target.retention;
    delete c.target.expire;
    delete c.sources[0].retention;
    delete c.sources[0].expire;
    const parsed = parseConfig(c);
    assert.deepEqual(parsed.sources[0].retention, [{ keep_last: 2 }]);
    assert.deepEqual(parsed.target.retention, [{ keep_last: 7, daily: 7, weekly: 4, monthly: 12 }]);
    const defaults = { dryRun: false, allowDeleteAll: false, maxDeletesPerRun: 100, quotaWarningPercent: 80 };
    assert.deepEqual(parsed.sources[0].expire, defaults);
    assert.deepEqual(parsed.target.expire, defaults);
    // The same values as the contract's defaults, which the steps use when a variable is unset.
    const contract = environmentContract();
    for (const [step, cfg] of [['expire-snapshots', parsed.sources[0]], ['expire-copies', parsed.target]] as const) {
      const def = (name: string) => declaredFor(contract, step)!.find((v) => v.name === name)!.default!;
      assert.deepEqual(cfg.retention, JSON.parse(def('RETENTION')), step);
      assert.deepEqual([cfg.expire.dryRun, cfg.expire.allowDeleteAll, cfg.expire.maxDeletesPerRun, cfg.expire.quotaWarningPercent].map(String),
        ['EXPIRE_DRY_RUN', 'ALLOW_DELETE_ALL', 'MAX_DELETES_PER_RUN', 'QUOTA_WARNING_PERCENT'].map(def), step);
    }
    // Each expire field alone: the others keep their defaults.
    c.sources[0].expire = { maxDeletesPerRun: 5 };
    assert.deepEqual(parseConfig(c).sources[0].expire, { ...defaults, maxDeletesPerRun: 5 });
  });

  test('accepts every retention criterion, regions of the backup account, an empty list (keeps everything), and drops $comment', () => {
    const c = example();
    c.target.retention = [
      { $comment: 'orders: a year of monthlies', resources: '^prod-orders', keep_last: 0, max_age_days: 1, daily: 0, weekly: 1, monthly: 12, yearly: 100000 },
      { regions: ['eu-central-1', 'eu-west-1'], resources: '.*', keep_last: 3 },
      { keep_last: 7 },
    ];
    c.sources[0].retention = [];
    c.target.expire = { dryRun: false, allowDeleteAll: true, maxDeletesPerRun: 1000, quotaWarningPercent: 100 };
    const parsed = parseConfig(c);
    assert.deepEqual(parsed.target.retention, [
      { resources: '^prod-orders', keep_last: 0, max_age_days: 1, daily: 0, weekly: 1, monthly: 12, yearly: 100000 },
      { resources: '.*', regions: ['eu-central-1', 'eu-west-1'], keep_last: 3 },
      { keep_last: 7 },
    ]);
    assert.deepEqual(parsed.sources[0].retention, []);
    assert.deepEqual(parsed.target.expire, { dryRun: false, allowDeleteAll: true, maxDeletesPerRun: 1000, quotaWarningPercent: 100 });
    // A source's rule may name its own region.
    c.sources[0].retention = [{ regions: ['eu-west-1'], keep_last: 3 }];
    assert.deepEqual(parseConfig(c).sources[0].retention, [{ regions: ['eu-west-1'], keep_last: 3 }]);
  });

  test('reconcile defaults to the reconcile steps\' own defaults (shared/environment.json); each field alone', () => {
    const c = example();
    delete c.sources[0].reconcile;
    delete c.target.reconcile;
    const parsed = parseConfig(c);
    assert.deepEqual(parsed.sources[0].reconcile, { graceMinutes: 60, scheduleMinutes: 60 });
    assert.deepEqual(parsed.target.reconcile, { graceMinutes: 60, rpoMinutes: 1440 });
    const contract = environmentContract();
    const def = (step: string, name: string) => declaredFor(contract, step)!.find((v) => v.name === name)!.default;
    assert.deepEqual([parsed.sources[0].reconcile.graceMinutes, parsed.sources[0].reconcile.scheduleMinutes].map(String),
      [def('reconcile-snapshots', 'GRACE_MINUTES'), def('reconcile-snapshots', 'SCHEDULE_MINUTES')]);
    assert.deepEqual([parsed.target.reconcile.graceMinutes, parsed.target.reconcile.rpoMinutes].map(String),
      [def('reconcile-copies', 'GRACE_MINUTES'), def('reconcile-copies', 'RPO_MINUTES')]);
    c.sources[0].reconcile = { graceMinutes: 10080 };
    c.target.reconcile = { rpoMinutes: 525600 };
    const other = parseConfig(c);
    assert.deepEqual(other.sources[0].reconcile, { graceMinutes: 10080, scheduleMinutes: 60 });
    assert.deepEqual(other.target.reconcile, { graceMinutes: 60, rpoMinutes: 525600 });
    // A daily schedule with a daily minimum interval, and an RPO above it (restore tests off: every copy is a recovery point).
    c.sources[0].minIntervalMinutes = 1440;
    c.sources[0].reconcile = { graceMinutes: 1, scheduleMinutes: 1440 };
    c.target.restoreTest.enabled = false;
    // Data checks run in restore tests: refused with them off (a case below).
    delete c.target.restoreTest.dataChecks;
    c.target.reconcile = { graceMinutes: 1, rpoMinutes: 1441 };
    const daily = parseConfig(c);
    assert.deepEqual([daily.sources[0].reconcile, daily.target.reconcile], [{ graceMinutes: 1, scheduleMinutes: 1440 }, { graceMinutes: 1, rpoMinutes: 1441 }]);
    // The smallest RPO, with a schedule below it.
    c.sources[0].minIntervalMinutes = 10;
    c.sources[0].reconcile = { scheduleMinutes: 14 };
    c.target.reconcile = { rpoMinutes: 15 };
    assert.equal(parseConfig(c).target.reconcile.rpoMinutes, 15);
  });

  test('data checks: the example\'s as parsed, DATA_CHECKS as the step reads it (snake_case, absent fields left out), the defaults', () => {
    const parsed = parseConfig(example()).target.restoreTest.dataChecks;
    assert.ok(parsed);
    assert.equal(parsed.timeoutSeconds, 10);
    assert.equal(parsed.endpointZones, 2);
    assert.deepEqual(JSON.parse(dataChecksJson(parsed)), {
      databases: [
        { resources: '^prod-orders$', database: 'app', tables: ['public.orders', 'public.order_items'], probes: [
          { name: 'orders', sql: 'select count(*) from orders', min: 1 },
          { name: 'newest order', sql: 'select max(created_at) from orders', max_age_minutes: 120 },
        ] },
        { resources: '^prod-billing', database: 'billing', probes: [
          { name: 'negative balances', sql: 'select count(*) from accounts where balance < 0', max: 0 },
        ] },
      ],
    });
    // Tables alone, a negative and a fractional bound, $comment dropped, the defaults: the step's
    // DATA_CHECK_TIMEOUT_SECONDS (shared/environment.json) and endpoints in both zones.
    const c = example();
    c.target.restoreTest.dataChecks = {
      $comment: 'two databases',
      databases: [
        { resources: '.*', tables: ['public.schema_migrations'] },
        { $comment: 'ledger', resources: '^prod-ledger$', probes: [{ $comment: 'x', name: 'drift', sql: 'select sum(amount) from ledger', min: -0.5 }] },
      ],
    };
    const d = parseConfig(c).target.restoreTest.dataChecks!;
    const def = declaredFor(environmentContract(), 'restore')!.find((v) => v.name === 'DATA_CHECK_TIMEOUT_SECONDS')!.default;
    assert.equal(String(d.timeoutSeconds), def);
    assert.equal(d.endpointZones, 2);
    assert.equal(dataChecksJson(d), JSON.stringify({ databases: [
      { resources: '.*', tables: ['public.schema_migrations'], probes: [] },
      { resources: '^prod-ledger$', probes: [{ name: 'drift', sql: 'select sum(amount) from ledger', min: -0.5 }] },
    ] }));
    c.target.restoreTest.dataChecks.endpointZones = 1;
    assert.equal(parseConfig(c).target.restoreTest.dataChecks!.endpointZones, 1);
    // Off: absent.
    delete c.target.restoreTest.dataChecks;
    assert.equal(parseConfig(c).target.restoreTest.dataChecks, undefined);
  });

  test('data checks: compareWithSource and compareWithPrevious as parsed, rendered as the step reads them, each enough for an entry', () => {
    const c = example();
    c.target.restoreTest.dataChecks.databases = [
      { resources: '^prod-orders$', compareWithPrevious: { rowsDropPercent: 0 }, probes: [{ name: 'rows', sql: 'select 1', min: 1 }] },
      // Either alone checks something: it sets how the entry's restores are compared, where no entry would leave the defaults.
      { resources: '^prod-archive-', compareWithPrevious: false },
      { resources: '^prod-ledger$', compareWithSource: false, compareWithPrevious: { rowsDropPercent: 12.5 } },
      { resources: '^prod-', compareWithSource: { rowTolerancePercent: 100 }, compareWithPrevious: { rowsDropPercent: 100 } },
    ];
    const d = parseConfig(c).target.restoreTest.dataChecks!;
    assert.deepEqual(d.databases.map((x) => [x.compareWithSource, x.compareWithPrevious]), [
      [undefined, { rowsDropPercent: 0 }],
      [undefined, false],
      [false, { rowsDropPercent: 12.5 }],
      [{ rowTolerancePercent: 100 }, { rowsDropPercent: 100 }],
    ]);
    assert.deepEqual(JSON.parse(dataChecksJson(d)).databases, [
      { resources: '^prod-orders$', probes: [{ name: 'rows', sql: 'select 1', min: 1 }], compare_with_previous: { rows_drop_percent: 0 } },
      { resources: '^prod-archive-', probes: [], compare_with_previous: false },
      { resources: '^prod-ledger$', probes: [], compare_with_source: false, compare_with_previous: { rows_drop_percent: 12.5 } },
      { resources: '^prod-', probes: [], compare_with_source: { row_tolerance_percent: 100 }, compare_with_previous: { rows_drop_percent: 100 } },
    ]);
  });

  test('data checks: DATA_CHECKS up to the limit is accepted, and the limit is counted in bytes (UTF-8)', () => {
    const c = example();
    const probe = (sql: string) => ({ resources: '^a$', probes: [{ name: 'p', sql, min: 0 }] });
    const size = (sql: string) => Buffer.byteLength(JSON.stringify({ databases: [{ resources: '^a$', probes: [{ name: 'p', sql, min: 0 }] }] }));
    const fits = 'x'.repeat(MAX_DATA_CHECKS_BYTES - size(''));
    c.target.restoreTest.dataChecks = { databases: [probe(fits)] };
    assert.equal(Buffer.byteLength(dataChecksJson(parseConfig(c).target.restoreTest.dataChecks!)), MAX_DATA_CHECKS_BYTES);
    // The same number of characters, one of them two bytes long: one byte over.
    c.target.restoreTest.dataChecks = { databases: [probe(`é${fits.slice(1)}`)] };
    assert.throws(() => parseConfig(c), new RegExp(`^ConfigError: target\\.restoreTest\\.dataChecks: ${MAX_DATA_CHECKS_BYTES + 1} bytes as DATA_CHECKS`));
  });

  test('budgets: parsed as given ($comment dropped), rendered as the copy step reads them, left unset when not configured', () => {
    const c = example();
    // Three sources, so the order of the accounts shows.
    for (const account of ['444444444444', '333333333333']) c.sources.push({ ...structuredClone(c.sources[0]), account });
    const render = (budgets: unknown) => {
      if (budgets === undefined) delete c.target.copy.budgets; else c.target.copy.budgets = budgets;
      return budgetEnvironment(parseConfig(c).target.copy.budgets);
    };
    const unset = { COPIES_HELD_PER_SOURCE: undefined, COPIES_IN_FLIGHT_PER_SOURCE: undefined };
    // Not configured: both unset, the step derives its defaults.
    assert.equal(parseConfig(example()).target.copy.budgets, undefined);
    assert.deepEqual(render(undefined), unset);
    assert.deepEqual(budgetEnvironment(undefined), unset);
    // A default for every source only: the bare N.
    assert.deepEqual(render({ copiesHeld: 40 }), { ...unset, COPIES_HELD_PER_SOURCE: '40' });
    assert.deepEqual(render({ copiesInFlight: 3 }), { ...unset, COPIES_IN_FLIGHT_PER_SOURCE: '3' });
    // The default first, then the accounts in order, whatever the order in the file; a field a
    // source leaves out is the default's (the account is not named in that variable).
    const budgets = {
      $comment: 'the noisy one gets less',
      copiesHeld: 40,
      copiesInFlight: 4,
      sources: {
        444444444444: { copiesHeld: 10, copiesInFlight: 1 },
        $comment: 'per account',
        111111111111: { copiesHeld: 100000 },
        333333333333: { copiesInFlight: 1000 },
      },
    };
    assert.deepEqual(render(budgets), {
      COPIES_HELD_PER_SOURCE: '40,111111111111=100000,444444444444=10',
      COPIES_IN_FLIGHT_PER_SOURCE: '4,333333333333=1000,444444444444=1',
    });
    assert.deepEqual(parseConfig(c).target.copy.budgets, {
      copiesHeld: 40,
      copiesInFlight: 4,
      sources: { 444444444444: { copiesHeld: 10, copiesInFlight: 1 }, 111111111111: { copiesHeld: 100000 }, 333333333333: { copiesInFlight: 1000 } },
    });
    // Accounts alone, no default: the others get the step's derived default; a variable no budget sets is unset.
    assert.deepEqual(render({ sources: { 333333333333: { copiesHeld: 5 }, 111111111111: { copiesHeld: 7 } } }),
      { ...unset, COPIES_HELD_PER_SOURCE: '111111111111=7,333333333333=5' });
    assert.deepEqual(render({ copiesHeld: 1, sources: { 444444444444: { copiesInFlight: 2 } } }),
      { COPIES_HELD_PER_SOURCE: '1', COPIES_IN_FLIGHT_PER_SOURCE: '444444444444=2' });
  });

  test('option groups: parsed as given ($comment dropped), rendered as the copy step reads them (sorted), left unset when not configured', () => {
    const c = example();
    c.target.extraRegions = ['eu-north-1', 'eu-central-1'];
    const parse = (groups: unknown) => {
      if (groups === undefined) delete c.target.copy.optionGroups; else c.target.copy.optionGroups = groups;
      return parseConfig(c).target.copy.optionGroups;
    };
    // Not configured: no mapping, OPTION_GROUPS unset.
    assert.equal(parse(undefined), undefined);
    assert.equal(optionGroupsVariable(undefined), undefined);
    assert.equal(optionGroupsVariable({}), undefined);
    assert.equal(optionGroupsVariable({ 'eu-central-1': {} }), undefined);
    // By region, then by source option group, whatever the order in the file; upper case and digits as given.
    const parsed = parse({
      $comment: 'timezone option groups',
      'eu-north-1': { 'orders-tz': 'orders-tz-stockholm', $comment: 'Stockholm' },
      'eu-central-1': { 'orders-tz': 'orders-tz-dr', 'Billing-2': 'billing-2-dr', [`a${'b'.repeat(254)}`]: 'c'.repeat(255) },
    });
    assert.deepEqual(parsed, {
      'eu-north-1': { 'orders-tz': 'orders-tz-stockholm' },
      'eu-central-1': { 'orders-tz': 'orders-tz-dr', 'Billing-2': 'billing-2-dr', [`a${'b'.repeat(254)}`]: 'c'.repeat(255) },
    });
    assert.equal(optionGroupsVariable(parsed), `eu-central-1:Billing-2=billing-2-dr,eu-central-1:a${'b'.repeat(254)}=${'c'.repeat(255)},`
      + 'eu-central-1:orders-tz=orders-tz-dr,eu-north-1:orders-tz=orders-tz-stockholm');
    // The same source option group in two regions: once per region, as the step allows.
    assert.equal(optionGroupsVariable(parse({ 'eu-north-1': { 'orders-tz': 'a' }, 'eu-central-1': { 'orders-tz': 'b' } })),
      'eu-central-1:orders-tz=b,eu-north-1:orders-tz=a');
    // OPTION_GROUPS up to MAX_OPTION_GROUPS_CHARS is accepted, one character more refused: seven
    // entries of 271 characters (`eu-central-1:gN=` and 255), commas, and an eighth that fills the rest.
    const upTo = (chars: number) => {
      const groups: Record<string, string> = Object.fromEntries(Array.from({ length: 7 }, (_, i) => [`g${i}`, 'x'.repeat(255)]));
      groups.g7 = 'y'.repeat(chars - (7 * 271 + 7) - 'eu-central-1:g7='.length);
      return { 'eu-central-1': groups };
    };
    assert.equal(optionGroupsVariable(parse(upTo(MAX_OPTION_GROUPS_CHARS)))!.length, MAX_OPTION_GROUPS_CHARS);
    assert.throws(() => parse(upTo(MAX_OPTION_GROUPS_CHARS + 1)),
      new RegExp(`^ConfigError: target\\.copy\\.optionGroups: ${MAX_OPTION_GROUPS_CHARS + 1} characters as OPTION_GROUPS`));
  });

  test('loadConfig names the file', () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'snapferry-config-')), 'bad.json');
    const c = example();
    c.lambdaMemoryMb = 64;
    fs.writeFileSync(file, JSON.stringify(c));
    assert.throws(() => loadConfig(file), new RegExp(`^ConfigError: ${file}: lambdaMemoryMb: expected an integer from 128`));
  });
});
