//! The jobs' clients, each proven to answer (`couponrush_ops::StartupProbes`) before a job
//! reads or writes anything: a job run against a dependency that is not there fails at once,
//! naming it and its address.

use couponrush_cache::ReservationStore;
use couponrush_config::Settings;
use couponrush_ops::StartupProbes;
use couponrush_storage::Database;

/// A MySQL pool that answered within the start-up bound.
pub async fn mysql(settings: &Settings) -> anyhow::Result<Database> {
    let db = Database::new(&settings.mysql)?;
    StartupProbes::new(&settings.startup).mysql(&db).await?;
    Ok(db)
}

/// A Redis client that answered within the start-up bound.
pub async fn redis(settings: &Settings) -> anyhow::Result<ReservationStore> {
    let cache = ReservationStore::new(&settings.redis)?;
    StartupProbes::new(&settings.startup).redis(&cache).await?;
    Ok(cache)
}
