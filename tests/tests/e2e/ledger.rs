//! The copy ledger on DynamoDB as the emulator serves it (moto): a slot and a source's
//! budget are taken atomically by invocations racing for them, over real HTTP calls.

use futures_util::future::join_all;
use snapferry::ResourceKind;
use snapferry::ledger::{Claim, DynamoLedger, Entry, Ledger, Pool, State, Taken, Truth};
use snapferry_e2e::{REGION, clients, new_account};
use std::collections::BTreeMap;

async fn ledger() -> DynamoLedger {
    let account = new_account();
    let c = clients(&account, REGION).await;
    let table = snapferry::routing::Routing::load().copy_ledger;
    snapferry_local::ensure_copy_ledger(&c, &table).await.expect("the table");
    DynamoLedger::new(c.dynamodb.clone(), table)
}

#[tokio::test]
async fn of_five_invocations_racing_for_two_slots_two_get_one_and_no_slot_is_taken_twice() {
    let ledger = ledger().await;
    let pool = Pool::new(ResourceKind::DbCluster, REGION);
    let now = chrono::Utc::now();
    let names: Vec<String> = (0..5).map(|i| format!("copy-{i}")).collect();
    let claims = names.iter().map(|copy| {
        let (ledger, pool) = (&ledger, &pool);
        async move {
            let claim = Claim { copy, source: "111111111111", by: "m-1", slots: 2, held: None, in_flight: None, now };
            ledger.take(pool, &claim).await.expect("take")
        }
    });
    let taken = join_all(claims).await;
    let count = |t: Taken| taken.iter().filter(|x| **x == t).count();
    assert_eq!((count(Taken::Slot), count(Taken::SlotsFull)), (2, 3), "{taken:?}");
    let book = ledger.book(&pool).await.expect("book");
    assert_eq!((book.in_flight, book.copying().count()), (2, 2), "{book:?}");
    assert_eq!(book.source("111111111111").held, 2);

    // Taken again by a redelivery of a copy that holds its slot: no second slot.
    let holder = book.copying().next().unwrap().0.copy.clone();
    let again = Claim { copy: &holder, source: "111111111111", by: "m-1", slots: 5, held: None, in_flight: None, now };
    assert_eq!(ledger.take(&pool, &again).await.unwrap(), Taken::Already);
    // By another message about the same copy (a duplicate, or the other announcement): it
    // is told another handling makes it, and takes nothing.
    let other = Claim { by: "m-2", ..again.clone() };
    assert_eq!(ledger.take(&pool, &other).await.unwrap(), Taken::Elsewhere);
    assert_eq!(ledger.book(&pool).await.unwrap().in_flight, 2);

    // Released by two invocations at once (the event and the re-check): freed once.
    let took = Some(std::time::Duration::from_secs(42));
    let released = join_all([
        ledger.release(&pool, &holder, "111111111111", took),
        ledger.release(&pool, &holder, "111111111111", took),
    ])
    .await;
    let freed = released.into_iter().map(|r| r.expect("release")).filter(|r| *r).count();
    assert_eq!(freed, 1);
    let book = ledger.book(&pool).await.unwrap();
    assert_eq!((book.in_flight, book.source("111111111111").in_flight), (1, 1));
    assert_eq!(book.copy_time, took, "a copy that was made times the next ones");
}

#[tokio::test]
async fn a_sources_budget_holds_under_racing_claims_and_the_others_are_not_charged() {
    let ledger = ledger().await;
    let pool = Pool::new(ResourceKind::DbInstance, REGION);
    let now = chrono::Utc::now();
    // The flood may hold 3 copies; six of its shares are claimed at once into 20 free slots.
    let names: Vec<String> = (0..6).map(|i| format!("flood-{i}")).collect();
    let claims = names.iter().map(|copy| {
        let (ledger, pool) = (&ledger, &pool);
        async move {
            let claim =
                Claim { copy, source: "444444444444", by: "m-1", slots: 20, held: Some(3), in_flight: None, now };
            ledger.take(pool, &claim).await.expect("take")
        }
    });
    let taken = join_all(claims).await;
    let slots = taken.iter().filter(|t| **t == Taken::Slot).count();
    let refused = taken.iter().filter(|t| **t == Taken::HeldFull).count();
    assert_eq!((slots, refused), (3, 3), "{taken:?}");
    // Another source's copy still gets a slot.
    let honest =
        Claim { copy: "nightly", source: "111111111111", by: "m-1", slots: 20, held: Some(3), in_flight: None, now };
    assert_eq!(ledger.take(&pool, &honest).await.unwrap(), Taken::Slot);
    // In flight: a cap of 1 for the honest source holds too.
    let second = Claim { copy: "nightly-2", in_flight: Some(1), ..honest };
    assert_eq!(ledger.take(&pool, &second).await.unwrap(), Taken::InFlightFull);
}

#[tokio::test]
async fn the_line_and_the_counts_are_corrected_from_what_aws_reports() {
    let ledger = ledger().await;
    let pool = Pool::new(ResourceKind::Ebs, REGION);
    let long_ago = chrono::Utc::now() - chrono::Duration::hours(2);
    let claim = Claim {
        copy: "ended",
        source: "111111111111",
        by: "m-1",
        slots: 20,
        held: None,
        in_flight: None,
        now: long_ago,
    };
    assert_eq!(ledger.take(&pool, &claim).await.unwrap(), Taken::Slot);
    let waiting = Entry {
        copy: "made-since".into(),
        source: "111111111111".into(),
        state: State::Waiting { since: long_ago, taken_at: None },
    };
    ledger.wait(&pool, &waiting).await.unwrap();
    let truth = Truth {
        names: ["ended", "made-since"].map(String::from).into(),
        held: BTreeMap::from([("111111111111".to_string(), 7)]),
        now: chrono::Utc::now(),
        wait_limit: std::time::Duration::from_secs(24 * 3600),
        ..Truth::default()
    };
    let corrected = ledger.correct(&pool, &truth).await.unwrap();
    assert_eq!((corrected.freed, corrected.dropped), (vec!["ended".to_string()], vec!["made-since".to_string()]));
    let book = ledger.book(&pool).await.unwrap();
    assert_eq!((book.in_flight, book.entries.len(), book.source("111111111111").held), (0, 0, 7), "{book:?}");
}
