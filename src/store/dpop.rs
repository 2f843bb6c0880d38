//! DPoP (RFC 9449) state shared by every node: the proofs already seen.

use super::Store;

impl Store {
    /// Note a proof as seen until `expires_at`; `false` when it was seen before (a replay).
    pub async fn remember_dpop_proof(
        &self,
        proof_hash: &str,
        expires_at: i64,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "INSERT INTO dpop_proofs (proof_hash, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(proof_hash)
        .bind(expires_at)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Forget proofs too old to be accepted again.
    pub async fn purge_dpop_proofs(&self, now: i64) -> Result<u64, sqlx::Error> {
        let done = sqlx::query("DELETE FROM dpop_proofs WHERE expires_at < $1")
            .bind(now)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected())
    }
}
