//! Point lookups by one key, gathered into shared queries through the pool (PostgreSQL).
//!
//! Each statement costs the database far more than the row it returns: parsing the message,
//! starting and ending the executor, the round trip and its wake-ups. The resource API does
//! one such lookup per request. Here a lookup that arrives while [`RUNNERS`] queries are
//! already in flight waits for the next one, which then asks for every key waiting at once
//! (`WHERE key IN ($1, …)`). A quiet server runs each lookup at once, alone; a busy one pays
//! one statement for many requests. Every lookup is still a fresh read that starts after its
//! request arrived, so a token revoked on any node is refused by the next request here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use sqlx::any::AnyRow;
use sqlx::{AnyPool, AssertSqlSafe, Row as _};
use tokio::sync::oneshot;

use super::exec::{Param, bind};

/// Queries of one kind in flight at once (the pool has more connections for everything else).
const RUNNERS: usize = 2;

/// Statement sizes: a group is padded up to the next one by repeating its last key, so each
/// connection prepares a handful of statements, not one per group size.
const SIZES: [usize; 6] = [1, 2, 4, 8, 16, 32];

type Answer = Result<Option<AnyRow>, String>;

/// One kind of lookup: `SELECT … WHERE <key> IN (…)`, whose rows carry the key in a column.
pub(super) struct Gather {
    /// The statement for each of [`SIZES`].
    statements: [Arc<str>; SIZES.len()],
    /// The result column that holds the key.
    key_column: &'static str,
    waiting: Waiting<(String, oneshot::Sender<Answer>)>,
}

/// Work waiting for a runner, and how many runners are at it.
pub(super) struct Waiting<T> {
    state: Mutex<(Vec<T>, usize)>,
    runners: usize,
}

impl<T> Waiting<T> {
    /// At most `runners` at work at once.
    pub(super) fn new(runners: usize) -> Self {
        Waiting {
            state: Mutex::new((Vec::new(), 0)),
            runners,
        }
    }

    /// Queue `item`; whether the caller must start a runner (one more is allowed).
    pub(super) fn push(&self, item: T) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.0.push(item);
        let start = state.1 < self.runners;
        if start {
            state.1 += 1;
        }
        start
    }

    /// A runner's next group, at most `max` in the order queued; `None` when nothing waits
    /// (the runner then stops).
    pub(super) fn next(&self, max: usize) -> Option<Vec<T>> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.0.is_empty() {
            state.1 -= 1;
            return None;
        }
        let take = state.0.len().min(max);
        Some(state.0.drain(..take).collect())
    }
}

/// Statement texts made once and kept, by what they are made from: the texts of gathered
/// statements depend on how many rows or keys a group has, and making one costs hundreds of
/// small allocations.
pub(super) struct Texts<K>(Mutex<HashMap<K, Arc<str>>>);

impl<K: std::hash::Hash + Eq> Texts<K> {
    pub(super) fn new() -> Self {
        Texts(Mutex::new(HashMap::new()))
    }

    /// The text for `key`, made by `make` the first time.
    pub(super) fn get(&self, key: K, make: impl FnOnce() -> String) -> Arc<str> {
        let mut texts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(texts.entry(key).or_insert_with(|| make().into()))
    }
}

impl Gather {
    /// `select` is the query up to its `WHERE`; `key` the column compared (`t.token_hash`),
    /// which must also be selected as `key_column`.
    pub(super) fn new(select: &str, key: &str, key_column: &'static str) -> Gather {
        let statements = SIZES.map(|n| {
            let list: Vec<String> = (1..=n).map(|i| format!("${i}")).collect();
            Arc::from(format!("{select} WHERE {key} IN ({})", list.join(", ")))
        });
        Gather {
            statements,
            key_column,
            waiting: Waiting::new(RUNNERS),
        }
    }

    /// The row whose key is `key`, if any.
    pub(super) async fn lookup(
        self: &Arc<Self>,
        pool: &AnyPool,
        key: String,
    ) -> Result<Option<AnyRow>, sqlx::Error> {
        let (answer, answered) = oneshot::channel();
        if self.waiting.push((key, answer)) {
            // A task of its own: the query runs to its end, and answers the others waiting
            // with it, even if this request is dropped.
            tokio::spawn(Arc::clone(self).run(pool.clone()));
        }
        match answered.await {
            Ok(answer) => answer.map_err(|e| sqlx::Error::Io(std::io::Error::other(e))),
            Err(_) => Err(sqlx::Error::PoolClosed),
        }
    }

    /// Answer groups of waiting lookups until none is left.
    async fn run(self: Arc<Self>, pool: AnyPool) {
        while let Some(group) = self.waiting.next(SIZES[SIZES.len() - 1]) {
            let size = SIZES.iter().position(|&s| s >= group.len()).unwrap_or(0);
            let keys: Vec<Param<'_>> = (0..SIZES[size])
                .map(|i| Param::Text(&group[i.min(group.len() - 1)].0))
                .collect();
            // Built from fixed text and numbered placeholders only.
            let sql = AssertSqlSafe(Arc::clone(&self.statements[size]));
            match bind(sqlx::query(sql), &keys).fetch_all(&pool).await {
                Ok(rows) => {
                    // Each row with the number of lookups waiting for it: the same key may wait
                    // twice (two requests with one token), and only then is its row copied.
                    let mut by_key: HashMap<String, (AnyRow, usize)> =
                        HashMap::with_capacity(rows.len());
                    for row in rows {
                        if let Ok(key) = row.try_get::<String, _>(self.key_column) {
                            by_key.insert(key, (row, 0));
                        }
                    }
                    for (key, _) in &group {
                        if let Some((_, waiting)) = by_key.get_mut(key) {
                            *waiting += 1;
                        }
                    }
                    for (key, answer) in group {
                        let row = match by_key.get_mut(&key) {
                            Some((row, waiting)) if *waiting > 1 => {
                                *waiting -= 1;
                                Some(row.clone())
                            }
                            Some(_) => by_key.remove(&key).map(|(row, _)| row),
                            None => None,
                        };
                        let _ = answer.send(Ok(row));
                    }
                }
                Err(e) => {
                    let message = e.to_string();
                    for (_, answer) in group {
                        let _ = answer.send(Err(message.clone()));
                    }
                }
            }
        }
    }
}
