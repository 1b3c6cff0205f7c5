//! The gate cuts one client by its id, against a real tansu and real librdkafka clients.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use super::SplitBroker;

/// Whether a new client with `client_id` gets the broker's metadata within 3 s.
async fn reaches(address: &str, client_id: &str) -> anyhow::Result<bool> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", address)
        .set("client.id", client_id);
    let consumer: BaseConsumer = config.create()?;
    Ok(tokio::task::spawn_blocking(move || {
        consumer
            .fetch_metadata(None, Duration::from_secs(3))
            .is_ok()
    })
    .await?)
}

#[tokio::test]
async fn cuts_one_client_and_lets_the_others_through() -> anyhow::Result<()> {
    let broker = SplitBroker::start().await?;
    let address = broker.address();
    assert!(reaches(&address, "consumer").await?, "before the cut");
    broker.cut("consumer");
    assert!(!reaches(&address, "consumer").await?, "the cut client");
    assert!(reaches(&address, "api").await?, "another client");
    broker.heal();
    assert!(reaches(&address, "consumer").await?, "after healing");
    Ok(())
}
