use anyhow::Context;
use couponrush_config::Settings;
use couponrush_storage::Database;

/// Creates the database if needed and applies the embedded migrations.
pub async fn run(settings: &Settings) -> anyhow::Result<()> {
    Database::create_database_if_missing(&settings.mysql)
        .await
        .context("start-up check failed for MySQL")?;
    let db = crate::connect_mysql(settings).await?;
    let applied = db.migrate().await?;
    if applied.is_empty() {
        tracing::info!(mysql = db.address(), "schema is up to date");
    } else {
        tracing::info!(mysql = db.address(), ?applied, "migrations applied");
    }
    Ok(())
}
