use std::time::Duration;

use couponrush_config::MysqlSettings;
use diesel::ConnectionError;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::{AsyncConnection, AsyncMigrationHarness, AsyncMysqlConnection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::error::StorageError;

/// The schema, compiled into every binary so `migrate` needs nothing but the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

pub(crate) type Connection = Object<AsyncMysqlConnection>;

/// A pool of MySQL connections plus where it points, for error messages.
#[derive(Clone)]
pub struct Database {
    pool: Pool<AsyncMysqlConnection>,
    address: String,
    timeout: Duration,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Builds the pool. Connects lazily: call [`Database::probe`] to fail fast at start-up.
    pub fn new(settings: &MysqlSettings) -> Result<Self, StorageError> {
        let lock_wait = settings.lock_wait_timeout_s;
        let mut config = ManagerConfig::default();
        // Every pooled session fails a lock wait after the configured bound, so a stuck batch
        // surfaces as a transient error the consumer retries, not a 50 s silence.
        config.custom_setup = Box::new(move |url| {
            Box::pin(async move {
                let mut conn = AsyncMysqlConnection::establish(url).await?;
                diesel::sql_query(format!(
                    "SET SESSION innodb_lock_wait_timeout = {lock_wait}"
                ))
                .execute(&mut conn)
                .await
                .map_err(ConnectionError::CouldntSetupConfiguration)?;
                Ok(conn)
            })
        });
        let manager = AsyncDieselConnectionManager::<AsyncMysqlConnection>::new_with_config(
            settings.url().expose(),
            config,
        );
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size)
            .build()
            .map_err(|e| StorageError::Unavailable {
                address: settings.address(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            pool,
            address: settings.address(),
            timeout: settings.connect_timeout(),
        })
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// A pooled connection, bounded by the connect timeout so an outage surfaces as an error
    /// instead of a hang.
    pub(crate) async fn conn(&self) -> Result<Connection, StorageError> {
        match tokio::time::timeout(self.timeout, self.pool.get()).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(StorageError::Unavailable {
                address: self.address.clone(),
                reason: e.to_string(),
            }),
            Err(_) => Err(self.timed_out(self.timeout)),
        }
    }

    fn timed_out(&self, timeout: Duration) -> StorageError {
        StorageError::Timeout {
            address: self.address.clone(),
            timeout_ms: timeout.as_millis(),
        }
    }

    /// `SELECT 1` within `timeout`.
    pub async fn probe(&self, timeout: Duration) -> Result<(), StorageError> {
        let check = async {
            let mut conn = self.conn().await?;
            diesel::sql_query("SELECT 1").execute(&mut conn).await?;
            Ok::<_, StorageError>(())
        };
        tokio::time::timeout(timeout, check)
            .await
            .map_err(|_| self.timed_out(timeout))?
    }

    /// Applies pending migrations; returns the versions applied.
    ///
    /// Must run on a multi-threaded runtime: diesel's migration harness is synchronous and the
    /// async harness bridges it with `block_in_place`.
    pub async fn migrate(&self) -> Result<Vec<String>, StorageError> {
        let conn = self.conn().await?;
        let mut harness = AsyncMigrationHarness::new(conn);
        harness
            .run_pending_migrations(MIGRATIONS)
            .map(|versions| versions.iter().map(ToString::to_string).collect())
            .map_err(|e| StorageError::Migration(e.to_string()))
    }

    /// Creates the configured database if the server does not have it yet (first deployment,
    /// a test's own database). Connects without selecting a database.
    pub async fn create_database_if_missing(settings: &MysqlSettings) -> Result<(), StorageError> {
        let mut server = settings.clone();
        server.database = String::new();
        let unavailable = |reason: String| StorageError::Unavailable {
            address: settings.address(),
            reason,
        };
        let url = server.url();
        let connect = AsyncMysqlConnection::establish(url.expose());
        let mut conn = tokio::time::timeout(settings.connect_timeout(), connect)
            .await
            .map_err(|_| StorageError::Timeout {
                address: settings.address(),
                timeout_ms: settings.connect_timeout().as_millis(),
            })?
            .map_err(|e| unavailable(e.to_string()))?;
        // The name was validated as [A-Za-z0-9_] by the config layer, so quoting is enough.
        diesel::sql_query(format!(
            "CREATE DATABASE IF NOT EXISTS `{}` CHARACTER SET utf8mb4",
            settings.database
        ))
        .execute(&mut conn)
        .await?;
        Ok(())
    }

    /// Drops the configured database (test clean-up).
    pub async fn drop_database(settings: &MysqlSettings) -> Result<(), StorageError> {
        let mut server = settings.clone();
        server.database = String::new();
        let mut conn = AsyncMysqlConnection::establish(server.url().expose())
            .await
            .map_err(|e| StorageError::Unavailable {
                address: settings.address(),
                reason: e.to_string(),
            })?;
        diesel::sql_query(format!("DROP DATABASE IF EXISTS `{}`", settings.database))
            .execute(&mut conn)
            .await?;
        Ok(())
    }
}
