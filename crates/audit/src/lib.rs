//! The audit log: every action appended to the platform's SQL database (SQLite embedded or
//! PostgreSQL, see [`Database`]),
//! each entry chained to the one before by SHA-256 and MACed with the audit key (HKDF from the
//! custodian key), the head anchored in a file outside the database. [`AuditLog::verify`]
//! finds an edited, deleted, inserted or reordered entry and a truncated tail, and says where.
//!
//! Callers pass details as JSON; they must never hold keys or raw identifiers (the platform
//! only ever has pseudonymised data, table names, counts and digests to log).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use niji_pseudo::{CivilDate, CustodianKey, IdHasher, Purpose, hex32};
use serde::Serialize;
use sha2::{Digest, Sha256};

mod database;
mod search;

pub use database::{Backend, BadDatabaseUrl, Database, DatabaseUrl};
pub use search::Filter;

/// A write made in the audit entry's transaction ([`AuditLog::append_with`]): whether it
/// changed anything.
pub type Change<'c> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool, sqlx::Error>> + Send + 'c>>;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("audit database migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("audit anchor {path}: {source}")]
    Anchor {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("audit detail is not serialisable: {0}")]
    Detail(#[from] serde_json::Error),
}

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One entry as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Entry {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
    pub mac: String,
}

/// What [`AuditLog::verify`] found wrong, with the sequence number where it shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum Problem {
    /// The entry's content no longer matches its hash.
    Edited {
        seq: i64,
    },
    /// The hash matches the content but not the MAC: rewritten by someone without the key.
    Forged {
        seq: i64,
    },
    /// Sequence numbers jump: entries `from..=to` were deleted.
    Missing {
        from: i64,
        to: i64,
    },
    /// The entry does not follow the one before it: inserted, reordered or a predecessor removed.
    ChainBroken {
        seq: i64,
    },
    /// The anchored head lies beyond the last entry: the tail was cut off.
    Truncated {
        anchored: i64,
        last: i64,
    },
    /// The anchored head's hash differs from the entry at that position.
    AnchorMismatch {
        seq: i64,
    },
    AnchorMissing,
    /// The anchor file's MAC is wrong: it was written without the key.
    AnchorForged,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Edited { seq } => write!(
                f,
                "entry {seq} was edited (its content does not match its hash)"
            ),
            Problem::Forged { seq } => write!(
                f,
                "entry {seq} was rewritten without the audit key (MAC mismatch)"
            ),
            Problem::Missing { from, to } => write!(f, "entries {from}..={to} were deleted"),
            Problem::ChainBroken { seq } => {
                write!(
                    f,
                    "entry {seq} does not follow its predecessor (inserted, reordered or preceded by a deletion)"
                )
            }
            Problem::Truncated { anchored, last } => {
                write!(
                    f,
                    "the log was truncated: the anchor records entry {anchored}, the database ends at {last}"
                )
            }
            Problem::AnchorMismatch { seq } => {
                write!(f, "entry {seq} differs from the anchored head")
            }
            Problem::AnchorMissing => write!(f, "the anchor file is missing"),
            Problem::AnchorForged => write!(f, "the anchor file was written without the audit key"),
        }
    }
}

/// The outcome of a verification.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    pub entries: u64,
    pub head: Option<i64>,
    pub anchored: Option<i64>,
    pub problems: Vec<Problem>,
}

impl Verification {
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Creates or updates the audit log's table in the platform database. Other crates keep
/// their own tables there: the platform service runs every migration, this one first.
pub async fn migrate(db: &Database) -> Result<(), sqlx::migrate::MigrateError> {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator.run(db.pool()).await
}

/// The audit log of one data directory.
#[derive(Debug)]
pub struct AuditLog {
    db: Database,
    mac: IdHasher,
    anchor: PathBuf,
    /// Appends are serialised within the process; [`Database::begin_write`] serialises
    /// processes (two servers on one PostgreSQL keep one dense chain).
    append_lock: tokio::sync::Mutex<()>,
}

fn entry_hash(
    seq: i64,
    at: &str,
    actor: &str,
    action: &str,
    detail: &str,
    prev_hash: &str,
) -> String {
    let mut h = Sha256::new();
    for (i, part) in [
        seq.to_string().as_str(),
        at,
        actor,
        action,
        detail,
        prev_hash,
    ]
    .iter()
    .enumerate()
    {
        if i > 0 {
            h.update([0x1f]);
        }
        h.update(part.as_bytes());
    }
    hex32(&h.finalize().into())
}

/// UTC now as RFC 3339 with milliseconds: the platform's one timestamp form.
pub fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

/// `at` in the platform's timestamp form (which sorts as text in time order).
pub fn rfc3339(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as i64;
    let day = CivilDate::from_days_since_epoch(secs.div_euclid(86_400) as i32);
    let rem = secs.rem_euclid(86_400);
    format!(
        "{day}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// The time of a timestamp written by [`rfc3339`] (`YYYY-MM-DDTHH:MM:SS.mmmZ`); `None` for
/// anything else.
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let (date, time) = text.strip_suffix('Z')?.split_once('T')?;
    let day = niji_pseudo::date::parse_date(date).ok()?;
    let (hms, millis) = time.split_once('.')?;
    let mut parts = hms.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, sec) = (parts.next()??, parts.next()??, parts.next()??);
    let millis: u64 = millis.parse().ok()?;
    if h > 23 || m > 59 || sec > 59 || millis > 999 {
        return None;
    }
    let days = u64::try_from(day.days_since_epoch()).ok()?;
    let secs = days * 86_400 + h * 3600 + m * 60 + sec;
    Some(UNIX_EPOCH + std::time::Duration::from_millis(secs * 1000 + millis))
}

impl AuditLog {
    /// Opens (creating if needed) the log in the database at `url` with its head anchored
    /// in `anchor`, a file that should live outside the data directory (beside the key).
    pub async fn open(
        url: &DatabaseUrl,
        anchor: &Path,
        key: &CustodianKey,
    ) -> Result<Self, AuditError> {
        let db = Database::connect(url).await?;
        migrate(&db).await?;
        Ok(Self::on(db, anchor, key))
    }

    /// The log in a database the platform has migrated (see [`migrate`]).
    pub fn on(db: Database, anchor: &Path, key: &CustodianKey) -> Self {
        Self {
            db,
            mac: IdHasher::from_key_bytes(key.derive(Purpose::AuditLog).as_ref()),
            anchor: anchor.to_path_buf(),
            append_lock: tokio::sync::Mutex::new(()),
        }
    }

    fn mac_of(&self, parts: &[&[u8]]) -> String {
        hex32(&self.mac.hash(parts))
    }

    /// Appends an entry and moves the anchor to it.
    pub async fn append(
        &self,
        actor: &str,
        action: &str,
        detail: &impl Serialize,
    ) -> Result<Entry, AuditError> {
        let entry = self
            .append_with(actor, action, detail, |_| Box::pin(async { Ok(true) }))
            .await?;
        // A change that always applies always appends.
        entry.ok_or(AuditError::Database(sqlx::Error::RowNotFound))
    }

    /// Appends an entry in one transaction with `change`, a write to another table of the
    /// same database: both are committed or neither, so that a process killed between them
    /// cannot leave a change unaudited. When `change` says it changed nothing (false),
    /// nothing is appended and `None` is returned.
    pub async fn append_with<F>(
        &self,
        actor: &str,
        action: &str,
        detail: &impl Serialize,
        change: F,
    ) -> Result<Option<Entry>, AuditError>
    where
        F: for<'c> FnOnce(&'c mut sqlx::AnyConnection) -> Change<'c>,
    {
        let detail = serde_json::to_string(detail)?;
        let _guard = self.append_lock.lock().await;
        let mut tx = self.db.begin_write("audit_log").await?;
        if !change(&mut tx).await? {
            tx.rollback().await?;
            return Ok(None);
        }
        let last: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?;
        let (seq, prev_hash) = match last {
            Some((seq, hash)) => (seq + 1, hash),
            None => (1, GENESIS.to_string()),
        };
        let at = now_rfc3339();
        let hash = entry_hash(seq, &at, actor, action, &detail, &prev_hash);
        let mac = self.mac_of(&[hash.as_bytes()]);
        sqlx::query("INSERT INTO audit_log (seq, at, actor, action, detail, prev_hash, hash, mac) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
            .bind(seq)
            .bind(&at)
            .bind(actor)
            .bind(action)
            .bind(&detail)
            .bind(&prev_hash)
            .bind(&hash)
            .bind(&mac)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.write_anchor(seq, &hash)?;
        tracing::debug!(seq, action, "audit entry appended");
        Ok(Some(Entry {
            seq,
            at,
            actor: actor.to_string(),
            action: action.to_string(),
            detail,
            prev_hash,
            hash,
            mac,
        }))
    }

    fn anchor_mac(&self, seq: i64, hash: &str) -> String {
        self.mac_of(&[b"anchor", seq.to_string().as_bytes(), hash.as_bytes()])
    }

    /// Atomic replace: a crash leaves the old anchor or the new one.
    fn write_anchor(&self, seq: i64, hash: &str) -> Result<(), AuditError> {
        let io = |source| AuditError::Anchor {
            path: self.anchor.clone(),
            source,
        };
        let text = format!(
            "seq={seq}\nhash={hash}\nmac={}\n",
            self.anchor_mac(seq, hash)
        );
        if let Some(dir) = self.anchor.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        // One temporary file per process: two servers on one database may both move it.
        let tmp = self
            .anchor
            .with_extension(format!("tmp.{}", std::process::id()));
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io)?;
        std::fs::rename(&tmp, &self.anchor).map_err(io)
    }

    /// `Ok(None)` when the anchor file does not exist.
    fn read_anchor(&self) -> Result<Option<(i64, String, String)>, AuditError> {
        let text = match std::fs::read_to_string(&self.anchor) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(AuditError::Anchor {
                    path: self.anchor.clone(),
                    source,
                });
            }
        };
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::to_string)
                .unwrap_or_default()
        };
        let seq = field("seq=").parse().unwrap_or(-1);
        Ok(Some((seq, field("hash="), field("mac="))))
    }

    /// The most recent entries, newest first.
    pub async fn recent(&self, limit: i64) -> Result<Vec<Entry>, AuditError> {
        Ok(sqlx::query_as("SELECT seq, at, actor, action, detail, prev_hash, hash, mac FROM audit_log ORDER BY seq DESC LIMIT $1")
            .bind(limit)
            .fetch_all(self.db.pool())
            .await?)
    }

    /// How many `action` entries of `actor` the log holds from `since` (a timestamp in the
    /// platform's form) on.
    pub async fn count_since(
        &self,
        actor: &str,
        action: &str,
        since: &str,
    ) -> Result<i64, AuditError> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM audit_log WHERE actor = $1 AND action = $2 AND at >= $3",
        )
        .bind(actor)
        .bind(action)
        .bind(since)
        .fetch_one(self.db.pool())
        .await?;
        Ok(n)
    }

    /// The `action` entries from `since` on (a timestamp in the platform's form), of `actor`
    /// when given and with `detail_contains` in their detail when given, oldest first: what
    /// monitoring rules count.
    pub async fn entries_since(
        &self,
        actor: Option<&str>,
        action: &str,
        since: &str,
        detail_contains: Option<&str>,
    ) -> Result<Vec<Entry>, AuditError> {
        // LIKE's own wildcards in the needle match only themselves.
        let pattern = detail_contains.map(|d| {
            let escaped = d
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            format!("%{escaped}%")
        });
        Ok(sqlx::query_as("SELECT seq, at, actor, action, detail, prev_hash, hash, mac FROM audit_log WHERE action = $1 AND at >= $2 AND ($3 = '' OR actor = $3) AND ($4 = '' OR detail LIKE $4 ESCAPE '\\') ORDER BY seq")
            .bind(action)
            .bind(since)
            .bind(actor.unwrap_or(""))
            .bind(pattern.unwrap_or_default())
            .fetch_all(self.db.pool())
            .await?)
    }

    /// The entries about one query (those whose detail names it as `query_id`), oldest first.
    pub async fn of_query(&self, query_id: &str) -> Result<Vec<Entry>, AuditError> {
        // Query ids are hex: anything else names no query (and could be a LIKE wildcard).
        if query_id.is_empty() || !query_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(Vec::new());
        }
        let pattern = format!("%\"query_id\":\"{query_id}\"%");
        Ok(sqlx::query_as("SELECT seq, at, actor, action, detail, prev_hash, hash, mac FROM audit_log WHERE detail LIKE $1 ORDER BY seq")
            .bind(pattern)
            .fetch_all(self.db.pool())
            .await?)
    }

    /// Walks the whole chain and compares its head with the anchor.
    pub async fn verify(&self) -> Result<Verification, AuditError> {
        let rows: Vec<Entry> =
            sqlx::query_as("SELECT seq, at, actor, action, detail, prev_hash, hash, mac FROM audit_log ORDER BY seq")
                .fetch_all(self.db.pool())
                .await?;
        let mut problems = Vec::new();
        let mut expected_seq = 1;
        let mut prev = GENESIS.to_string();
        for e in &rows {
            if e.seq != expected_seq {
                problems.push(Problem::Missing {
                    from: expected_seq,
                    to: e.seq - 1,
                });
            }
            if entry_hash(e.seq, &e.at, &e.actor, &e.action, &e.detail, &e.prev_hash) != e.hash {
                problems.push(Problem::Edited { seq: e.seq });
            } else if self.mac_of(&[e.hash.as_bytes()]) != e.mac {
                problems.push(Problem::Forged { seq: e.seq });
            }
            if e.prev_hash != prev {
                problems.push(Problem::ChainBroken { seq: e.seq });
            }
            prev = e.hash.clone();
            expected_seq = e.seq + 1;
        }
        let last = rows.last().map(|e| e.seq);
        let anchored = match self.read_anchor()? {
            None => {
                if !rows.is_empty() {
                    problems.push(Problem::AnchorMissing);
                }
                None
            }
            Some((seq, hash, mac)) => {
                if self.anchor_mac(seq, &hash) != mac {
                    problems.push(Problem::AnchorForged);
                } else if seq > last.unwrap_or(0) {
                    problems.push(Problem::Truncated {
                        anchored: seq,
                        last: last.unwrap_or(0),
                    });
                } else if rows
                    .iter()
                    .find(|e| e.seq == seq)
                    .is_none_or(|e| e.hash != hash)
                {
                    problems.push(Problem::AnchorMismatch { seq });
                }
                // Entries after the anchor can only come from a crash between commit and
                // anchor write: they still have to chain and carry valid MACs (checked above).
                Some(seq)
            }
        };
        Ok(Verification {
            entries: rows.len() as u64,
            head: last,
            anchored,
            problems,
        })
    }
}

#[cfg(test)]
mod timestamp_tests {
    use super::*;

    #[test]
    fn a_timestamp_reads_back_as_the_time_it_was_written() {
        let at = UNIX_EPOCH + std::time::Duration::from_millis(1_796_000_123_456);
        assert_eq!(parse_rfc3339(&rfc3339(at)), Some(at));
        assert_eq!(parse_rfc3339("2026-12-06"), None);
        assert_eq!(parse_rfc3339("2026-12-06T24:00:00.000Z"), None);
    }
}
