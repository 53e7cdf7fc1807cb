//! The SQLite store: one table of measurement documents, keyed by an integer id and unique by the
//! sha256 of the canonical document. Every function here blocks; the routes call them inside
//! `tokio::task::spawn_blocking`.
//!
//! Durability: the database runs in WAL mode with `synchronous=NORMAL`. A commit appends the
//! transaction's pages to the `-wal` file with `write()` before `COMMIT` returns, so once a row is
//! committed it is in the operating system's page cache, which outlives the process: a `kill -9`
//! (or a panic, or an OOM kill) after the commit cannot lose it, and SQLite replays the WAL on the
//! next open. What `NORMAL` gives up against `FULL` is the fsync at each commit, so only a power
//! loss or kernel crash can roll back the last few commits (never corrupt the file). An upload is
//! acknowledged only after its commit returned.

use crate::error::{Error, Result};
use jiff::Timestamp;
use kv_estimator::measurement::Measurement;
use rusqlite::types::Value;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
/// Never edit a released step: append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: the measurements table. `received_ms` is the hub's clock (Unix milliseconds) when the
    // document was stored; `time` is the run's own RFC 3339 time as the client wrote it.
    "CREATE TABLE measurements (
        id          INTEGER PRIMARY KEY,
        hash        TEXT    NOT NULL UNIQUE,
        model       TEXT    NOT NULL,
        device      TEXT    NOT NULL,
        gpu         TEXT,
        engine      TEXT,
        dtype       TEXT    NOT NULL,
        time        TEXT    NOT NULL,
        received_ms INTEGER NOT NULL,
        document    TEXT    NOT NULL
    );
    CREATE INDEX measurements_model ON measurements (model);
    CREATE INDEX measurements_received ON measurements (received_ms);",
];

/// How long a connection waits for another one's write lock before failing with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle read connections kept for reuse.
const MAX_IDLE_READERS: usize = 16;

/// The store. Writes go through one connection (SQLite allows one writer at a time anyway, and a
/// mutex is cheaper than `SQLITE_BUSY` retries); reads use a small pool of `query_only` connections,
/// which WAL lets run beside the writer.
pub struct Db {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("path", &self.path).finish_non_exhaustive()
    }
}

/// The outcome of storing a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    pub id: i64,
    /// The same document (same content hash) was already stored under `id`.
    pub duplicate: bool,
}

/// One stored measurement with its indexed columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: i64,
    pub model: String,
    pub device: String,
    pub gpu: Option<String>,
    pub engine: Option<String>,
    pub dtype: String,
    /// The run's RFC 3339 time (`provenance.time`).
    pub time: String,
    /// When the hub stored it, RFC 3339 UTC with milliseconds.
    pub received: String,
    /// The canonical JSON document.
    pub document: String,
}

/// Filters and paging of the list query; `None` means no filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub model: Option<String>,
    pub gpu: Option<String>,
    pub engine: Option<String>,
    /// Only documents received at or after this time.
    pub since: Option<Timestamp>,
    pub limit: u32,
    pub offset: u64,
}

/// The canonical text of a document: the serde re-serialisation of the parsed value (fixed key
/// order, no whitespace, unknown keys dropped), so formatting differences are the same upload.
pub fn canonical(m: &Measurement) -> Result<String> {
    serde_json::to_string(m).map_err(Error::internal)
}

/// Lower-case hex sha256 of the canonical text.
pub fn content_hash(canonical: &str) -> String {
    Sha256::digest(canonical.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // a panic while holding the lock dropped any open transaction (rolled back): the connection
    // itself is still usable
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn received_text(ms: i64) -> String {
    match Timestamp::from_millisecond(ms) {
        Ok(t) => format!("{t:.3}"),
        Err(_) => ms.to_string(),
    }
}

impl Db {
    /// Opens (creating it and its parent directory when needed) and migrates the database.
    pub fn open(path: &Path) -> Result<Db> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| Error::Io { path: parent.to_path_buf(), source })?;
        }
        let mut writer = Connection::open(path)?;
        writer.busy_timeout(BUSY_TIMEOUT)?;
        // WAL is persistent in the file; readers then never block the writer and vice versa
        let mode: String = writer.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::internal(format!("{}: journal_mode WAL refused (got {mode})", path.display())));
        }
        // durable against a process kill, see the module documentation
        writer.pragma_update(None, "synchronous", "NORMAL")?;
        migrate(&mut writer, path)?;
        Ok(Db { path: path.to_path_buf(), writer: Mutex::new(writer), readers: Mutex::new(Vec::new()) })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn open_reader(&self) -> Result<Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // read/write flags so the WAL index (`-shm`) can be maintained, but no statement may write
        conn.pragma_update(None, "query_only", "ON")?;
        Ok(conn)
    }

    /// Runs `f` on a pooled `query_only` connection.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let pooled = lock(&self.readers).pop();
        let conn = match pooled {
            Some(c) => c,
            None => self.open_reader()?,
        };
        let out = f(&conn);
        let mut idle = lock(&self.readers);
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        out
    }

    /// Stores a validated document; idempotent by content hash. Returns after the commit.
    pub fn insert(&self, m: &Measurement) -> Result<Stored> {
        let document = canonical(m)?;
        let hash = content_hash(&document);
        let received_ms = Timestamp::now().as_millisecond();
        let mut conn = lock(&self.writer);
        // IMMEDIATE takes the write lock at BEGIN, so the insert and the select see one state
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let inserted = tx.execute(
            "INSERT INTO measurements (hash, model, device, gpu, engine, dtype, time, received_ms, document)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (hash) DO NOTHING",
            params![hash, m.model, m.device, m.provenance.gpu, m.engine, m.dtype, m.provenance.time, received_ms, document],
        )?;
        let id: i64 = tx.query_row("SELECT id FROM measurements WHERE hash = ?1", [&hash], |r| r.get(0))?;
        tx.commit()?;
        Ok(Stored { id, duplicate: inserted == 0 })
    }

    /// Number of stored measurements.
    pub fn count(&self) -> Result<u64> {
        self.read(|c| Ok(c.query_row("SELECT COUNT(*) FROM measurements", [], |r| r.get::<_, i64>(0))?.max(0).unsigned_abs()))
    }

    /// The canonical document stored under `id`.
    pub fn get(&self, id: i64) -> Result<Option<String>> {
        self.read(|c| Ok(c.query_row("SELECT document FROM measurements WHERE id = ?1", [id], |r| r.get(0)).optional()?))
    }

    /// One page of measurements matching the filter, newest first, and the total that match.
    pub fn list(&self, f: &Filter) -> Result<(Vec<Row>, u64)> {
        let mut clauses = Vec::new();
        let mut args: Vec<Value> = Vec::new();
        for (column, value) in [("model", &f.model), ("gpu", &f.gpu), ("engine", &f.engine)] {
            if let Some(v) = value {
                args.push(Value::Text(v.clone()));
                clauses.push(format!("{column} = ?{}", args.len()));
            }
        }
        if let Some(since) = f.since {
            args.push(Value::Integer(since.as_millisecond()));
            clauses.push(format!("received_ms >= ?{}", args.len()));
        }
        let filter = if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };
        let n = args.len();
        self.read(|c| {
            let total: i64 = c.query_row(&format!("SELECT COUNT(*) FROM measurements {filter}"), rusqlite::params_from_iter(args.iter()), |r| r.get(0))?;
            let mut page_args = args.clone();
            page_args.push(Value::Integer(i64::from(f.limit)));
            page_args.push(Value::Integer(i64::try_from(f.offset).unwrap_or(i64::MAX)));
            let sql = format!(
                "SELECT id, model, device, gpu, engine, dtype, time, received_ms, document FROM measurements {filter}
                 ORDER BY id DESC LIMIT ?{} OFFSET ?{}",
                n + 1,
                n + 2
            );
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(page_args.iter()), |r| {
                    Ok(Row {
                        id: r.get(0)?,
                        model: r.get(1)?,
                        device: r.get(2)?,
                        gpu: r.get(3)?,
                        engine: r.get(4)?,
                        dtype: r.get(5)?,
                        time: r.get(6)?,
                        received: received_text(r.get(7)?),
                        document: r.get(8)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<Row>>>()?;
            Ok((rows, total.max(0).unsigned_abs()))
        })
    }

    /// Every stored document of one model (all models when `None`), oldest first.
    pub fn documents(&self, model: Option<&str>) -> Result<Vec<(i64, String)>> {
        self.read(|c| {
            let mut stmt = c.prepare("SELECT id, document FROM measurements WHERE ?1 IS NULL OR model = ?1 ORDER BY id")?;
            let rows = stmt.query_map([model], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let supported = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > supported {
        return Err(Error::SchemaTooNew { path: path.to_path_buf(), found, supported });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(usize::try_from(found).unwrap_or(0)) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
    }
    tx.commit()?;
    Ok(())
}

/// What a directory import did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ImportReport {
    /// Documents stored.
    pub imported: usize,
    /// Documents already stored (same content).
    pub duplicates: usize,
    /// Files skipped, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Imports every `*.json` file of `dir` (not recursive, in name order) except `index.json` (the
/// list of bundled files that `cargo xtask index` writes for the page); a missing directory
/// imports nothing. Invalid files are skipped and reported, never fatal.
pub fn import_dir(db: &Db, dir: &Path) -> Result<ImportReport> {
    let mut report = ImportReport::default();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(report),
        Err(source) => return Err(Error::Io { path: dir.to_path_buf(), source }),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json") && p.file_name().is_some_and(|n| n != "index.json") && p.is_file())
        .collect();
    files.sort();
    for file in files {
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                report.skipped.push((file, e.to_string()));
                continue;
            }
        };
        match Measurement::from_json(&text) {
            Ok(m) => {
                if db.insert(&m)?.duplicate {
                    report.duplicates += 1;
                } else {
                    report.imported += 1;
                }
            }
            Err(e) => report.skipped.push((file, e.to_string())),
        }
    }
    Ok(report)
}
