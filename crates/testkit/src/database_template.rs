//! Test databases cloned from a migrated template, as crates.io's test databases are.
//!
//! Migrating a database for every test costs a few hundred milliseconds (an `ALTER TABLE`
//! among the migrations copies its table); copying the tables of a database migrated once,
//! all at the same time, costs about a tenth of that. There is one template per migration set, `crt_template_<fingerprint>`
//! (`build.rs` fingerprints the migrations the storage crate embeds), so a branch with other
//! migrations never clones a stale schema.
//!
//! MySQL has no `CREATE DATABASE … TEMPLATE`: a clone replays each table's
//! `SHOW CREATE TABLE` (which keeps the foreign keys `CREATE TABLE … LIKE` would lose) and
//! copies its rows, diesel's `__diesel_schema_migrations` among them, so the clone counts as
//! migrated.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::Context;
use couponrush_config::MysqlSettings;
use couponrush_storage::{Database, MIGRATIONS};
use diesel::migration::MigrationSource;
use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncMysqlConnection, RunQueryDsl, SimpleAsyncConnection};

use crate::TEST_DATABASE_PREFIX;

/// diesel's record of the migrations a database has run.
const MIGRATIONS_TABLE: &str = "__diesel_schema_migrations";

/// How long a process waits for another one to finish building the template: a migration
/// run takes a second or two, longer on a machine busy compiling.
const BUILD_WAIT: Duration = Duration::from_secs(120);

/// One test's database, a clone of the template; dropped with this value, also when the test
/// failed or panicked.
#[derive(Debug)]
pub(crate) struct TestDatabase {
    settings: MysqlSettings,
}

impl TestDatabase {
    /// Creates `settings.database` as a clone of the template, building the template first
    /// when no complete one exists.
    pub(crate) async fn create(settings: &MysqlSettings) -> anyhow::Result<Self> {
        // Owned before it exists: a clone that fails half-way is dropped too.
        let database = Self {
            settings: settings.clone(),
        };
        let template = template_name();
        let mut conn = connect(settings).await?;
        ensure_template(&mut conn, settings, &template).await?;
        clone(&mut conn, settings, &template, &settings.database)
            .await
            .with_context(|| format!("clone {template} into {}", settings.database))?;
        Ok(database)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let settings = self.settings.clone();
        let what = format!("database {}", settings.database);
        crate::cleanup::run(what, async move { drop_database(&settings).await });
    }
}

/// Drops `settings.database` if it exists (a test's, or a benchmark's or the demo's run).
pub async fn drop_database(settings: &MysqlSettings) -> anyhow::Result<()> {
    let mut conn = connect(settings).await?;
    conn.batch_execute(&format!("DROP DATABASE IF EXISTS `{}`", settings.database))
        .await
        .with_context(|| {
            format!(
                "drop database {} at {}",
                settings.database,
                settings.address()
            )
        })
}

/// The template of this build's migrations.
fn template_name() -> String {
    let fingerprint = env!("COUPONRUSH_MIGRATIONS_FINGERPRINT");
    format!("{TEST_DATABASE_PREFIX}template_{fingerprint}")
}

/// A connection to the server, no database selected (TLS as configured).
async fn connect(settings: &MysqlSettings) -> anyhow::Result<AsyncMysqlConnection> {
    couponrush_storage::connect(settings, false)
        .await
        .with_context(|| {
            format!(
                "MySQL at {}:{} (is scripts/stack.sh up?)",
                settings.host, settings.port
            )
        })
}

/// Builds `template` unless a complete one exists. Processes that start together take turns
/// under a server lock; the server frees the lock of a builder that dies, and the next one
/// finds its half-built template incomplete and builds it again.
async fn ensure_template(
    conn: &mut AsyncMysqlConnection,
    settings: &MysqlSettings,
    template: &str,
) -> anyhow::Result<()> {
    if is_complete(conn, template).await? {
        return Ok(());
    }
    let locked: Value = diesel::sql_query("SELECT GET_LOCK(?, ?) AS value")
        .bind::<Text, _>(template)
        .bind::<BigInt, _>(i64::try_from(BUILD_WAIT.as_secs())?)
        .get_result(conn)
        .await?;
    anyhow::ensure!(
        locked.value == Some(1),
        "another test process held the lock on building {template} for {BUILD_WAIT:?}"
    );
    // The process that held the lock before may have built it.
    let built = match is_complete(conn, template).await {
        Ok(false) => build(conn, settings, template).await,
        other => other.map(drop),
    };
    diesel::sql_query("SELECT RELEASE_LOCK(?)")
        .bind::<Text, _>(template)
        .execute(conn)
        .await?;
    built.with_context(|| format!("build the template database {template}"))
}

/// Builds `template` from scratch, as the `migrate` command builds a production database.
async fn build(
    conn: &mut AsyncMysqlConnection,
    settings: &MysqlSettings,
    template: &str,
) -> anyhow::Result<()> {
    conn.batch_execute(&format!("DROP DATABASE IF EXISTS `{template}`"))
        .await?;
    let mut target = settings.clone();
    target.database = template.to_owned();
    Database::create_database_if_missing(&target).await?;
    Database::new(&target)?.migrate().await?;
    Ok(())
}

/// Whether `template` records every migration this build embeds (diesel records each one
/// after it ran, so a template cut short misses at least the last).
async fn is_complete(conn: &mut AsyncMysqlConnection, template: &str) -> anyhow::Result<bool> {
    let exists: Value = diesel::sql_query(
        "SELECT COUNT(*) AS value FROM information_schema.tables \
         WHERE table_schema = ? AND table_name = ?",
    )
    .bind::<Text, _>(template)
    .bind::<Text, _>(MIGRATIONS_TABLE)
    .get_result(conn)
    .await?;
    if exists.value != Some(1) {
        return Ok(false);
    }
    let recorded: HashSet<String> = diesel::sql_query(format!(
        "SELECT version AS name FROM `{template}`.{MIGRATIONS_TABLE}"
    ))
    .load::<Name>(conn)
    .await?
    .into_iter()
    .map(|row| row.name)
    .collect();
    let embedded = MigrationSource::<diesel::mysql::Mysql>::migrations(&MIGRATIONS)
        .map_err(|e| anyhow::anyhow!("embedded migrations: {e}"))?;
    Ok(embedded
        .iter()
        .all(|migration| recorded.contains(&migration.name().version().to_string())))
}

/// Creates `target` with `template`'s tables and rows. Creating a table waits on the disk
/// (InnoDB syncs a new file and the data dictionary), so the tables are made at the same
/// time, one connection each.
async fn clone(
    conn: &mut AsyncMysqlConnection,
    settings: &MysqlSettings,
    template: &str,
    target: &str,
) -> anyhow::Result<()> {
    // Foreign keys name their tables without a database: they resolve in `target` once it
    // is the current database, and unchecked, the tables can be made in any order.
    let scripts: Vec<String> = definitions(conn, template)
        .await?
        .into_iter()
        .map(|(name, definition)| {
            format!(
                "USE `{target}`; SET SESSION foreign_key_checks = 0; {definition};\n\
                 INSERT INTO `{name}` SELECT * FROM `{template}`.`{name}`"
            )
        })
        .collect();
    conn.batch_execute(&format!("CREATE DATABASE `{target}` CHARACTER SET utf8mb4"))
        .await?;
    let copies = scripts.iter().map(async |script| {
        let mut conn = connect(settings).await?;
        conn.batch_execute(script).await?;
        anyhow::Ok(())
    });
    futures::future::try_join_all(copies).await?;
    Ok(())
}

/// Each table of `database` by name, with the statement that creates it.
async fn definitions(
    conn: &mut AsyncMysqlConnection,
    database: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let tables = diesel::sql_query(
        "SELECT table_name AS name FROM information_schema.tables \
         WHERE table_schema = ? AND table_type = 'BASE TABLE' ORDER BY table_name",
    )
    .bind::<Text, _>(database)
    .load::<Name>(conn)
    .await?;
    let mut definitions = Vec::new();
    for Name { name } in tables {
        let definition: Definition =
            diesel::sql_query(format!("SHOW CREATE TABLE `{database}`.`{name}`"))
                .get_result(conn)
                .await?;
        definitions.push((name, definition.sql));
    }
    Ok(definitions)
}

#[derive(diesel::QueryableByName)]
struct Value {
    #[diesel(sql_type = diesel::sql_types::Nullable<BigInt>)]
    value: Option<i64>,
}

#[derive(diesel::QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(diesel::QueryableByName)]
struct Definition {
    #[diesel(sql_type = Text, column_name = "Create Table")]
    sql: String,
}

#[cfg(test)]
#[path = "database_template_tests.rs"]
mod tests;
