//! Clones against the real MariaDB: the same schema as the template, migrated, gone on drop;
//! and templates built by processes that start together, over a half-built one.

use couponrush_config::{ConfigArgs, MysqlSettings};
use couponrush_storage::Database;
use diesel::sql_types::Text;
use diesel_async::{AsyncMysqlConnection, RunQueryDsl, SimpleAsyncConnection};

use super::{
    TestDatabase, Value, connect, definitions, ensure_template, is_complete, template_name,
};
use crate::TEST_DATABASE_PREFIX;

fn settings(name: &str) -> anyhow::Result<MysqlSettings> {
    // Spelled out: diesel-async's `RunQueryDsl::load` is in scope too.
    let mut settings = ConfigArgs::load(&ConfigArgs::default())?.mysql;
    let id = uuid::Uuid::now_v7().simple().to_string();
    settings.database = format!("{TEST_DATABASE_PREFIX}{name}{}", &id[20..]);
    Ok(settings)
}

async fn exists(conn: &mut AsyncMysqlConnection, database: &str) -> anyhow::Result<bool> {
    let found: Value = diesel::sql_query(
        "SELECT COUNT(*) AS value FROM information_schema.schemata WHERE schema_name = ?",
    )
    .bind::<Text, _>(database)
    .get_result(conn)
    .await?;
    Ok(found.value == Some(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clone_has_the_template_schema_counts_as_migrated_and_goes_on_drop() -> anyhow::Result<()>
{
    let settings = settings("")?;
    let database = TestDatabase::create(&settings).await?;
    let mut conn = connect(&settings).await?;

    let template = definitions(&mut conn, &template_name()).await?;
    let clone = definitions(&mut conn, &settings.database).await?;
    assert!(template.len() >= 4, "{template:?}");
    assert_eq!(clone, template);
    assert!(
        clone.iter().any(|(_, sql)| sql.contains("FOREIGN KEY")),
        "{clone:?}"
    );
    let applied = Database::new(&settings)?.migrate().await?;
    assert!(applied.is_empty(), "{applied:?}");

    drop(database);
    assert!(!exists(&mut conn, &settings.database).await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builders_starting_together_over_a_half_built_template_leave_one_complete()
-> anyhow::Result<()> {
    let settings = settings("template_test_")?;
    let template = settings.database.clone();
    let mut conn = connect(&settings).await?;
    // What a run killed in the middle of migrating leaves behind.
    conn.batch_execute(&format!(
        "CREATE DATABASE `{template}`; CREATE TABLE `{template}`.coupon (id BIGINT)"
    ))
    .await?;
    assert!(!is_complete(&mut conn, &template).await?);

    let builders = (0..4).map(|_| {
        let settings = settings.clone();
        let template = template.clone();
        tokio::spawn(async move {
            let mut conn = connect(&settings).await?;
            ensure_template(&mut conn, &settings, &template).await
        })
    });
    let results = futures::future::join_all(builders).await;
    let complete = is_complete(&mut conn, &template).await;
    let definitions = definitions(&mut conn, &template).await;
    conn.batch_execute(&format!("DROP DATABASE `{template}`"))
        .await?;
    for result in results {
        result??;
    }
    assert!(complete?);
    let coupon = definitions?
        .into_iter()
        .find(|(name, _)| name == "coupon")
        .map(|(_, sql)| sql)
        .unwrap_or_default();
    assert!(coupon.contains("available_quantity"), "{coupon}");
    Ok(())
}
