//! The copy ledger in memory: DynamoDB's semantics (a claim is all or nothing, conditions
//! checked at once under the cloud's lock), one per account, as [`crate::ledger::Ledger`].

use super::Cloud;
use crate::error::Result;
use crate::ledger::{Book, Claim, Corrected, Entry, Ledger, Pool, State, Taken, Truth, corrections};
use async_trait::async_trait;
use std::time::Duration;

pub(super) struct MemLedger {
    pub(super) cloud: Cloud,
    pub(super) account: String,
}

impl MemLedger {
    fn with<T>(&self, op: &'static str, pool: &Pool, f: impl FnOnce(&mut Book) -> T) -> Result<T> {
        self.cloud.call(op, format!("{} {}", self.account, pool))?;
        let mut s = self.cloud.lock();
        Ok(f(s.ledgers.entry((self.account.clone(), pool.clone())).or_default()))
    }
}

fn release(book: &mut Book, copy: &str, source: &str, took: Option<Duration>) -> bool {
    let copying = |e: &Entry| e.copy == copy && e.source == source && matches!(e.state, State::Copying { .. });
    let Some(i) = book.entries.iter().position(copying) else {
        return false;
    };
    let entry = book.entries.remove(i);
    book.in_flight = book.in_flight.saturating_sub(1);
    let mine = book.sources.entry(entry.source).or_default();
    mine.in_flight = mine.in_flight.saturating_sub(1);
    if took.is_some() {
        book.copy_time = took;
    }
    true
}

#[async_trait]
impl Ledger for MemLedger {
    async fn book(&self, pool: &Pool) -> Result<Book> {
        self.with("Query", pool, |book| book.clone())
    }

    async fn take(&self, pool: &Pool, claim: &Claim<'_>) -> Result<Taken> {
        self.with("TransactWriteItems", pool, |book| {
            let entry = book.entries.iter().position(|e| e.copy == claim.copy);
            if let Some(i) = entry
                && let State::Copying { by, .. } = &book.entries[i].state
            {
                return if by == claim.by { Taken::Already } else { Taken::Elsewhere };
            }
            let mine = book.source(claim.source);
            if claim.held.is_some_and(|h| mine.held >= h) {
                return Taken::HeldFull;
            }
            if claim.in_flight.is_some_and(|f| mine.in_flight >= f) {
                return Taken::InFlightFull;
            }
            if book.in_flight >= claim.slots {
                return Taken::SlotsFull;
            }
            book.in_flight += 1;
            let mine = book.sources.entry(claim.source.to_string()).or_default();
            mine.held += 1;
            mine.in_flight += 1;
            let copying = Entry {
                copy: claim.copy.to_string(),
                source: claim.source.to_string(),
                state: State::Copying { started_at: claim.now, by: claim.by.to_string() },
            };
            match entry {
                Some(i) => book.entries[i] = copying,
                None => book.entries.push(copying),
            }
            Taken::Slot
        })
    }

    async fn holder(&self, pool: &Pool, copy: &str) -> Result<Option<String>> {
        self.with("Query", pool, |book| {
            book.entries.iter().find(|e| e.copy == copy).and_then(|e| match &e.state {
                State::Copying { by, .. } => Some(by.clone()),
                State::Waiting { .. } => None,
            })
        })
    }

    async fn wait(&self, pool: &Pool, entry: &Entry) -> Result<()> {
        self.with("PutItem", pool, |book| {
            if !book.entries.iter().any(|e| e.copy == entry.copy) {
                book.entries.push(entry.clone());
            }
        })
    }

    async fn unwait(&self, pool: &Pool, copy: &str) -> Result<()> {
        self.with("DeleteItem", pool, |book| {
            book.entries.retain(|e| e.copy != copy || !matches!(e.state, State::Waiting { .. }));
        })
    }

    async fn release(&self, pool: &Pool, copy: &str, source: &str, took: Option<Duration>) -> Result<bool> {
        self.with("TransactWriteItems", pool, |book| release(book, copy, source, took))
    }

    async fn held_less(&self, pool: &Pool, source: &str) -> Result<()> {
        self.with("UpdateItem", pool, |book| {
            if let Some(mine) = book.sources.get_mut(source) {
                mine.held = mine.held.saturating_sub(1);
            }
        })
    }

    async fn correct(&self, pool: &Pool, truth: &Truth) -> Result<Corrected> {
        self.with("Query", pool, |book| {
            let out = corrections(book, truth);
            for copy in &out.freed {
                let source =
                    book.entries.iter().find(|e| e.copy == *copy).map(|e| e.source.clone()).unwrap_or_default();
                release(book, copy, &source, None);
            }
            book.entries.retain(|e| !(out.dropped.contains(&e.copy) && matches!(e.state, State::Waiting { .. })));
            for source in &out.recounted {
                book.sources.entry(source.clone()).or_default().held =
                    truth.held.get(source).copied().unwrap_or_default();
            }
            out
        })
    }
}
