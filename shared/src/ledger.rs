//! The copy ledger: the backup account's copies in progress and waiting for a slot, per
//! region and kind ([`Pool`]), with each source's counts, in one DynamoDB table in the home
//! region (`shared/routing.json` `copy_ledger`).
//!
//! Why a table: AWS answers "which copies are in progress here" only by listing every
//! snapshot of the account (`DescribeDBSnapshots` returns at most 100 a page, so a look at
//! 10,000 snapshots is 100 calls of the account's 12 a second), and two invocations that
//! both list, both see the same free slot and both start a copy. Here one `Query` reads a
//! pool (its counters and its copies in progress and waiting, never the account's
//! snapshots), and a slot and the source's budget are taken in one `TransactWriteItems` of
//! conditional updates: of two invocations racing for the last slot, DynamoDB lets one
//! through and cancels the other (`ConditionalCheckFailed`).
//!
//! It is an index, never the truth: reconcile-copies corrects it every hour from what AWS
//! reports ([`Ledger::correct`]), a copy entry past its time is looked up by id before it
//! keeps a slot ([`crate::copy`]), and a lost table is rebuilt by the same correction.
//!
//! Items, partition key `pk` = `<region>#<kind>`, sort key `sk`:
//! - `#slots`: `in_flight` (copies taken, not yet ended), `copy_ms` (the last copy's time);
//! - `#source#<account>`: that source's `held` (its copies here) and `in_flight`;
//! - `copy#<name>`: one copy, `state` `copying` (with `started_ms` and `by`, the message
//!   whose handling makes it) or `waiting` (with
//!   `since_ms` and the snapshot's `taken_ms`), and its `source`.

use crate::ResourceKind;
use crate::error::{Error, Result, Retry};
use crate::store::SourceCopies;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

/// One region's copy slots of one kind, in the backup account.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pool {
    pub region: String,
    pub kind: ResourceKind,
}

impl Pool {
    pub fn new(kind: ResourceKind, region: &str) -> Pool {
        Pool { region: region.to_string(), kind }
    }

    fn key(&self) -> String {
        format!("{}#{}", self.region, self.kind)
    }
}

impl std::fmt::Display for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} copies into {}", self.kind, self.region)
    }
}

/// A copy the ledger knows of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The copy's name (its id in RDS, its snapferry name for EBS).
    pub copy: String,
    /// Its source account, as AWS reported it when the copy was admitted.
    pub source: String,
    pub state: State,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Holds a slot since `started_at`, for the handling `by` (an SQS message id): that
    /// message's redelivery makes the copy; another message about it does not.
    Copying { started_at: DateTime<Utc>, by: String },
    /// Waits for a slot since `since`; `taken_at`: when the snapshot it copies was taken
    /// (the line's order).
    Waiting { since: DateTime<Utc>, taken_at: Option<DateTime<Utc>> },
}

/// What the ledger holds for one pool: one read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Book {
    /// Slots taken.
    pub in_flight: usize,
    /// How long the last copy that ended took.
    pub copy_time: Option<Duration>,
    pub sources: BTreeMap<String, SourceCopies>,
    pub entries: Vec<Entry>,
}

impl Book {
    pub fn source(&self, source: &str) -> SourceCopies {
        self.sources.get(source).copied().unwrap_or_default()
    }

    pub fn copying(&self) -> impl Iterator<Item = (&Entry, DateTime<Utc>)> {
        self.entries.iter().filter_map(|e| match e.state {
            State::Copying { started_at, .. } => Some((e, started_at)),
            State::Waiting { .. } => None,
        })
    }

    pub fn waiting(&self) -> impl Iterator<Item = (&Entry, Option<DateTime<Utc>>)> {
        self.entries.iter().filter_map(|e| match e.state {
            State::Waiting { taken_at, .. } => Some((e, taken_at)),
            State::Copying { .. } => None,
        })
    }
}

/// A copy asking for a slot, within its source's budget.
#[derive(Debug, Clone)]
pub struct Claim<'a> {
    pub copy: &'a str,
    pub source: &'a str,
    /// The handling that asks (its SQS message id).
    pub by: &'a str,
    /// Slots of the pool.
    pub slots: usize,
    /// Copies the source may hold here, where limited.
    pub held: Option<usize>,
    /// Copies the source may have in progress here, where limited now.
    pub in_flight: Option<usize>,
    pub now: DateTime<Utc>,
}

/// What a claim got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// A slot, counted for its source (held and in flight).
    Slot,
    /// The copy holds a slot already, for this handling (its message redelivered).
    Already,
    /// The copy holds a slot already, for another handling (a duplicate message, or the other
    /// of two announcements), which makes the copy: EBS would make a second one.
    Elsewhere,
    /// Every slot is taken.
    SlotsFull,
    /// The source holds all the copies it may.
    HeldFull,
    /// The source has all the copies in progress it may.
    InFlightFull,
}

/// What AWS reports of one pool, for [`Ledger::correct`]: snapferry's copies there.
#[derive(Debug, Clone, Default)]
pub struct Truth {
    /// The names of every snapshot there.
    pub names: BTreeSet<String>,
    /// The names of our copies AWS has not finished.
    pub in_progress: BTreeSet<String>,
    /// Our copies there per source account (held, in progress or not).
    pub held: BTreeMap<String, usize>,
    pub now: DateTime<Utc>,
    /// A waiting entry older than this is dropped: its message has given up by then.
    pub wait_limit: Duration,
}

impl Truth {
    /// From our `copies` in one pool (snapferry's copies there, as AWS lists them): each
    /// counted for the source its lineage records, which is AWS's owner of what it copied.
    pub fn of(copies: &[crate::store::Snapshot], now: DateTime<Utc>, wait_limit: Duration) -> Truth {
        let mut truth = Truth { now, wait_limit, ..Truth::default() };
        for c in copies {
            truth.names.insert(c.name.clone());
            if c.status == crate::store::Status::Creating {
                truth.in_progress.insert(c.name.clone());
            }
            if let Some(source) = crate::lineage::Lineage::of(c).source_account() {
                *truth.held.entry(source.to_string()).or_default() += 1;
            }
        }
        truth
    }
}

/// What [`Ledger::correct`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Corrected {
    /// Copies that held a slot after AWS finished them.
    pub freed: Vec<String>,
    /// Waiting entries whose copy was made, or whose wait gave up.
    pub dropped: Vec<String>,
    /// Sources whose count of copies held was set to AWS's.
    pub recounted: Vec<String>,
}

impl Corrected {
    pub fn is_empty(&self) -> bool {
        self.freed.is_empty() && self.dropped.is_empty() && self.recounted.is_empty()
    }
}

/// A copy that has just been claimed may not be visible in AWS's listing yet: the
/// correction leaves it its slot this long.
pub const CLAIM_GRACE: chrono::Duration = chrono::Duration::minutes(10);

#[async_trait]
pub trait Ledger: Send + Sync {
    /// Everything the ledger holds for `pool`.
    async fn book(&self, pool: &Pool) -> Result<Book>;
    /// Takes a slot of `pool` for `claim`, counted for its source, at once and only within
    /// the limits: of two claims for the last slot, one gets it.
    async fn take(&self, pool: &Pool, claim: &Claim<'_>) -> Result<Taken>;
    /// The handling (SQS message id) whose claim holds `copy`'s slot, if one does.
    async fn holder(&self, pool: &Pool, copy: &str) -> Result<Option<String>>;
    /// Puts `copy` in the line for `pool`'s slots (nothing when it is there already).
    async fn wait(&self, pool: &Pool, entry: &Entry) -> Result<()>;
    /// Takes `copy` out of the line (it was refused, or made another way).
    async fn unwait(&self, pool: &Pool, copy: &str) -> Result<()>;
    /// `copy` of `source` ended (made, failed for good, or never started): its slot frees.
    /// `took`: how long a copy that was made took. False when it held none (freed already,
    /// or recorded for another source: the hourly correction sorts that out).
    async fn release(&self, pool: &Pool, copy: &str, source: &str, took: Option<Duration>) -> Result<bool>;
    /// One of `source`'s copies in `pool`'s region was deleted.
    async fn held_less(&self, pool: &Pool, source: &str) -> Result<()>;
    /// Corrects `pool` from what AWS reports.
    async fn correct(&self, pool: &Pool, truth: &Truth) -> Result<Corrected>;
}

/// Which entries and counts a correction changes; the same rules for every ledger.
pub fn corrections(book: &Book, truth: &Truth) -> Corrected {
    let mut out = Corrected::default();
    for (entry, started_at) in book.copying() {
        if !truth.in_progress.contains(&entry.copy) && truth.now - started_at > CLAIM_GRACE {
            out.freed.push(entry.copy.clone());
        }
    }
    let limit = chrono::Duration::from_std(truth.wait_limit).unwrap_or(chrono::Duration::MAX);
    for entry in &book.entries {
        if let State::Waiting { since, .. } = entry.state
            && (truth.names.contains(&entry.copy) || truth.now - since > limit)
        {
            out.dropped.push(entry.copy.clone());
        }
    }
    let sources: BTreeSet<&String> = book.sources.keys().chain(truth.held.keys()).collect();
    for source in sources {
        if book.source(source).held != truth.held.get(source).copied().unwrap_or_default() {
            out.recounted.push(source.clone());
        }
    }
    out
}

/// The ledger in DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoLedger {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

const SLOTS: &str = "#slots";
const COPYING: &str = "copying";
const WAITING: &str = "waiting";

fn source_key(source: &str) -> String {
    format!("#source#{source}")
}

fn copy_key(copy: &str) -> String {
    format!("copy#{copy}")
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn ms(at: DateTime<Utc>) -> AttributeValue {
    n(at.timestamp_millis())
}

type Item = HashMap<String, AttributeValue>;

fn get_n(item: &Item, name: &str) -> Option<i64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)?.as_s().ok().map(String::as_str)
}

fn get_at(item: &Item, name: &str) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(get_n(item, name)?)
}

fn count(item: &Item, name: &str) -> usize {
    usize::try_from(get_n(item, name).unwrap_or_default()).unwrap_or_default()
}

fn built<T>(op: &'static str, r: std::result::Result<T, aws_sdk_dynamodb::error::BuildError>) -> Result<T> {
    r.map_err(|e| Error::Config(format!("{op}: {e}")))
}

/// How many times a transaction DynamoDB cancelled for a conflicting one is tried.
const CONFLICT_TRIES: u32 = 5;

impl DynamoLedger {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> DynamoLedger {
        DynamoLedger { client, table: table.into() }
    }

    fn key(&self, pool: &Pool, sk: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([("pk".to_string(), s(pool.key())), ("sk".to_string(), s(sk))])
    }

    fn update(&self, pool: &Pool, sk: &str) -> aws_sdk_dynamodb::types::builders::UpdateBuilder {
        Update::builder().table_name(&self.table).set_key(Some(self.key(pool, sk)))
    }

    /// One item of `pool`, by a `Query` on its whole key (the role reads with `Query` only).
    async fn item(&self, pool: &Pool, sk: &str) -> Result<Option<Item>> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk = :sk")
            .expression_attribute_values(":pk", s(pool.key()))
            .expression_attribute_values(":sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Error::from_sdk("Query", e))?;
        Ok(out.items.unwrap_or_default().into_iter().next())
    }

    /// Runs a transaction: `Ok(None)` when it went through, `Ok(Some(codes))` with each
    /// item's cancellation code when a condition failed. A conflict with another
    /// transaction on the same items (DynamoDB cancels one of two at once) is tried again.
    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<Option<Vec<String>>> {
        use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError as E;
        let mut tries = 0;
        loop {
            tries += 1;
            let sent = self.client.transact_write_items().set_transact_items(Some(items.clone())).send().await;
            let e = match sent {
                Ok(_) => return Ok(None),
                Err(e) => e,
            };
            if let Some(E::TransactionCanceledException(cancelled)) = e.as_service_error() {
                let codes: Vec<String> =
                    cancelled.cancellation_reasons().iter().map(|r| r.code().unwrap_or("None").to_string()).collect();
                let conflict = codes.iter().any(|c| c == "TransactionConflict");
                if !conflict {
                    return Ok(Some(codes));
                }
                if tries >= CONFLICT_TRIES {
                    return Err(Error::Retryable {
                        retry: Retry::Transient,
                        op: "TransactWriteItems",
                        code: "TransactionConflict".into(),
                        message: format!("{} tries cancelled by conflicting transactions", tries),
                    });
                }
                tokio::time::sleep(Duration::from_millis(20 * u64::from(tries))).await;
                continue;
            }
            return Err(Error::from_sdk("TransactWriteItems", e));
        }
    }

    /// A single conditional write whose failed condition is no error: false.
    async fn conditional<T, E>(
        op: &'static str,
        sent: std::result::Result<T, aws_sdk_dynamodb::error::SdkError<E, aws_smithy_runtime_api::http::Response>>,
    ) -> Result<bool>
    where
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        match sent {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().and_then(|s| s.code()) == Some("ConditionalCheckFailedException") => {
                Ok(false)
            }
            Err(e) => Err(Error::from_sdk(op, e)),
        }
    }
}

#[async_trait]
impl Ledger for DynamoLedger {
    async fn book(&self, pool: &Pool) -> Result<Book> {
        let items: Vec<Item> = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(pool.key()))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| Error::from_sdk("Query", e))?;
        let mut book = Book::default();
        for item in &items {
            let sk = get_s(item, "sk").unwrap_or_default();
            if sk == SLOTS {
                book.in_flight = count(item, "in_flight");
                book.copy_time = get_n(item, "copy_ms").and_then(|m| u64::try_from(m).ok()).map(Duration::from_millis);
            } else if let Some(source) = sk.strip_prefix("#source#") {
                let counts = SourceCopies { held: count(item, "held"), in_flight: count(item, "in_flight") };
                book.sources.insert(source.to_string(), counts);
            } else if let Some(copy) = sk.strip_prefix("copy#") {
                let state = match get_s(item, "state") {
                    Some(COPYING) => State::Copying {
                        started_at: get_at(item, "started_ms").unwrap_or_default(),
                        by: get_s(item, "by").unwrap_or_default().to_string(),
                    },
                    _ => State::Waiting {
                        since: get_at(item, "since_ms").unwrap_or_default(),
                        taken_at: get_at(item, "taken_ms"),
                    },
                };
                let source = get_s(item, "source").unwrap_or_default().to_string();
                book.entries.push(Entry { copy: copy.to_string(), source, state });
            }
        }
        Ok(book)
    }

    async fn take(&self, pool: &Pool, claim: &Claim<'_>) -> Result<Taken> {
        let one = n(1);
        let slots = built(
            "TransactWriteItems",
            self.update(pool, SLOTS)
                .update_expression("ADD in_flight :one")
                .condition_expression("attribute_not_exists(in_flight) OR in_flight < :slots")
                .expression_attribute_values(":one", one.clone())
                .expression_attribute_values(":slots", n(claim.slots))
                .build(),
        )?;
        let mut conditions = Vec::new();
        let mut source =
            self.update(pool, &source_key(claim.source)).update_expression("ADD held :one, in_flight :one");
        source = source.expression_attribute_values(":one", one);
        if let Some(held) = claim.held {
            conditions.push("(attribute_not_exists(held) OR held < :held)");
            source = source.expression_attribute_values(":held", n(held));
        }
        if let Some(in_flight) = claim.in_flight {
            conditions.push("(attribute_not_exists(in_flight) OR in_flight < :in_flight)");
            source = source.expression_attribute_values(":in_flight", n(in_flight));
        }
        if !conditions.is_empty() {
            source = source.condition_expression(conditions.join(" AND "));
        }
        let source = built("TransactWriteItems", source.build())?;
        let mut item = self.key(pool, &copy_key(claim.copy));
        item.insert("state".into(), s(COPYING));
        item.insert("source".into(), s(claim.source));
        item.insert("started_ms".into(), ms(claim.now));
        item.insert("by".into(), s(claim.by));
        let copy = built(
            "TransactWriteItems",
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(sk) OR #state = :waiting")
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":waiting", s(WAITING))
                .build(),
        )?;
        let items = vec![
            TransactWriteItem::builder().update(slots).build(),
            TransactWriteItem::builder().update(source).build(),
            TransactWriteItem::builder().put(copy).build(),
        ];
        let Some(codes) = self.transact(items).await? else { return Ok(Taken::Slot) };
        let failed = |i: usize| codes.get(i).is_some_and(|c| c == "ConditionalCheckFailed");
        Ok(if failed(2) {
            // Whose: read back, as DynamoDB names only the item.
            let entry = self.item(pool, &copy_key(claim.copy)).await?.unwrap_or_default();
            match (get_s(&entry, "state"), get_s(&entry, "by")) {
                (Some(COPYING), Some(by)) if by == claim.by => Taken::Already,
                (Some(COPYING), _) => Taken::Elsewhere,
                // Released or back in line since: the claim is made again.
                _ => {
                    return Err(Error::Retryable {
                        retry: Retry::Transient,
                        op: "TransactWriteItems",
                        code: "TransactionCanceled".into(),
                        message: format!("{}'s entry changed under the claim", claim.copy),
                    });
                }
            }
        } else if failed(1) {
            // Which of the source's limits: read back, as DynamoDB names only the item.
            let mine = self.item(pool, &source_key(claim.source)).await?.unwrap_or_default();
            if claim.held.is_some_and(|h| count(&mine, "held") >= h) { Taken::HeldFull } else { Taken::InFlightFull }
        } else if failed(0) {
            Taken::SlotsFull
        } else {
            return Err(Error::Retryable {
                retry: Retry::Transient,
                op: "TransactWriteItems",
                code: "TransactionCanceled".into(),
                message: format!("cancelled for {codes:?}"),
            });
        })
    }

    async fn holder(&self, pool: &Pool, copy: &str) -> Result<Option<String>> {
        let entry = self.item(pool, &copy_key(copy)).await?.unwrap_or_default();
        Ok(match (get_s(&entry, "state"), get_s(&entry, "by")) {
            (Some(COPYING), Some(by)) => Some(by.to_string()),
            _ => None,
        })
    }

    async fn wait(&self, pool: &Pool, entry: &Entry) -> Result<()> {
        let State::Waiting { since, taken_at } = entry.state else {
            return Err(Error::BadInput(format!("{} is not waiting", entry.copy)));
        };
        let mut item = self.key(pool, &copy_key(&entry.copy));
        item.insert("state".into(), s(WAITING));
        item.insert("source".into(), s(&entry.source));
        item.insert("since_ms".into(), ms(since));
        if let Some(taken_at) = taken_at {
            item.insert("taken_ms".into(), ms(taken_at));
        }
        let sent = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(sk)")
            .send()
            .await;
        Self::conditional("PutItem", sent).await.map(drop)
    }

    async fn unwait(&self, pool: &Pool, copy: &str) -> Result<()> {
        let sent = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(self.key(pool, &copy_key(copy))))
            .condition_expression("#state = :waiting")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":waiting", s(WAITING))
            .send()
            .await;
        Self::conditional("DeleteItem", sent).await.map(drop)
    }

    async fn release(&self, pool: &Pool, copy: &str, source: &str, took: Option<Duration>) -> Result<bool> {
        let minus = n(-1);
        let entry_gone = built(
            "TransactWriteItems",
            Delete::builder()
                .table_name(&self.table)
                .set_key(Some(self.key(pool, &copy_key(copy))))
                .condition_expression("#state = :copying AND #source = :source")
                .expression_attribute_names("#state", "state")
                .expression_attribute_names("#source", "source")
                .expression_attribute_values(":copying", s(COPYING))
                .expression_attribute_values(":source", s(source))
                .build(),
        )?;
        let mut slots = self.update(pool, SLOTS).expression_attribute_values(":minus", minus.clone());
        slots = match took {
            Some(took) => slots
                .update_expression("ADD in_flight :minus SET copy_ms = :took")
                .expression_attribute_values(":took", n(took.as_millis())),
            None => slots.update_expression("ADD in_flight :minus"),
        };
        let slots = built("TransactWriteItems", slots.build())?;
        let source = built(
            "TransactWriteItems",
            self.update(pool, &source_key(source))
                .update_expression("ADD in_flight :minus")
                .expression_attribute_values(":minus", minus)
                .build(),
        )?;
        let items = vec![
            TransactWriteItem::builder().delete(entry_gone).build(),
            TransactWriteItem::builder().update(slots).build(),
            TransactWriteItem::builder().update(source).build(),
        ];
        // Cancelled: another invocation released it first.
        Ok(self.transact(items).await?.is_none())
    }

    async fn held_less(&self, pool: &Pool, source: &str) -> Result<()> {
        let sent = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(pool, &source_key(source))))
            .update_expression("ADD held :minus")
            .condition_expression("held > :zero")
            .expression_attribute_values(":minus", n(-1))
            .expression_attribute_values(":zero", n(0))
            .send()
            .await;
        Self::conditional("UpdateItem", sent).await.map(drop)
    }

    async fn correct(&self, pool: &Pool, truth: &Truth) -> Result<Corrected> {
        let book = self.book(pool).await?;
        let mut out = corrections(&book, truth);
        let mut freed = Vec::new();
        for copy in &out.freed {
            let source = book.entries.iter().find(|e| e.copy == *copy).map(|e| e.source.as_str()).unwrap_or_default();
            if self.release(pool, copy, source, None).await? {
                freed.push(copy.clone());
            }
        }
        out.freed = freed;
        for copy in &out.dropped {
            self.unwait(pool, copy).await?;
        }
        let mut recounted = Vec::new();
        for source in &out.recounted {
            // Set only if no copy was counted in or out since the book was read; else next time.
            let was = book.source(source).held;
            let now = truth.held.get(source).copied().unwrap_or_default();
            let sent = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(self.key(pool, &source_key(source))))
                .update_expression("SET held = :now")
                .condition_expression("attribute_not_exists(held) OR held = :was")
                .expression_attribute_values(":now", n(now))
                .expression_attribute_values(":was", n(was))
                .send()
                .await;
            if Self::conditional("UpdateItem", sent).await? {
                recounted.push(source.clone());
            }
        }
        out.recounted = recounted;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn a_correction_frees_what_aws_finished_drops_what_was_made_and_recounts_from_aws() {
        let copying = |copy: &str, started: i64| Entry {
            copy: copy.into(),
            source: "111111111111".into(),
            state: State::Copying { started_at: at(started), by: "m-1".into() },
        };
        let waiting = |copy: &str, since: i64| Entry {
            copy: copy.into(),
            source: "222222222222".into(),
            state: State::Waiting { since: at(since), taken_at: None },
        };
        let book = Book {
            in_flight: 3,
            copy_time: None,
            sources: BTreeMap::from([
                ("111111111111".into(), SourceCopies { held: 5, in_flight: 3 }),
                ("222222222222".into(), SourceCopies { held: 2, in_flight: 0 }),
            ]),
            entries: vec![
                copying("done", 0),
                copying("still", 0),
                copying("just-claimed", 3000),
                waiting("made", 0),
                waiting("old", -100_000),
                waiting("young", 2000),
            ],
        };
        let truth = Truth {
            names: ["done", "still", "made"].map(String::from).into(),
            in_progress: ["still"].map(String::from).into(),
            held: BTreeMap::from([("111111111111".into(), 5), ("333333333333".into(), 1)]),
            now: at(3060),
            wait_limit: Duration::from_secs(24 * 3600),
        };
        let c = corrections(&book, &truth);
        // "just-claimed" is within CLAIM_GRACE: AWS may not list it yet.
        assert_eq!(c.freed, ["done"]);
        assert_eq!(c.dropped, ["made", "old"]);
        assert_eq!(c.recounted, ["222222222222", "333333333333"]);
    }
}
