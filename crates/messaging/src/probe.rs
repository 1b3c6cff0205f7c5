use std::io::ErrorKind;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use couponrush_config::KafkaSettings;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::metadata::Metadata;

use crate::error::MessagingError;
use crate::settings::client_config;

/// Fetches the topic's metadata within `timeout`: proves the broker answers and the topic
/// exists with partitions. Returns the partition count.
pub async fn probe_topic(
    settings: &KafkaSettings,
    topic: &str,
    timeout: Duration,
) -> Result<usize, MessagingError> {
    let settings = settings.clone();
    let topic = topic.to_owned();
    off_runtime(timeout, move || probe_blocking(&settings, &topic, timeout)).await
}

/// Runs `work`, a librdkafka call that blocks the calling thread for up to `timeout`, off the
/// async workers.
pub(crate) async fn off_runtime<T: Send + 'static>(
    timeout: Duration,
    work: impl FnOnce() -> Result<T, MessagingError> + Send + 'static,
) -> Result<T, MessagingError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| MessagingError::Unreachable {
            address: String::new(),
            timeout_ms: timeout.as_millis(),
            reason: e.to_string(),
        })?
}

fn probe_blocking(
    settings: &KafkaSettings,
    topic: &str,
    timeout: Duration,
) -> Result<usize, MessagingError> {
    let address = settings.bootstrap_servers.clone();
    let unreachable = |reason: String| MessagingError::Unreachable {
        address: address.clone(),
        timeout_ms: timeout.as_millis(),
        reason,
    };
    let started = Instant::now();
    if let Some(reason) = refused_by_every_broker(settings, timeout) {
        return Err(MessagingError::Refused {
            address: address.clone(),
            reason,
        });
    }
    let timeout = timeout.saturating_sub(started.elapsed());
    // Probing never creates the topic: `client_config` forbids it for every client.
    let client: BaseConsumer = client_config(settings)
        .create()
        .map_err(|e| unreachable(e.to_string()))?;
    let metadata = client
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| unreachable(e.to_string()))?;
    partitions_of(&metadata, topic).map_err(|reason| MessagingError::MissingTopic {
        topic: topic.to_owned(),
        address,
        reason,
    })
}

/// The partition count of `topic` in `metadata`; why not when the broker does not serve it.
pub(crate) fn partitions_of(metadata: &Metadata, topic: &str) -> Result<usize, String> {
    let found = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(|| "not in the broker's metadata".to_owned())?;
    if let Some(error) = found.error() {
        return Err(format!("{error:?}"));
    }
    match found.partitions().len() {
        0 => Err("it has no partitions".to_owned()),
        n => Ok(n),
    }
}

/// A refusal is an answer. librdkafka retries refused connections until the timeout, so a
/// broker that is plainly down cost the whole `startup.probe_timeout_ms`; a plain TCP connect
/// to every bootstrap address tells at once. `Some(why)` when every address refused (or did
/// not resolve); `None` as soon as one accepts or stays silent, where the bound applies.
pub(crate) fn refused_by_every_broker(
    settings: &KafkaSettings,
    timeout: Duration,
) -> Option<String> {
    let mut refusals = Vec::new();
    for entry in settings.brokers() {
        let addresses = match entry.to_socket_addrs() {
            Ok(addresses) => addresses,
            Err(error) => {
                refusals.push(format!("{entry}: {error}"));
                continue;
            }
        };
        for address in addresses {
            match TcpStream::connect_timeout(&address, timeout) {
                Err(error) if error.kind() == ErrorKind::ConnectionRefused => {
                    refusals.push(format!("{entry} ({address}): connection refused"));
                }
                _ => return None,
            }
        }
    }
    (!refusals.is_empty()).then(|| refusals.join("; "))
}
