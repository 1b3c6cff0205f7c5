use couponrush_config::Settings;
use couponrush_ops::{Dependency, StartupProbes};
use couponrush_storage::Database;

use crate::connect;

/// Creates the database if needed and applies the embedded migrations.
pub async fn run(settings: &Settings) -> anyhow::Result<()> {
    // The first contact with the MySQL server: refused like any start-up probe.
    let created = Database::create_database_if_missing(&settings.mysql);
    StartupProbes::new(&settings.startup)
        .check(Dependency::MySql, created)
        .await?;
    let db = connect::mysql(settings).await?;
    let applied = db.migrate().await?;
    if applied.is_empty() {
        tracing::info!(mysql = db.address(), "schema is up to date");
    } else {
        tracing::info!(mysql = db.address(), ?applied, "migrations applied");
    }
    Ok(())
}
