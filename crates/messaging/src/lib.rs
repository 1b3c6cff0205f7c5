//! Kafka adapter: one place for client settings, the acknowledged publisher, the start-up
//! probe and topic administration.

mod admin;
mod dead_letter;
mod error;
mod in_flight;
pub mod noise;
mod probe;
mod producer;
mod publisher;
mod replay;
mod settings;
mod signing;
mod trace_context;

pub use admin::{delete_topics, ensure_topic, list_topics};
pub use dead_letter::{
    DLQ_ATTEMPTS_HEADER, DLQ_ERROR_HEADER, DLQ_ORIGINAL_SIZE_HEADER, DLQ_REASON_HEADER,
    DLQ_SHA256_HEADER, DLQ_SOURCE_HEADER, DeadLetter, DeadLetterPublisher, Delivered,
    TRUNCATED_PAYLOAD_BYTES,
};
pub use error::MessagingError;
pub use in_flight::{InFlight, InFlightScan};
pub use probe::probe_topic;
pub use producer::{DeliveryFailure, ManagedProducer, connected_brokers};
pub use publisher::{IssuePublisher, SCHEMA_VERSION_HEADER, schema_headers};
pub use replay::{
    REPLAYED_FROM_HEADER, ReplayReport, ReplayRequest, replay_dead_letters, replay_group,
};
pub use settings::{client_config, consumer_config, issue_consumer_config};
pub use signing::{MessageSigner, SIGNATURE_HEADER, SignatureRejection};
pub use trace_context::{trace_parent, with_current_trace};
