use std::time::Duration;

use couponrush_config::MysqlSettings;
use diesel::ConnectionError;
use diesel::sql_types::{BigInt, Text, Unsigned};
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::{AsyncMigrationHarness, AsyncMysqlConnection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::connect::{self, connect};
use crate::error::StorageError;

/// The schema, compiled into every binary so `migrate` needs nothing but the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

pub(crate) type Connection = Object<AsyncMysqlConnection>;

/// Rows per INSERT statement with bound values: well under MySQL's placeholder and packet
/// limits.
pub(crate) const ROWS_PER_INSERT: usize = 1000;

/// A pool of MySQL connections plus where it points, for error messages.
#[derive(Clone)]
pub struct Database {
    pool: Pool<AsyncMysqlConnection>,
    address: String,
    timeout: Duration,
    deadline: Duration,
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
        let deadline = deadline(settings);
        let lock_wait = settings.lock_wait_timeout_s;
        // TCP keepalive as long as the deadline, so an idle pooled connection to a vanished
        // server is noticed.
        let opts = connect::options(settings, deadline).map_err(|e| StorageError::Unavailable {
            address: settings.address(),
            reason: e.to_string(),
        })?;
        let mut config = ManagerConfig::default();
        // The manager's URL goes unused: every connection is opened from `opts` (TLS included).
        config.custom_setup =
            Box::new(move |_| Box::pin(establish(opts.clone(), lock_wait, deadline)));
        let manager = AsyncDieselConnectionManager::<AsyncMysqlConnection>::new_with_config(
            settings.address(),
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
            deadline,
        })
    }

    /// How long one unit of work (a statement, or a whole transaction) may take.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// A pooled connection, bounded by the connect timeout so an outage surfaces as an error
    /// instead of a hang.
    async fn conn(&self) -> Result<Connection, StorageError> {
        match tokio::time::timeout(self.timeout, self.pool.get()).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(StorageError::Unavailable {
                address: self.address.clone(),
                reason: e.to_string(),
            }),
            Err(_) => Err(self.timed_out(self.timeout)),
        }
    }

    /// Runs `work` on a pooled connection within the deadline. A connection that misses it is
    /// closed instead of going back to the pool: it may be in the middle of a statement or a
    /// transaction with a server that stopped answering, and the next user would hang on it.
    pub(crate) async fn run<T>(
        &self,
        work: impl AsyncFnOnce(&mut AsyncMysqlConnection) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        self.run_within(self.deadline, work).await
    }

    /// [`Self::run`] with two pooled connections, for work that keeps two transactions in
    /// flight at once. Both are discarded if the work misses the deadline.
    pub(crate) async fn run_pair<T>(
        &self,
        work: impl AsyncFnOnce(
            &mut AsyncMysqlConnection,
            &mut AsyncMysqlConnection,
        ) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let mut first = self.conn().await?;
        let mut second = self.conn().await?;
        match tokio::time::timeout(self.deadline, work(&mut first, &mut second)).await {
            Ok(result) => result,
            Err(_) => Err(self.discard(self.deadline, [first, second])),
        }
    }

    /// [`Self::run`] with a deadline of its own, for work that waits on something else too.
    pub(crate) async fn run_within<T>(
        &self,
        deadline: Duration,
        work: impl AsyncFnOnce(&mut AsyncMysqlConnection) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let mut conn = self.conn().await?;
        match tokio::time::timeout(deadline, work(&mut conn)).await {
            Ok(result) => result,
            Err(_) => Err(self.discard(deadline, [conn])),
        }
    }

    /// Closes connections whose work missed `deadline` instead of returning them to the pool;
    /// the error to report.
    fn discard<const N: usize>(&self, deadline: Duration, conns: [Connection; N]) -> StorageError {
        for conn in conns {
            drop(Object::take(conn));
        }
        tracing::warn!(
            address = self.address,
            deadline_ms = deadline.as_millis(),
            connections = N,
            "MySQL work missed its deadline; its connections are discarded"
        );
        self.timed_out(deadline)
    }

    fn timed_out(&self, timeout: Duration) -> StorageError {
        StorageError::Timeout {
            address: self.address.clone(),
            timeout_ms: timeout.as_millis(),
        }
    }

    /// `SELECT 1` within `timeout`.
    pub async fn probe(&self, timeout: Duration) -> Result<(), StorageError> {
        let check = self.run_within(timeout, async |conn| {
            diesel::sql_query("SELECT 1").execute(conn).await?;
            Ok(())
        });
        tokio::time::timeout(timeout, check)
            .await
            .map_err(|_| self.timed_out(timeout))?
    }

    /// The server's version (`SELECT VERSION()`), for the header of a benchmark report.
    pub async fn server_version(&self) -> Result<String, StorageError> {
        self.run(async |conn| {
            Ok(diesel::select(diesel::dsl::sql::<Text>("VERSION()"))
                .get_result(conn)
                .await?)
        })
        .await
    }

    /// Applies pending migrations; returns the versions applied. Not bounded by the deadline:
    /// a migration may rebuild a large table, and an operator runs it and watches it.
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
    /// the test template). Connects without selecting a database.
    pub async fn create_database_if_missing(settings: &MysqlSettings) -> Result<(), StorageError> {
        let mut conn = connect(settings, false).await?;
        // The name was validated as [A-Za-z0-9_] by the config layer, so quoting is enough.
        diesel::sql_query(format!(
            "CREATE DATABASE IF NOT EXISTS `{}` CHARACTER SET utf8mb4",
            settings.database
        ))
        .execute(&mut conn)
        .await?;
        Ok(())
    }
}

/// A statement or transaction may wait `lock_wait_timeout_s` for a row lock and then needs a
/// round trip or two: a unit of work that takes longer than both is not waiting on a lock but
/// on a server or a network that stopped answering.
fn deadline(settings: &MysqlSettings) -> Duration {
    Duration::from_secs(u64::from(settings.lock_wait_timeout_s)) + settings.connect_timeout()
}

/// Connects and bounds the session on the server's side too.
async fn establish(
    opts: mysql_async::Opts,
    lock_wait: u32,
    deadline: Duration,
) -> diesel::ConnectionResult<AsyncMysqlConnection> {
    let mut conn = connect::open(opts).await?;
    let seconds = deadline.as_secs().max(1);
    // A lock wait fails after the configured bound, so a stuck batch surfaces as a transient
    // error the consumer retries, not a 50 s silence; the server gives up on a client that
    // stops reading or writing mid-packet after the deadline instead of InnoDB's 30-60 s.
    diesel::sql_query(format!(
        "SET SESSION innodb_lock_wait_timeout = {lock_wait}, \
         net_read_timeout = {seconds}, net_write_timeout = {seconds}"
    ))
    .execute(&mut conn)
    .await
    .map_err(ConnectionError::CouldntSetupConfiguration)?;
    // MariaDB only: the server stops a statement, and rolls back a transaction left idle
    // (its client gone, its row locks held), once the client has given up on it. MySQL
    // refuses these variables; there the client's deadline and keepalive have to do.
    let mariadb = diesel::sql_query(format!(
        "SET SESSION max_statement_time = {seconds}, idle_transaction_timeout = {seconds}"
    ))
    .execute(&mut conn)
    .await;
    if let Err(error) = mariadb {
        tracing::debug!(%error, "server-side statement and idle-transaction bounds not set");
    }
    Ok(conn)
}

/// The id our own connection inserted last, inside the same transaction.
pub(crate) async fn last_insert_id(conn: &mut AsyncMysqlConnection) -> Result<i64, StorageError> {
    let id: u64 = diesel::select(diesel::dsl::sql::<Unsigned<BigInt>>("LAST_INSERT_ID()"))
        .get_result(conn)
        .await?;
    i64::try_from(id).map_err(|_| StorageError::Conflict(format!("coupon id {id} out of range")))
}

#[cfg(test)]
#[path = "database_tests.rs"]
mod tests;
