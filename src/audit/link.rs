//! The writer's one connection to the store. A connection a server restart ended is only found out by the next
//! statement, and a failed commit may leave one inside a transaction that neither the database nor the driver
//! will end; so the link opens a fresh connection after any failure, and checks an open one before a write
//! that follows a quiet spell: a write is then never lost to a connection that died while nobody used it.

use std::time::Duration;

use sqlx::{AnyConnection, Connection as _};
use tokio::time::Instant;

use super::backend::Backend;

/// How long the connection may go unused before a write checks it first (one round trip).
const QUIET: Duration = Duration::from_secs(1);

/// The connection, if open, and when it was last used.
pub(super) struct Link {
    conn: Option<AnyConnection>,
    used: Instant,
    backend: Backend,
    url: String,
    owner: String,
}

impl Link {
    /// The link over `conn`, opened to `url` for the process `owner`.
    pub fn new(conn: AnyConnection, backend: Backend, url: String, owner: &str) -> Self {
        Self {
            conn: Some(conn),
            used: Instant::now(),
            backend,
            url,
            owner: owner.to_owned(),
        }
    }

    /// An open connection: the current one when it is in use or answers, else a fresh one.
    pub async fn open(&mut self) -> Result<&mut AnyConnection, sqlx::Error> {
        if self.used.elapsed() > QUIET
            && let Some(conn) = self.conn.as_mut()
            && let Err(err) = conn.ping().await
        {
            tracing::warn!(error = %err, "the audit store's connection was lost; opening another");
            self.lost().await;
        }
        self.used = Instant::now();
        match self.conn {
            Some(ref mut conn) => Ok(conn),
            None => {
                let fresh = self.backend.reconnect(&self.url, &self.owner).await?;
                Ok(self.conn.insert(fresh))
            }
        }
    }

    /// The open connection, if there is one, without checking it (to look for dead lock holders after a lock
    /// timeout on it).
    pub fn current(&mut self) -> Option<&mut AnyConnection> {
        self.conn.as_mut()
    }

    /// Closes the connection after a failure: the next write opens another.
    pub async fn lost(&mut self) {
        if let Some(broken) = self.conn.take() {
            let _ = broken.close().await;
        }
    }
}
