//! What every step of a consumer or batch benchmark run shares, whatever it measures.

use std::path::PathBuf;

use couponrush_config::Settings;
use couponrush_storage::Database;

use super::cpu::Watch;
use super::run_info::{RunInfo, services};

/// The run's record, the processes' environment, logs, database and CPU watch.
pub struct Session {
    pub info: RunInfo,
    /// The environment of the processes it starts: the stack's and the run's own `COUPON__*`
    /// variables (database, key prefix, logging).
    pub env: Vec<(String, String)>,
    pub logs: PathBuf,
    pub mysql: Database,
    /// mysql, broker and redis, by the pid listening on their ports.
    pub watch: Watch,
    /// Their versions, for the summary's header.
    pub versions: String,
}

impl Session {
    /// The session of a run whose services `settings` point at (found for the watch now).
    pub async fn new(
        info: RunInfo,
        env: Vec<(String, String)>,
        logs: PathBuf,
        mysql: Database,
        settings: &Settings,
    ) -> Self {
        let (watch, versions) = services(settings).await;
        Self {
            info,
            env,
            logs,
            mysql,
            watch,
            versions,
        }
    }
}
