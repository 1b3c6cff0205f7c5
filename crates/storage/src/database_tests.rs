//! Deadlines against a MySQL that hangs, through a fault proxy.

use std::time::{Duration, Instant};

use couponrush_testkit::{FaultProxy, TestEnv, eventually};
use diesel::sql_types::{BigInt, Double, Nullable};
use diesel_async::RunQueryDsl;

use super::Database;

#[derive(diesel::QueryableByName)]
struct Value {
    #[diesel(sql_type = Nullable<BigInt>)]
    value: Option<i64>,
}

#[derive(diesel::QueryableByName)]
struct Seconds {
    #[diesel(sql_type = Double)]
    value: f64,
}

async fn select(db: &Database, sql: String) -> Result<Option<i64>, crate::StorageError> {
    db.run(async |conn| {
        let row: Value = diesel::sql_query(sql).get_result(conn).await?;
        Ok(row.value)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_that_misses_its_deadline_is_cut_and_its_session_ended() -> anyhow::Result<()> {
    let env = TestEnv::new(1).await?;
    let direct = Database::new(&env.settings.mysql)?;
    let proxy = FaultProxy::start(format!(
        "{}:{}",
        env.settings.mysql.host, env.settings.mysql.port
    ))
    .await?;
    let mut settings = env.settings.mysql.clone();
    settings.port = proxy.port();
    settings.prefer_socket = false;
    settings.lock_wait_timeout_s = 1;
    settings.connect_timeout_ms = 1000;
    let db = Database::new(&settings)?;
    assert_eq!(db.deadline(), Duration::from_secs(2));

    // The server bounds the session too (MariaDB).
    let bound: Seconds = db
        .run(async |conn| {
            Ok(diesel::sql_query("SELECT @@max_statement_time AS value")
                .get_result(conn)
                .await?)
        })
        .await?;
    assert!((bound.value - 2.0).abs() < f64::EPSILON, "{}", bound.value);

    // A session that holds a lock, then its server stops answering mid-work.
    let lock = format!("crt_{}", env.id);
    let started = Instant::now();
    let hung = db
        .run(async |conn| {
            diesel::sql_query(format!("SELECT GET_LOCK('{lock}', 0) AS value"))
                .execute(conn)
                .await?;
            proxy.freeze().await.ok();
            diesel::sql_query("SELECT 1").execute(conn).await?;
            Ok(())
        })
        .await;
    let cut_after = started.elapsed();
    assert!(
        matches!(hung, Err(crate::StorageError::Timeout { .. })),
        "{hung:?}"
    );
    assert!(
        cut_after >= Duration::from_secs(2) && cut_after < Duration::from_secs(3),
        "{cut_after:?}"
    );

    // Once the network is back, the abandoned session ends (its lock is released) rather
    // than waiting in the pool for its next user, and the pool serves fresh connections.
    proxy.pass().await?;
    let released = Instant::now();
    eventually(
        Duration::from_secs(5),
        "the abandoned session to end",
        async || {
            let free = select(&direct, format!("SELECT IS_FREE_LOCK('{lock}') AS value")).await;
            (free.ok().flatten() == Some(1)).then_some(())
        },
    )
    .await?;
    assert_eq!(select(&db, "SELECT 7 AS value".into()).await?, Some(7));
    eprintln!(
        "MySQL frozen mid-work: cut after {cut_after:.1?}, session gone {:.1?} after the thaw",
        released.elapsed()
    );
    Ok(())
}
