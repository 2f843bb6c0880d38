//! Heartbeats, their rollups, archived projects and WakaTime API keys.
//!
//! Ingest keeps two derived values exact: each heartbeat's `gap_us` (its share of coding time)
//! and the 15-minute `activity_buckets` that sum them. A batch inserts its new heartbeats, then
//! recomputes the gaps of the window it touched (from the heartbeat before its first to the one
//! after its last) and adds the differences to the buckets, all in one transaction that holds
//! the user's row lock, so concurrent batches of one user cannot interleave.

use std::collections::{BTreeMap, HashMap};

use sqlx::Row;

use super::{Backend, Store, flag};
use crate::domain::activity::{BUCKET_SECS, Heartbeat, bucket_of, gap};
use crate::domain::seal;
use crate::domain::user::User;

/// Rows per multi-row statement (kept well under both backends' parameter limits).
const CHUNK: usize = 400;
/// Heartbeat rows per multi-row insert on PostgreSQL.
const INSERT_CHUNK: usize = 25;

/// A stored heartbeat, as the API shows it.
#[derive(Debug, Clone)]
pub struct StoredHeartbeat {
    pub id: String,
    pub hb: Heartbeat,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct ProjectSummary {
    pub name: String,
    pub total_us: i64,
    pub most_recent_us: i64,
    pub languages: Vec<String>,
    pub archived: bool,
}

struct WindowRow {
    id: String,
    time_us: i64,
    gap_us: i64,
    project: String,
    coding: bool,
}

fn placeholders(start: usize, width: usize, rows: usize) -> String {
    (0..rows)
        .map(|r| {
            let cols: Vec<String> = (0..width)
                .map(|c| format!("${}", start + r * width + c))
                .collect();
            format!("({})", cols.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn window_row(row: &sqlx::any::AnyRow) -> Result<WindowRow, sqlx::Error> {
    Ok(WindowRow {
        id: row.try_get("id")?,
        time_us: row.try_get("time_us")?,
        gap_us: row.try_get("gap_us")?,
        project: row.try_get("project")?,
        coding: row.try_get::<String, _>("category")? == "coding",
    })
}

const HEARTBEAT_COLUMNS: &str = "id, time_us, entity, type, category, project, branch, language, editor, \
     operating_system, machine, is_write, lines, lineno, cursorpos, dependencies, user_agent, created_at";

fn stored_from_row(row: &sqlx::any::AnyRow) -> Result<StoredHeartbeat, sqlx::Error> {
    Ok(StoredHeartbeat {
        id: row.try_get("id")?,
        created_at: row.try_get("created_at")?,
        hb: Heartbeat {
            time_us: row.try_get("time_us")?,
            entity: row.try_get("entity")?,
            kind: row.try_get("type")?,
            category: row.try_get("category")?,
            project: row.try_get("project")?,
            branch: row.try_get("branch")?,
            language: row.try_get("language")?,
            is_write: row.try_get::<i64, _>("is_write")? != 0,
            lines: row.try_get("lines")?,
            lineno: row.try_get("lineno")?,
            cursorpos: row.try_get("cursorpos")?,
            dependencies: row.try_get("dependencies")?,
            user_agent: row.try_get("user_agent")?,
            editor: row.try_get("editor")?,
            operating_system: row.try_get("operating_system")?,
            machine: row.try_get("machine")?,
        },
    })
}

impl Store {
    /// Store heartbeats (duplicates are ignored) and keep gaps and rollups exact.
    /// Returns how many were new.
    pub async fn ingest(
        &self,
        user_id: &str,
        batch: &[&Heartbeat],
        now: i64,
    ) -> Result<usize, sqlx::Error> {
        // Sort and drop repeats within the batch itself.
        let mut fresh: Vec<(String, String, &Heartbeat)> = batch
            .iter()
            .map(|&hb| (hb.id(user_id), hb.dedup_hash(), hb))
            .collect();
        fresh.sort_by(|a, b| a.2.time_us.cmp(&b.2.time_us).then_with(|| a.0.cmp(&b.0)));
        fresh.dedup_by(|a, b| a.1 == b.1);
        let (Some(lo), Some(hi)) = (
            fresh.first().map(|f| f.2.time_us),
            fresh.last().map(|f| f.2.time_us),
        ) else {
            return Ok(0);
        };

        let mut tx = self.begin().await?;
        // The user's row lock serialises this user's batches on PostgreSQL (SQLite already
        // serialises writers), so the window read below stays true until commit.
        sqlx::query("UPDATE users SET updated_at = updated_at WHERE id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;

        // What is already stored around the batch: the heartbeat before it, those inside its
        // time span (a backfill may interleave), and the first one after it.
        let mut existing: Vec<(WindowRow, String)> = Vec::new();
        if let Some(prev) = sqlx::query(
            "SELECT id, time_us, gap_us, project, category, dedup_hash FROM heartbeats \
             WHERE user_id = $1 AND time_us < $2 ORDER BY time_us DESC, id DESC LIMIT 1",
        )
        .bind(user_id)
        .bind(lo)
        .fetch_optional(&mut *tx)
        .await?
        {
            existing.push((window_row(&prev)?, prev.try_get("dedup_hash")?));
        }
        for row in sqlx::query(
            "SELECT id, time_us, gap_us, project, category, dedup_hash FROM heartbeats \
             WHERE user_id = $1 AND time_us >= $2 AND time_us <= $3 ORDER BY time_us, id",
        )
        .bind(user_id)
        .bind(lo)
        .bind(hi)
        .fetch_all(&mut *tx)
        .await?
        {
            existing.push((window_row(&row)?, row.try_get("dedup_hash")?));
        }
        let after: Option<i64> = sqlx::query_scalar(
            "SELECT time_us FROM heartbeats WHERE user_id = $1 AND time_us > $2 ORDER BY time_us, id LIMIT 1",
        )
        .bind(user_id)
        .bind(hi)
        .fetch_optional(&mut *tx)
        .await?;

        // Heartbeats already stored are not stored again.
        let known: std::collections::HashSet<&str> =
            existing.iter().map(|(_, h)| h.as_str()).collect();
        fresh.retain(|(_, hash, _)| !known.contains(hash.as_str()));
        if fresh.is_empty() {
            tx.commit().await?;
            return Ok(0);
        }

        // Merge old and new in (time, id) order and work out every gap. New heartbeats are
        // inserted with theirs; old ones whose gap changed are updated.
        struct Slot<'a> {
            row: WindowRow,
            new: Option<&'a Heartbeat>,
            gap: i64,
        }
        let mut slots: Vec<Slot> = existing
            .into_iter()
            .map(|(row, _)| Slot {
                gap: row.gap_us,
                row,
                new: None,
            })
            .collect();
        for (id, _, hb) in &fresh {
            slots.push(Slot {
                row: WindowRow {
                    id: id.clone(),
                    time_us: hb.time_us,
                    gap_us: 0,
                    project: hb.project.clone(),
                    coding: hb.category == "coding",
                },
                new: Some(hb),
                gap: 0,
            });
        }
        slots.sort_by(|a, b| {
            a.row
                .time_us
                .cmp(&b.row.time_us)
                .then_with(|| a.row.id.cmp(&b.row.id))
        });
        let times: Vec<i64> = slots.iter().map(|s| s.row.time_us).collect();
        let mut deltas: BTreeMap<(i64, String), (i64, i64)> = BTreeMap::new();
        for (i, slot) in slots.iter_mut().enumerate() {
            slot.gap = gap(slot.row.time_us, times.get(i + 1).copied().or(after));
            let delta = slot.gap - slot.row.gap_us;
            if delta != 0 {
                let entry = deltas
                    .entry((bucket_of(slot.row.time_us), slot.row.project.clone()))
                    .or_default();
                entry.0 += delta;
                if slot.row.coding {
                    entry.1 += delta;
                }
            }
        }

        let new: Vec<(&Slot, &Heartbeat)> = slots
            .iter()
            .filter_map(|s| s.new.map(|hb| (s, hb)))
            .collect();
        match self.backend {
            // SQLite: the batch as one JSON document, a single parameter. Binding twenty
            // parameters per row is what cost time there (measured: 1,000 rows 80 → 57 ms).
            Backend::Sqlite => {
                let rows: Vec<serde_json::Value> = new
                    .iter()
                    .map(|(slot, hb)| {
                        serde_json::json!([
                            slot.row.id,
                            hb.time_us,
                            hb.entity,
                            hb.kind,
                            hb.category,
                            hb.project,
                            hb.branch,
                            hb.language,
                            hb.editor,
                            hb.operating_system,
                            hb.machine,
                            flag(hb.is_write),
                            hb.lines,
                            hb.lineno,
                            hb.cursorpos,
                            hb.dependencies,
                            hb.user_agent,
                            hb.dedup_hash(),
                            slot.gap,
                        ])
                    })
                    .collect();
                let columns: Vec<String> = (0..19).map(|i| format!("value ->> {i}")).collect();
                let sql = format!(
                    "INSERT INTO heartbeats (id, time_us, entity, type, category, project, branch, language, editor, \
                     operating_system, machine, is_write, lines, lineno, cursorpos, dependencies, user_agent, dedup_hash, \
                     gap_us, user_id, created_at) SELECT {}, $2, $3 FROM json_each($1)",
                    columns.join(", ")
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(serde_json::Value::Array(rows).to_string())
                    .bind(user_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            // PostgreSQL: multi-row VALUES in small statements (faster here than json_to_recordset).
            Backend::Postgres => {
                for chunk in new.chunks(INSERT_CHUNK) {
                    let sql = format!(
                        "INSERT INTO heartbeats (id, user_id, time_us, entity, type, category, project, branch, language, \
                         editor, operating_system, machine, is_write, lines, lineno, cursorpos, dependencies, user_agent, \
                         dedup_hash, created_at, gap_us) VALUES {}",
                        placeholders(1, 21, chunk.len())
                    );
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for (slot, hb) in chunk {
                        q = q
                            .bind(&slot.row.id)
                            .bind(user_id)
                            .bind(hb.time_us)
                            .bind(&hb.entity)
                            .bind(&hb.kind)
                            .bind(&hb.category)
                            .bind(&hb.project)
                            .bind(&hb.branch)
                            .bind(&hb.language)
                            .bind(&hb.editor)
                            .bind(&hb.operating_system)
                            .bind(&hb.machine)
                            .bind(flag(hb.is_write))
                            .bind(hb.lines)
                            .bind(hb.lineno)
                            .bind(hb.cursorpos)
                            .bind(&hb.dependencies)
                            .bind(&hb.user_agent)
                            .bind(hb.dedup_hash())
                            .bind(now)
                            .bind(slot.gap);
                    }
                    q.execute(&mut *tx).await?;
                }
            }
        }
        for slot in slots
            .iter()
            .filter(|s| s.new.is_none() && s.gap != s.row.gap_us)
        {
            sqlx::query("UPDATE heartbeats SET gap_us = $1 WHERE user_id = $2 AND id = $3")
                .bind(slot.gap)
                .bind(user_id)
                .bind(&slot.row.id)
                .execute(&mut *tx)
                .await?;
        }

        let deltas: Vec<_> = deltas
            .into_iter()
            .filter(|(_, (t, c))| *t != 0 || *c != 0)
            .collect();
        for chunk in deltas.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO activity_buckets (user_id, bucket, project, total_us, coding_us) VALUES {} \
                 ON CONFLICT (user_id, bucket, project) DO UPDATE SET \
                 total_us = activity_buckets.total_us + excluded.total_us, \
                 coding_us = activity_buckets.coding_us + excluded.coding_us",
                placeholders(1, 5, chunk.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for ((bucket, project), (total, coding)) in chunk {
                q = q
                    .bind(user_id)
                    .bind(*bucket)
                    .bind(project.as_str())
                    .bind(*total)
                    .bind(*coding);
            }
            q.execute(&mut *tx).await?;
        }

        let mut recent: BTreeMap<&str, i64> = BTreeMap::new();
        for (_, _, hb) in &fresh {
            let last = recent.entry(hb.project.as_str()).or_insert(hb.time_us);
            *last = (*last).max(hb.time_us);
        }
        let recent: Vec<(&str, i64)> = recent.into_iter().collect();
        for chunk in recent.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO project_recent (user_id, project, last_us) VALUES {} \
                 ON CONFLICT (user_id, project) DO UPDATE SET last_us = \
                 CASE WHEN excluded.last_us > project_recent.last_us THEN excluded.last_us ELSE project_recent.last_us END",
                placeholders(1, 3, chunk.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (project, last) in chunk {
                q = q.bind(user_id).bind(*project).bind(*last);
            }
            q.execute(&mut *tx).await?;
        }

        let mut languages: Vec<(&str, &str)> = fresh
            .iter()
            .filter(|(_, _, hb)| !hb.language.is_empty())
            .map(|(_, _, hb)| (hb.project.as_str(), hb.language.as_str()))
            .collect();
        languages.sort_unstable();
        languages.dedup();
        for chunk in languages.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO project_languages (user_id, project, language) VALUES {} ON CONFLICT DO NOTHING",
                placeholders(1, 3, chunk.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (project, language) in chunk {
                q = q.bind(user_id).bind(*project).bind(*language);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(fresh.len())
    }

    /// Coding time in `[start_us, end_us)` (both on 15-minute boundaries), by the definition:
    /// the buckets' sum, less the gap of the range's last heartbeat (its next lies outside).
    pub async fn coding_time(
        &self,
        user_id: &str,
        start_us: i64,
        end_us: i64,
        coding_only: bool,
    ) -> Result<i64, sqlx::Error> {
        let aligned = |us: i64| us.rem_euclid(BUCKET_SECS * 1_000_000) == 0;
        let sum: i64 = if aligned(start_us) && aligned(end_us) {
            let column = if coding_only { "coding_us" } else { "total_us" };
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT CAST(COALESCE(SUM({column}), 0) AS BIGINT) FROM activity_buckets \
                 WHERE user_id = $1 AND bucket >= $2 AND bucket < $3"
            )))
            .bind(user_id)
            .bind(start_us / 1_000_000)
            .bind(end_us / 1_000_000)
            .fetch_one(&self.pool)
            .await?
        } else {
            // A timezone whose midnight is off the 15-minute grid: add up the heartbeats.
            let filter = if coding_only {
                " AND category = 'coding'"
            } else {
                ""
            };
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT CAST(COALESCE(SUM(gap_us), 0) AS BIGINT) FROM heartbeats \
                 WHERE user_id = $1 AND time_us >= $2 AND time_us < $3{filter}"
            )))
            .bind(user_id)
            .bind(start_us)
            .bind(end_us)
            .fetch_one(&self.pool)
            .await?
        };
        let last = sqlx::query(
            "SELECT time_us, gap_us, category FROM heartbeats WHERE user_id = $1 AND time_us < $2 \
             ORDER BY time_us DESC, id DESC LIMIT 1",
        )
        .bind(user_id)
        .bind(end_us)
        .fetch_optional(&self.pool)
        .await?;
        let correction = match last {
            Some(row) if row.try_get::<i64, _>("time_us")? >= start_us => {
                let counts = !coding_only || row.try_get::<String, _>("category")? == "coding";
                if counts {
                    row.try_get::<i64, _>("gap_us")?
                } else {
                    0
                }
            }
            _ => 0,
        };
        Ok(sum - correction)
    }

    /// The 15-minute buckets (unix seconds) with coding time in `[start_us, end_us)`.
    pub async fn coding_buckets(
        &self,
        user_id: &str,
        start_us: i64,
        end_us: i64,
    ) -> Result<Vec<i64>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT DISTINCT bucket FROM activity_buckets WHERE user_id = $1 AND bucket >= $2 AND bucket < $3 \
             AND coding_us > 0 ORDER BY bucket",
        )
        .bind(user_id)
        .bind(start_us / 1_000_000)
        .bind(end_us / 1_000_000)
        .fetch_all(&self.pool)
        .await
    }

    pub async fn projects(&self, user_id: &str) -> Result<Vec<ProjectSummary>, sqlx::Error> {
        let totals = sqlx::query(
            "SELECT project, CAST(SUM(total_us) AS BIGINT) AS total FROM activity_buckets \
             WHERE user_id = $1 AND project <> '' GROUP BY project",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        let mut languages: HashMap<String, Vec<String>> = HashMap::new();
        for row in sqlx::query(
            "SELECT project, language FROM project_languages WHERE user_id = $1 ORDER BY language",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?
        {
            languages
                .entry(row.try_get("project")?)
                .or_default()
                .push(row.try_get("language")?);
        }
        let archived: Vec<String> =
            sqlx::query_scalar("SELECT project FROM archived_projects WHERE user_id = $1")
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?;
        let mut out = Vec::new();
        let mut recent: HashMap<String, i64> = HashMap::new();
        for row in sqlx::query("SELECT project, last_us FROM project_recent WHERE user_id = $1")
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?
        {
            recent.insert(row.try_get("project")?, row.try_get("last_us")?);
        }
        for row in totals {
            let name: String = row.try_get("project")?;
            out.push(ProjectSummary {
                total_us: row.try_get("total")?,
                most_recent_us: recent.get(&name).copied().unwrap_or(0),
                languages: languages.remove(&name).unwrap_or_default(),
                archived: archived.contains(&name),
                name,
            });
        }
        out.sort_by(|a, b| {
            b.most_recent_us
                .cmp(&a.most_recent_us)
                .then_with(|| a.name.cmp(&b.name))
        });
        Ok(out)
    }

    pub async fn latest_heartbeat(
        &self,
        user_id: &str,
    ) -> Result<Option<StoredHeartbeat>, sqlx::Error> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {HEARTBEAT_COLUMNS} FROM heartbeats WHERE user_id = $1 ORDER BY time_us DESC, id DESC LIMIT 1"
        )))
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(stored_from_row).transpose()
    }

    pub async fn set_project_archived(
        &self,
        user_id: &str,
        project: &str,
        archived: bool,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        if archived {
            sqlx::query(
                "INSERT INTO archived_projects (user_id, project, archived_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(user_id)
            .bind(project)
            .bind(now)
            .execute(self.writer())
            .await?;
        } else {
            sqlx::query("DELETE FROM archived_projects WHERE user_id = $1 AND project = $2")
                .bind(user_id)
                .bind(project)
                .execute(self.writer())
                .await?;
        }
        Ok(())
    }

    /// The server-wide key that seals values latchkey must read back.
    async fn sealing_key(&self) -> Result<[u8; 32], sqlx::Error> {
        self.server_key("seal").await
    }

    /// The user's WakaTime API key (a UUID, as WakaTime clients expect), made if none exists.
    pub async fn api_key(&self, user_id: &str) -> Result<String, sqlx::Error> {
        let key = self.sealing_key().await?;
        let sealed: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT key_sealed FROM api_keys WHERE user_id = $1")
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
        if let Some(text) = sealed
            .and_then(|s| seal::open(&key, &s))
            .and_then(|p| String::from_utf8(p).ok())
        {
            return Ok(text);
        }
        self.regenerate_api_key(user_id).await
    }

    /// A new API key; the old one stops working at once.
    pub async fn regenerate_api_key(&self, user_id: &str) -> Result<String, sqlx::Error> {
        let key = self.sealing_key().await?;
        let api_key = uuid::Uuid::new_v4().to_string();
        let sealed = seal::seal(&key, api_key.as_bytes())
            .ok_or_else(|| sqlx::Error::Protocol("sealing failed".into()))?;
        sqlx::query(
            "INSERT INTO api_keys (user_id, key_hash, key_sealed, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_id) DO UPDATE SET key_hash = excluded.key_hash, key_sealed = excluded.key_sealed, \
             created_at = excluded.created_at",
        )
        .bind(user_id)
        .bind(crate::domain::secret::sha256_hex(api_key.as_bytes()))
        .bind(sealed)
        .bind(super::now())
        .execute(self.writer())
        .await?;
        Ok(api_key)
    }

    /// The (enabled) user an API key belongs to.
    pub async fn user_by_api_key(&self, api_key: &str) -> Result<Option<User>, sqlx::Error> {
        let user_id: Option<String> =
            sqlx::query_scalar("SELECT user_id FROM api_keys WHERE key_hash = $1")
                .bind(crate::domain::secret::sha256_hex(api_key.trim().as_bytes()))
                .fetch_optional(&self.pool)
                .await?;
        match user_id {
            Some(id) => Ok(self.user_by_id(&id).await?.filter(|u| !u.disabled)),
            None => Ok(None),
        }
    }
}
