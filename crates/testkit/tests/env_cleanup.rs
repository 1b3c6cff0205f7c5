//! A test environment removes what it made when it is dropped, also when its test panics.

use std::panic::AssertUnwindSafe;

use couponrush_testkit::TestEnv;
use diesel::sql_types::{BigInt, Text};
use diesel_async::RunQueryDsl;
use futures::FutureExt;

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    value: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_test_leaves_neither_its_database_nor_its_keys() -> anyhow::Result<()> {
    let (made, told) = tokio::sync::oneshot::channel();
    let test = AssertUnwindSafe(async move {
        let env = TestEnv::new(1).await?;
        let key = format!("{}coupon:issue:{{1}}:stock", env.settings.redis.key_prefix);
        let mut redis = couponrush_cache::client(&env.settings.redis)?
            .get_multiplexed_async_connection()
            .await?;
        redis::cmd("SET")
            .arg(&key)
            .arg(1)
            .query_async::<()>(&mut redis)
            .await?;
        made.send((env.settings.clone(), key.clone())).ok();
        assert!(
            key.is_empty(),
            "the test fails with its environment in scope"
        );
        Ok::<_, anyhow::Error>(())
    })
    .catch_unwind();
    assert!(test.await.is_err(), "the test did not panic");
    let (settings, key) = told.await?;

    let mut mysql = couponrush_storage::connect(&settings.mysql, false).await?;
    let databases: Count = diesel::sql_query(
        "SELECT COUNT(*) AS value FROM information_schema.schemata WHERE schema_name = ?",
    )
    .bind::<Text, _>(&settings.mysql.database)
    .get_result(&mut mysql)
    .await?;
    assert_eq!(databases.value, 0, "{} is left", settings.mysql.database);
    let mut redis = couponrush_cache::client(&settings.redis)?
        .get_multiplexed_async_connection()
        .await?;
    let keys: i64 = redis::cmd("EXISTS")
        .arg(&key)
        .query_async(&mut redis)
        .await?;
    assert_eq!(keys, 0, "{key} is left");
    Ok(())
}
