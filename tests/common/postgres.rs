//! A fresh PostgreSQL database per test, on the server at `REFLEX_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`, trust auth; `scripts/setup-test-deps` starts one), dropped
//! when the test ends.

use sqlx::{Connection as _, Executor as _};

/// A database of this test's own.
pub struct Postgres {
    /// `postgres://.../<name>`, for `audit.url`.
    pub url: String,
    admin: String,
    name: String,
}

impl Postgres {
    /// Creates an empty database with a unique name.
    pub async fn fresh() -> Self {
        let admin = std::env::var("REFLEX_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = super::unique("reflex_it").replace('-', "_");
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .expect("PostgreSQL at REFLEX_TEST_POSTGRES_URL (scripts/setup-test-deps starts one)");
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
        let mut url = url::Url::parse(&admin).unwrap();
        url.set_path(&name);
        Self {
            url: url.to_string(),
            admin,
            name,
        }
    }

    /// `text` (from `config_text`) with its audit store in this database instead of a SQLite file.
    pub fn config(&self, text: &str) -> String {
        with_store(text, &self.url)
    }
}

/// `text` (from `config_text`) with its audit store at `url` instead of a SQLite file.
pub fn with_store(text: &str, url: &str) -> String {
    text.lines()
        .map(|line| {
            if line.starts_with("url = \"sqlite://") {
                format!("url = \"{url}\"")
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = conn
                        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                        .await;
                }
            });
        })
        .join();
    }
}
