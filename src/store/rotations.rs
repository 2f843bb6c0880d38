//! Refresh-token rotations gathered into one statement through the pool (PostgreSQL).
//!
//! A rotation on its own is a transaction of three statements that depend on each other
//! (retire the old token, insert the new pair, store the sealed successor), five round trips
//! with `BEGIN` and `COMMIT`, and a commit that waits for the log's flush. Here the token is
//! read first (a gathered lookup), the new pair and its sealed copy are made in the request,
//! and a rotation that arrives while [`RUNNERS`] others are in flight waits for the next
//! statement, which rotates every waiting token at once: one `UPDATE` retires each old token
//! whose row is still live (with its successor), and the same statement inserts the new rows
//! of exactly the tokens it retired. A quiet server rotates each token at once, alone; every
//! rotation is committed before its request is answered.
//!
//! A rotation the statement did not make (the token was rotated, revoked or expired since it
//! was read, or the statement failed) is reported as such, and the caller runs the full
//! transaction, which then finds what happened: the same request retried, a reuse, or an
//! invalid token.

use std::collections::HashSet;
use std::sync::Arc;

use sqlx::{AnyPool, AssertSqlSafe, Row as _};
use tokio::sync::oneshot;

use super::exec::{Param, bind};
use super::gather::Waiting;
use super::inserts::Value;

/// Statements in flight at once (the pool has more connections for everything else).
const RUNNERS: usize = 2;

/// The most rotations one statement makes.
const MAX_ROTATIONS: usize = 32;

/// The columns of a new token row, as [`super::tokens::Minted::insert`] binds them.
const COLUMNS: &str = "token_hash, kind, app_id, user_id, grant_id, family_id, code_hash, \
                       scopes, created_at, expires_at, dpop_jkt, audience, act";
const WIDTH: usize = 13;

/// One rotation to make.
pub(super) struct Rotate {
    /// The hash of the token to retire.
    pub(super) old_hash: String,
    pub(super) now: i64,
    /// The new pair, sealed under a key derived from the old token.
    pub(super) successor: Vec<u8>,
    /// The new rows' values, [`WIDTH`] a row.
    pub(super) rows: Vec<Value>,
    /// The new access token's hash: among the inserted rows exactly when the token rotated.
    pub(super) new_hash: String,
}

struct Waiter {
    rotate: Rotate,
    answer: oneshot::Sender<bool>,
}

/// The rotations waiting to be made.
pub(super) struct Rotations {
    waiting: Waiting<Waiter>,
}

impl Default for Rotations {
    fn default() -> Self {
        Rotations {
            waiting: Waiting::new(RUNNERS),
        }
    }
}

impl Rotations {
    /// Make `rotate` in the next statement: whether the token was rotated (and committed).
    pub(super) async fn rotate(self: &Arc<Self>, pool: &AnyPool, rotate: Rotate) -> bool {
        debug_assert_eq!(rotate.rows.len() % WIDTH, 0);
        let (answer, answered) = oneshot::channel();
        if self.waiting.push(Waiter { rotate, answer }) {
            // A task of its own: the statement runs to its end, and the others waiting in it
            // are answered, even if this request is dropped.
            tokio::spawn(Arc::clone(self).run(pool.clone()));
        }
        answered.await.unwrap_or(false)
    }

    async fn run(self: Arc<Self>, pool: AnyPool) {
        while let Some(group) = self.waiting.next(MAX_ROTATIONS) {
            // One rotation of a token a statement: a second request for the same token (a
            // client's retry) is left to the full transaction, which sees the first one's
            // outcome.
            let mut tokens = HashSet::new();
            let (group, again): (Vec<Waiter>, Vec<Waiter>) = group
                .into_iter()
                .partition(|w| tokens.insert(w.rotate.old_hash.clone()));
            for waiter in again {
                let _ = waiter.answer.send(false);
            }
            let rotated = match execute(&pool, &group).await {
                Ok(rotated) => rotated,
                Err(e) => {
                    tracing::warn!(error = %e, "a gathered refresh rotation failed; each is tried alone");
                    HashSet::new()
                }
            };
            for waiter in group {
                let _ = waiter
                    .answer
                    .send(rotated.contains(&waiter.rotate.new_hash));
            }
        }
    }
}

/// The statement for `count` rotations, each with `rows` new rows.
fn statement(count: usize, rows: usize) -> String {
    let mut n = 0;
    let mut next = || {
        n += 1;
        format!("${n}")
    };
    let mut retire = Vec::with_capacity(count);
    let mut insert = Vec::with_capacity(count * rows);
    for _ in 0..count {
        retire.push(format!("({}, {}, {})", next(), next(), next()));
    }
    for _ in 0..count * rows {
        let values: Vec<String> = (0..=WIDTH).map(|_| next()).collect();
        insert.push(format!("({})", values.join(", ")));
    }
    format!(
        "WITH v (old, successor, now) AS (VALUES {}), \
         r AS (UPDATE tokens SET rotated_at = v.now, successor = v.successor FROM v \
         WHERE tokens.token_hash = v.old AND tokens.kind = 'refresh' \
         AND tokens.rotated_at IS NULL AND tokens.revoked_at IS NULL \
         AND (tokens.expires_at IS NULL OR tokens.expires_at > v.now) \
         AND NOT EXISTS (SELECT 1 FROM users WHERE users.id = tokens.user_id AND users.disabled = 1) \
         RETURNING tokens.token_hash) \
         INSERT INTO tokens ({COLUMNS}) SELECT {COLUMNS} FROM (VALUES {}) AS n (old, {COLUMNS}) \
         WHERE n.old IN (SELECT token_hash FROM r) RETURNING token_hash",
        retire.join(", "),
        insert.join(", "),
    )
}

/// Make `group`'s rotations in one statement: the hashes of the rows it inserted.
async fn execute(pool: &AnyPool, group: &[Waiter]) -> Result<HashSet<String>, sqlx::Error> {
    let Some(first) = group.first() else {
        return Ok(HashSet::new());
    };
    let rows = first.rotate.rows.len() / WIDTH;
    if group.iter().any(|w| w.rotate.rows.len() != rows * WIDTH) {
        return Err(sqlx::Error::Protocol(
            "rotations with different row counts".into(),
        ));
    }
    let mut params: Vec<Param<'_>> = Vec::with_capacity(group.len() * (3 + rows * (WIDTH + 1)));
    for w in group {
        params.extend([
            Param::Text(&w.rotate.old_hash),
            Param::Blob(&w.rotate.successor),
            Param::Int(w.rotate.now),
        ]);
    }
    for w in group {
        for row in w.rotate.rows.chunks(WIDTH) {
            params.push(Param::Text(&w.rotate.old_hash));
            params.extend(row.iter().map(Value::param));
        }
    }
    // Built from fixed text and numbered placeholders only.
    let sql = statement(group.len(), rows);
    let inserted = bind(sqlx::query(AssertSqlSafe(sql)), &params)
        .fetch_all(pool)
        .await?;
    inserted.iter().map(|row| row.try_get(0)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_numbers_every_value_once() {
        let sql = statement(2, 2);
        assert!(sql.contains("VALUES ($1, $2, $3), ($4, $5, $6))"));
        assert!(sql.contains("($7, $8,"));
        assert!(sql.contains(", $62)) AS n"), "{sql}");
        assert!(!sql.contains("$63"));
    }
}
