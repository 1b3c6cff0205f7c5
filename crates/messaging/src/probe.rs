use std::io::ErrorKind;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use couponrush_config::KafkaSettings;
use std::sync::{Arc, Mutex};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
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
    let context = LastError::default();
    let client: BaseConsumer<LastError> = client_config(settings)
        .create_with_context(context.clone())
        .map_err(|e| unreachable(e.to_string()))?;
    let metadata = client.fetch_metadata(Some(topic), timeout).map_err(|e| {
        // The error events wait in the client's queue until polled: serve them so the
        // context hears them.
        for _ in 0..64 {
            if client.poll(Duration::ZERO).is_none() {
                break;
            }
        }
        unreachable(context.explain(&e))
    })?;
    partitions_of(&metadata, topic).map_err(|reason| MessagingError::MissingTopic {
        topic: topic.to_owned(),
        address,
        reason,
    })
}

/// The last error librdkafka reported on its own (error callback) while the probe waited. A
/// failed TLS handshake (unknown CA, wrong host name) or SASL authentication only ever shows
/// there: the metadata request itself just times out, which would read like a silent broker.
#[derive(Clone, Default)]
struct LastError(Arc<Mutex<Option<String>>>);

impl LastError {
    /// `error`, followed by what librdkafka reported last, if anything.
    fn explain(&self, error: &KafkaError) -> String {
        match self.0.lock().ok().and_then(|last| last.clone()) {
            Some(last) => format!("{error}; the client last reported: {last}"),
            None => error.to_string(),
        }
    }
}

impl LastError {
    fn record(&self, what: String) {
        if let Ok(mut last) = self.0.lock() {
            *last = Some(what);
        }
    }
}

impl ClientContext for LastError {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "Kafka client error during the start-up probe");
        self.record(format!("{error} ({reason})"));
    }

    /// librdkafka logs a connection's failure (facility `FAIL`: refused TLS handshake, failed
    /// SASL authentication) with its reason, which the error it returns leaves out.
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        let severe = matches!(
            level,
            RDKafkaLogLevel::Emerg
                | RDKafkaLogLevel::Alert
                | RDKafkaLogLevel::Critical
                | RDKafkaLogLevel::Error
        );
        if severe || fac == "FAIL" {
            tracing::warn!(facility = fac, "librdkafka: {log_message}");
            self.record(format!("{fac}: {log_message}"));
        } else {
            tracing::debug!(facility = fac, "librdkafka: {log_message}");
        }
    }
}

impl ConsumerContext for LastError {}

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
