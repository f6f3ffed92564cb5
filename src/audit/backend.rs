//! The two databases the audit trail can live in, behind sqlx's `Any` driver: SQLite (embedded, the default,
//! one file in WAL mode) and PostgreSQL (shared by several replicas). Everything that differs between them is
//! here: how to connect, which migrations, how a write transaction begins, which errors are worth a retry.
//! The SQL elsewhere is written once, in the dialect both accept (`$N` placeholders, `ON CONFLICT`,
//! `RETURNING`).

use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, Connection as _, Executor as _, Transaction};

/// Which database an `audit.url` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `sqlite://PATH`: one file, one writing process at a time (others wait on its lock).
    Sqlite,
    /// `postgres://...`: one database shared by every replica.
    Postgres,
}

/// The SQLite schema, embedded.
static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
/// The PostgreSQL schema, embedded: the same versions, in PostgreSQL's types.
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// How long a SQLite connection waits for another process's write lock before failing.
const SQLITE_BUSY: Duration = Duration::from_secs(5);

/// Connections that only read, per process.
pub const READERS: u32 = 4;
/// Of the readers, how many the audit page and `GET /audit` may hold at once: the rest are always free for the
/// engine's safety reads (brakes, budgets, cooldowns), however slow a page's query.
pub const PAGE_READERS: u32 = 2;

impl Backend {
    /// The backend `url` names, if it is one reflex supports.
    pub fn of(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Self::Postgres)
        } else {
            None
        }
    }

    /// The connection that writes for the process `owner` (creating a missing SQLite file). On PostgreSQL the
    /// session is named `reflex:OWNER`, so that another replica can tell whose session holds a lock.
    pub async fn writer(self, url: &str, owner: &str) -> Result<AnyConnection, sqlx::Error> {
        let mut conn = self.connect(url, Mode::Write).await?;
        self.name_session(&mut conn, owner).await?;
        if self == Self::Sqlite {
            // Durable before an answer is sent; readers never block the writer.
            conn.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL")
                .await?;
        }
        Ok(conn)
    }

    /// A fresh writer connection after a failed commit (the schema is already there).
    pub async fn reconnect(self, url: &str, owner: &str) -> Result<AnyConnection, sqlx::Error> {
        let mut conn = self.connect(url, Mode::Write).await?;
        self.name_session(&mut conn, owner).await?;
        if self == Self::Sqlite {
            conn.execute("PRAGMA synchronous = FULL").await?;
        }
        Ok(conn)
    }

    /// Names a PostgreSQL session after the process that owns it (`application_name`).
    async fn name_session(self, conn: &mut AnyConnection, owner: &str) -> Result<(), sqlx::Error> {
        if self == Self::Postgres {
            sqlx::query("SELECT set_config('application_name', $1, false)")
                .bind(format!("{SESSION_PREFIX}{owner}"))
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    /// Brings the schema to the newest version. Several processes may start at once: PostgreSQL's migrator
    /// takes an advisory lock, SQLite's write lock serialises them.
    pub async fn migrate(
        self,
        conn: &mut AnyConnection,
    ) -> Result<(), sqlx::migrate::MigrateError> {
        match self {
            Self::Sqlite => SQLITE_MIGRATIONS.run(conn).await,
            Self::Postgres => POSTGRES_MIGRATIONS.run(conn).await,
        }
    }

    /// A small pool of connections that only read.
    pub async fn readers(self, url: &str) -> Result<AnyPool, sqlx::Error> {
        let options: AnyConnectOptions = self.url(url, Mode::Read).parse()?;
        AnyPoolOptions::new()
            .max_connections(READERS)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    match self {
                        Self::Sqlite => conn.execute(sqlite_busy_timeout().as_str()).await?,
                        Self::Postgres => conn.execute(POSTGRES_SESSION).await?,
                    };
                    Ok(())
                })
            })
            .connect_with(options)
            .await
    }

    /// Begins a write transaction. SQLite's is IMMEDIATE: the write lock is taken up front, so a transaction
    /// that reads before it writes (a claim, a lease) cannot find its snapshot outdated by another process's
    /// commit. PostgreSQL's row locks (`ON CONFLICT ... DO UPDATE ... WHERE` re-checks the newest row version)
    /// give the same guarantee per key.
    pub async fn begin(
        self,
        conn: &mut AnyConnection,
    ) -> Result<Transaction<'_, sqlx::Any>, sqlx::Error> {
        match self {
            Self::Sqlite => conn.begin_with("BEGIN IMMEDIATE").await,
            Self::Postgres => conn.begin().await,
        }
    }

    /// The database's clock as an SQL expression, in ms since the Unix epoch: the one clock every time that
    /// replicas share is compared on (heartbeats, lease expiry, due times, cooldowns and budget windows), so
    /// that a process whose own clock is off neither looks dead nor counts wrongly.
    pub fn now_sql(self) -> &'static str {
        match self {
            Self::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
            Self::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
        }
    }

    /// The database's clock now (ms), read on `conn`. A SQLite file is on this host, so its clock is this
    /// process's: no query is needed.
    pub async fn now_ms<'c, E>(self, conn: E) -> Result<i64, sqlx::Error>
    where
        E: sqlx::Executor<'c, Database = sqlx::Any>,
    {
        match self {
            Self::Sqlite => Ok(super::times::millis(time::OffsetDateTime::now_utc())),
            Self::Postgres => {
                sqlx::query_scalar(&format!("SELECT {}", self.now_sql()))
                    .fetch_one(conn)
                    .await
            }
        }
    }

    /// Whether a failed commit is worth trying again at once: PostgreSQL aborts one of two transactions that
    /// wait on each other's rows (deadlock) or conflict (serialization failure).
    pub fn is_retryable(self, err: &sqlx::Error) -> bool {
        match (self, err) {
            (Self::Postgres, sqlx::Error::Database(db)) => {
                matches!(db.code().as_deref(), Some("40P01" | "40001")) || self.is_lock_timeout(err)
            }
            _ => false,
        }
    }

    /// Whether a statement gave up waiting for a lock (`lock_timeout`, or `statement_timeout` while it
    /// waited): another session holds a row this transaction needs.
    pub fn is_lock_timeout(self, err: &sqlx::Error) -> bool {
        match (self, err) {
            (Self::Postgres, sqlx::Error::Database(db)) => {
                matches!(db.code().as_deref(), Some("55P03" | "57014"))
            }
            _ => false,
        }
    }

    async fn connect(self, url: &str, mode: Mode) -> Result<AnyConnection, sqlx::Error> {
        let mut conn = AnyConnection::connect(&self.url(url, mode)).await?;
        match self {
            Self::Sqlite => conn.execute(sqlite_busy_timeout().as_str()).await?,
            Self::Postgres => conn.execute(POSTGRES_SESSION).await?,
        };
        Ok(conn)
    }

    /// `url` with the SQLite open mode added (PostgreSQL's is used as given). Every connection's URL passes
    /// here, so the drivers are installed first.
    fn url(self, url: &str, mode: Mode) -> String {
        sqlx::any::install_default_drivers();
        match self {
            Self::Postgres => url.to_owned(),
            Self::Sqlite => {
                let joiner = if url.contains('?') { '&' } else { '?' };
                let open = match mode {
                    Mode::Write if url.contains("mode=") => return url.to_owned(),
                    Mode::Write => "mode=rwc",
                    Mode::Read => "mode=ro",
                };
                format!("{url}{joiner}{open}")
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Mode {
    Write,
    Read,
}

/// The prefix of a reflex process's PostgreSQL session name (`application_name`), before its owner id.
pub const SESSION_PREFIX: &str = "reflex:";

/// Every PostgreSQL session's bounds, so that no replica can stall the others: a statement waits at most 2 s for
/// a lock and runs at most 30 s; a session left inside a transaction for 15 s (a frozen process) is ended by the
/// server, which releases its locks; the server's TCP keepalives find a vanished host within about a minute.
const POSTGRES_SESSION: &str = "SET lock_timeout = '2s'; SET statement_timeout = '30s'; \
     SET idle_in_transaction_session_timeout = '15s'; SET tcp_keepalives_idle = 30; \
     SET tcp_keepalives_interval = 10; SET tcp_keepalives_count = 3";

fn sqlite_busy_timeout() -> String {
    format!("PRAGMA busy_timeout = {}", SQLITE_BUSY.as_millis())
}

/// `url` fit for a log line or an error message: a password in it is replaced by `***`.
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// `rows` groups of `columns` placeholders for a statement that binds nothing else, in order: numbered on
/// PostgreSQL (`($1, $2), ($3, $4)`), anonymous on SQLite (`(?, ?), (?, ?)`). SQLite looks each numbered
/// parameter's name up in a list as long as the statement's parameters, once per parameter and execution, so
/// a wide multi-row insert with numbered ones spends its time in that search; anonymous ones have no names.
pub fn row_values(backend: Backend, rows: usize, columns: usize) -> String {
    match backend {
        Backend::Postgres => values(rows, columns, 1),
        Backend::Sqlite => {
            let row = format!("({})", vec!["?"; columns].join(", "));
            vec![row; rows].join(", ")
        }
    }
}

/// `rows` groups of `columns` numbered placeholders, starting at `$first`: `($1, $2), ($3, $4)`.
pub fn values(rows: usize, columns: usize, first: usize) -> String {
    let mut out = String::with_capacity(rows * columns * 5);
    for row in 0..rows {
        if row > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for column in 0..columns {
            if column > 0 {
                out.push_str(", ");
            }
            out.push('$');
            out.push_str(&(first + row * columns + column).to_string());
        }
        out.push(')');
    }
    out
}

/// Row counts of the multi-row statements a batch is written with, largest first: any number of rows is
/// written with at most one statement of each size, and only these few statements are ever prepared (each
/// statement is a round trip to the database; each new text is a new statement to prepare and cache).
const STATEMENT_ROWS: [usize; 7] = [64, 32, 16, 8, 4, 2, 1];

/// `items` in the slices one multi-row statement each writes: as many of 64 as fit, then at most one of
/// each smaller power of two.
pub fn statement_chunks<T>(items: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = items;
    std::iter::from_fn(move || {
        let size = STATEMENT_ROWS
            .into_iter()
            .find(|size| *size <= rest.len())?;
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        Some(chunk)
    })
}

/// `count` numbered placeholders from `$first`, comma-separated: `$3, $4, $5`.
pub fn list(count: usize, first: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_across_rows() {
        assert_eq!(values(2, 2, 1), "($1, $2), ($3, $4)");
        assert_eq!(values(1, 3, 4), "($4, $5, $6)");
        assert_eq!(list(3, 3), "$3, $4, $5");
        assert_eq!(row_values(Backend::Postgres, 2, 2), "($1, $2), ($3, $4)");
        assert_eq!(row_values(Backend::Sqlite, 2, 3), "(?, ?, ?), (?, ?, ?)");
    }

    #[test]
    fn a_batch_is_written_with_few_statements_of_a_few_sizes() {
        let sizes = |n: usize| -> Vec<usize> {
            let items: Vec<usize> = (0..n).collect();
            let chunks: Vec<&[usize]> = statement_chunks(&items).collect();
            assert_eq!(chunks.concat(), items, "every item once, in order");
            chunks.iter().map(|chunk| chunk.len()).collect()
        };
        assert_eq!(sizes(0), Vec::<usize>::new());
        assert_eq!(sizes(1), [1]);
        assert_eq!(sizes(63), [32, 16, 8, 4, 2, 1]);
        assert_eq!(sizes(64), [64]);
        assert_eq!(sizes(200), [64, 64, 64, 8]);
    }

    #[test]
    fn backends_are_named_by_their_url_scheme() {
        assert_eq!(Backend::of("sqlite://a.db"), Some(Backend::Sqlite));
        assert_eq!(Backend::of("postgres://h/db"), Some(Backend::Postgres));
        assert_eq!(Backend::of("postgresql://h/db"), Some(Backend::Postgres));
        assert_eq!(Backend::of("mysql://h/db"), None);
    }

    #[test]
    fn passwords_never_leave_in_messages() {
        assert_eq!(
            redacted("postgres://reflex:s3cret@db:5432/reflex"),
            "postgres://reflex:***@db:5432/reflex"
        );
        assert_eq!(redacted("sqlite://a.db"), "sqlite://a.db");
    }

    #[test]
    fn sqlite_urls_get_an_open_mode() {
        assert_eq!(
            Backend::Sqlite.url("sqlite://a.db", Mode::Write),
            "sqlite://a.db?mode=rwc"
        );
        assert_eq!(
            Backend::Sqlite.url("sqlite://a.db?mode=rw", Mode::Write),
            "sqlite://a.db?mode=rw"
        );
        assert_eq!(
            Backend::Sqlite.url("sqlite://a.db?mode=rw", Mode::Read),
            "sqlite://a.db?mode=rw&mode=ro"
        );
        assert_eq!(
            Backend::Postgres.url("postgres://h/db", Mode::Read),
            "postgres://h/db"
        );
    }
}
