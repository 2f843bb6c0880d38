//! Single-use credentials spent together with other requests' through the pool (PostgreSQL):
//! refresh tokens rotated, authorization codes redeemed.
//!
//! Spending one on its own is a transaction of statements that depend on each other (retire
//! the old row, insert the new tokens, for a refresh token store its sealed successor): four or
//! five round trips with `BEGIN` and `COMMIT`, and a commit that waits for the log's flush.
//! Here the caller reads the credential first (a gathered lookup), checks it and makes the new
//! tokens in the request, and a spend that arrives while [`RUNNERS`] statements are in flight
//! waits for the next, which spends every waiting credential of its kind at once: one
//! `UPDATE` retires each one whose row is still live, and the same statement inserts the new
//! rows of exactly those it retired. A quiet server spends each at once, alone; every spend is
//! committed before its request is answered.
//!
//! A spend the statement did not make (the credential was used, revoked or expired since it
//! was read, or the statement failed) is reported as such, and the caller runs the full
//! transaction, which then finds what happened: a retry, a replay, or an invalid credential.

use std::collections::HashSet;
use std::sync::Arc;

use sqlx::{AnyPool, AssertSqlSafe, Row as _};
use tokio::sync::oneshot;

use super::exec::{Param, bind};
use super::gather::{Texts, Waiting};
use super::inserts::Value;

/// Statements in flight at once (the pool has more connections for everything else).
const RUNNERS: usize = 2;

/// The most credentials one statement spends.
const MAX_SPENDS: usize = 32;

/// The columns of a new token row, as [`super::tokens::Minted::insert`] binds them.
const COLUMNS: &str = "token_hash, kind, app_id, user_id, grant_id, family_id, code_hash, \
                       scopes, created_at, expires_at, dpop_jkt, audience, act";
const WIDTH: usize = 13;

/// How one kind of credential is retired.
pub(super) struct Kind {
    /// The columns of `v` after `old` (the credential's hash), one value each a spend.
    columns: &'static str,
    /// An `UPDATE … FROM v` that retires each live credential of `v`, `RETURNING` its hash
    /// as `old`.
    retire: &'static str,
}

/// A refresh token: retired with its sealed successor.
pub(super) const ROTATION: Kind = Kind {
    columns: "successor, now",
    retire: "UPDATE tokens SET rotated_at = v.now, successor = v.successor FROM v \
             WHERE tokens.token_hash = v.old AND tokens.kind = 'refresh' \
             AND tokens.rotated_at IS NULL AND tokens.revoked_at IS NULL \
             AND (tokens.expires_at IS NULL OR tokens.expires_at > v.now) \
             AND NOT EXISTS (SELECT 1 FROM users WHERE users.id = tokens.user_id AND users.disabled = 1) \
             RETURNING tokens.token_hash AS old",
};

/// An authorization code: spent while its user is enabled and its grant stands.
pub(super) const REDEMPTION: Kind = Kind {
    columns: "now",
    retire: "UPDATE auth_codes SET used_at = v.now FROM v \
             WHERE auth_codes.code_hash = v.old AND auth_codes.used_at IS NULL \
             AND auth_codes.expires_at > v.now \
             AND NOT EXISTS (SELECT 1 FROM users WHERE users.id = auth_codes.user_id AND users.disabled = 1) \
             AND EXISTS (SELECT 1 FROM grants WHERE grants.id = auth_codes.grant_id) \
             RETURNING auth_codes.code_hash AS old",
};

impl Kind {
    /// How many columns of `v` follow `old`.
    fn width(&self) -> usize {
        self.columns.split(',').count()
    }
}

/// One credential to spend.
pub(super) struct Spend {
    pub(super) kind: &'static Kind,
    /// The credential's hash.
    pub(super) old: String,
    /// Its values for the kind's other columns of `v`.
    pub(super) values: Vec<Value>,
    /// The new token rows' values, [`WIDTH`] a row.
    pub(super) rows: Vec<Value>,
    /// The new access token's hash: among the inserted rows exactly when the spend was made.
    pub(super) new_hash: String,
}

struct Waiter {
    spend: Spend,
    answer: oneshot::Sender<bool>,
}

/// The spends waiting to be made.
pub(super) struct Spends {
    waiting: Waiting<Waiter>,
    /// Each statement's text, by kind, spends and new rows a spend.
    texts: Texts<(&'static str, usize, usize)>,
}

impl Default for Spends {
    fn default() -> Self {
        Spends {
            waiting: Waiting::new(RUNNERS),
            texts: Texts::new(),
        }
    }
}

impl Spends {
    /// Make `spend` in the next statement: whether it was made (and committed).
    pub(super) async fn spend(self: &Arc<Self>, pool: &AnyPool, spend: Spend) -> bool {
        debug_assert_eq!(spend.values.len(), spend.kind.width());
        debug_assert_eq!(spend.rows.len() % WIDTH, 0);
        let (answer, answered) = oneshot::channel();
        if self.waiting.push(Waiter { spend, answer }) {
            // A task of its own: the statement runs to its end, and the others waiting in it
            // are answered, even if this request is dropped.
            tokio::spawn(Arc::clone(self).run(pool.clone()));
        }
        answered.await.unwrap_or(false)
    }

    async fn run(self: Arc<Self>, pool: AnyPool) {
        while let Some(mut group) = self.waiting.next(MAX_SPENDS) {
            // One statement per kind and count of new rows (in practice a group is all one).
            group.sort_by_key(|w| (w.spend.kind.retire, w.spend.rows.len()));
            while !group.is_empty() {
                let first = &group[0].spend;
                let (retire, rows) = (first.kind.retire, first.rows.len());
                let same = group
                    .iter()
                    .take_while(|w| w.spend.kind.retire == retire && w.spend.rows.len() == rows)
                    .count();
                self.write(&pool, group.drain(..same).collect()).await;
            }
        }
    }

    /// Make `group`'s spends (of one kind and row count) in one statement and answer each.
    async fn write(&self, pool: &AnyPool, group: Vec<Waiter>) {
        // One spend of a credential a statement: a second request for the same one (a client's
        // retry, or a replay) is left to the full transaction, which sees the first's outcome.
        let mut seen = HashSet::new();
        let (group, again): (Vec<Waiter>, Vec<Waiter>) = group
            .into_iter()
            .partition(|w| seen.insert(w.spend.old.clone()));
        for waiter in again {
            let _ = waiter.answer.send(false);
        }
        let made = match self.execute(pool, &group).await {
            Ok(made) => made,
            Err(e) => {
                tracing::warn!(error = %e, "spending credentials together failed; each is tried alone");
                HashSet::new()
            }
        };
        for waiter in group {
            let _ = waiter.answer.send(made.contains(&waiter.spend.new_hash));
        }
    }

    /// Make `group`'s spends in one statement: the hashes of the rows it inserted. The
    /// statement is for 1, 2, 4, … spends, so each connection prepares a handful of statements,
    /// not one per group size; the places left over repeat the last spend under a hash no
    /// credential has (the empty text), which retires nothing and so inserts nothing.
    async fn execute(
        &self,
        pool: &AnyPool,
        group: &[Waiter],
    ) -> Result<HashSet<String>, sqlx::Error> {
        let Some(last) = group.last() else {
            return Ok(HashSet::new());
        };
        let (kind, rows) = (last.spend.kind, last.spend.rows.len() / WIDTH);
        let size = group.len().next_power_of_two();
        let spends = || {
            (0..size).map(|i| match group.get(i) {
                Some(w) => (w.spend.old.as_str(), &w.spend),
                None => ("", &last.spend),
            })
        };
        let mut params: Vec<Param<'_>> =
            Vec::with_capacity(size * (1 + kind.width() + rows * (1 + WIDTH)));
        for (old, spend) in spends() {
            params.push(Param::Text(old));
            params.extend(spend.values.iter().map(Value::param));
        }
        for (old, spend) in spends() {
            for row in spend.rows.chunks(WIDTH) {
                params.push(Param::Text(old));
                params.extend(row.iter().map(Value::param));
            }
        }
        // Built from fixed text and numbered placeholders only.
        let sql = self
            .texts
            .get((kind.retire, size, rows), || statement(kind, size, rows));
        let inserted = bind(sqlx::query(AssertSqlSafe(sql)), &params)
            .fetch_all(pool)
            .await?;
        inserted.iter().map(|row| row.try_get(0)).collect()
    }
}

/// The statement spending `count` credentials of `kind`, each with `rows` new rows.
fn statement(kind: &Kind, count: usize, rows: usize) -> String {
    let mut n = 0;
    let mut tuple = |width: usize| {
        let list: Vec<String> = (0..width)
            .map(|_| {
                n += 1;
                format!("${n}")
            })
            .collect();
        format!("({})", list.join(", "))
    };
    let retired: Vec<String> = (0..count).map(|_| tuple(1 + kind.width())).collect();
    let inserted: Vec<String> = (0..count * rows).map(|_| tuple(1 + WIDTH)).collect();
    format!(
        "WITH v (old, {}) AS (VALUES {}), r AS ({}) \
         INSERT INTO tokens ({COLUMNS}) SELECT {COLUMNS} FROM (VALUES {}) AS n (old, {COLUMNS}) \
         WHERE n.old IN (SELECT old FROM r) RETURNING token_hash",
        kind.columns,
        retired.join(", "),
        kind.retire,
        inserted.join(", "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_numbers_every_value_once() {
        let sql = statement(&ROTATION, 2, 2);
        assert!(sql.contains("VALUES ($1, $2, $3), ($4, $5, $6)), r AS (UPDATE tokens"));
        assert!(sql.contains("(VALUES ($7, $8,"));
        assert!(sql.contains(", $62)) AS n"), "{sql}");
        assert!(!sql.contains("$63"));
        let sql = statement(&REDEMPTION, 1, 2);
        assert!(sql.starts_with("WITH v (old, now) AS (VALUES ($1, $2)), r AS (UPDATE auth_codes"));
        assert!(sql.contains(", $30)) AS n"), "{sql}");
    }
}
