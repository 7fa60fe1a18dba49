//! Y8: the module docs of `evloop::sync` carry a cancellation-safety table with a row
//! for every async method. This pins that the table names each of them — so a new wait
//! cannot be added without saying what a cancel or a drop does to it — and, by calling
//! each one below, that every name in the list is a real method (a rename breaks the
//! build of this test, not just the table).

const MODULE_DOCS: &str = include_str!("../src/sync/mod.rs");

/// Every async method of `evloop::sync`, as the table names it.
const ASYNC_METHODS: &[&str] = &[
    "`Mutex::lock`",
    "`Condition::acquire`",
    "`Semaphore::acquire`",
    "`BoundedSemaphore::acquire`",
    "`Event::wait`",
    "`Condition::wait`",
    "`wait_for`",
    "`Barrier::wait`",
    "`Queue::get`",
    "`Queue::put`",
    "`Queue::join`",
    "`mpsc::Receiver::recv`",
    "`mpsc::Sender::send`",
    "`broadcast::Receiver::recv`",
    "`watch::Receiver::changed`",
    "`SharedMutex::lock`",
    "`SharedSemaphore::acquire`",
    "`SharedEvent::wait`",
];

#[test]
fn the_cancellation_table_has_a_row_for_every_async_method() {
    let table: Vec<&str> = MODULE_DOCS
        .lines()
        .skip_while(|l| !l.contains("## Cancellation safety (Y8)"))
        .filter(|l| l.starts_with("//! | `"))
        .collect();
    assert!(!table.is_empty(), "the module docs lost the Y8 table");
    let missing: Vec<_> = ASYNC_METHODS
        .iter()
        .filter(|m| !table.iter().any(|row| row.contains(*m)))
        .collect();
    assert!(missing.is_empty(), "no Y8 row for {missing:?}");
    for row in &table {
        assert!(
            row.contains("safe") || row.contains("re-acquires"),
            "a Y8 row must say what a cancel does: {row}"
        );
    }
}

/// Names every method of the list (type-checked only: never run).
#[allow(dead_code, unused_must_use, clippy::let_underscore_future)]
async fn every_listed_method_exists() {
    use evloop::sync::*;
    let (m, c, s, b) = (
        Mutex::new(()),
        Condition::new(),
        Semaphore::new(1),
        BoundedSemaphore::new(1),
    );
    let _ = (m.lock(), c.acquire(), s.acquire(), b.acquire());
    let (e, bar, q) = (Event::new(), Barrier::new(1), Queue::<u8>::new(0));
    let _ = (e.wait(), bar.wait(), q.get(), q.put(1), q.join());
    if let Ok(g) = c.acquire().await {
        let g = c.wait(g).await.unwrap();
        let _ = c.wait_for(g, |_| true);
    }
    let (tx, mut rx) = mpsc::channel::<u8>(1);
    let _ = tx.send(1);
    let _ = rx.recv();
    let (btx, mut brx) = broadcast::channel::<u8>(1);
    let _ = brx.recv();
    drop(btx);
    let (_wtx, mut wrx) = watch::channel(0u8);
    let _ = wrx.changed();
    let (sm, ss, se) = (
        SharedMutex::new(()),
        SharedSemaphore::new(1),
        SharedEvent::new(),
    );
    let _ = (sm.lock(), ss.acquire(), se.wait());
}
