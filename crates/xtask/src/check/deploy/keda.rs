//! KEDA's Kafka trigger, checked where its schema cannot: the ScaledObject CRD types a
//! trigger's `metadata` as a free map of strings, so a misspelt key (`lagThreshhold`) passes
//! every schema and KEDA silently applies the default. The trigger must also read the topic
//! and group its scale target consumes, reset offsets as the consumer does, and not scale past
//! the partitions (members beyond them sit idle).

use couponrush_config::Needs;

use super::manifests::{Manifests, Object, containers};
use super::settings::{environment, load};

/// The `metadata` keys of KEDA's `kafka` trigger: the "Parameter list" of the Apache Kafka
/// scaler's documentation for KEDA 2.21 (keda.sh/docs/2.21/scalers/apache-kafka/, the newest
/// version in the kedacore/keda-docs repository when this list was written). Credentials
/// (`username`, `password`, `ca`, ...) belong in a TriggerAuthentication, not here.
pub const KAFKA_TRIGGER_KEYS: [&str; 19] = [
    "bootstrapServers",
    "consumerGroup",
    "topic",
    "lagThreshold",
    "activationLagThreshold",
    "offsetResetPolicy",
    "allowIdleConsumers",
    "scaleToZeroOnInvalidOffset",
    "excludePersistentLag",
    "limitToPartitionsWithLag",
    "ensureEvenDistributionOfPartitions",
    "version",
    "fullMetadata",
    "partitionLimitation",
    "sasl",
    "saslTokenProvider",
    "tls",
    "unsafeSsl",
    "awsRegion",
];

/// The consumer's `auto.offset.reset` (crates/messaging/src/settings.rs): KEDA must count the
/// lag of a group without committed offsets the same way (its default is `latest`).
const CONSUMER_OFFSET_RESET: &str = "earliest";

/// Partitions of the issue topic: deploy/k8s/base/configmap.yaml requires the topic to exist
/// with 3 (the README's diagram says the same). Change both together.
pub const ISSUE_TOPIC_PARTITIONS: u64 = 3;

/// The problems of every `kafka` trigger of the ScaledObjects and ScaledJobs.
pub fn kafka_triggers(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    for o in m
        .objects
        .iter()
        .filter(|o| matches!(o.kind(), "ScaledObject" | "ScaledJob"))
    {
        let triggers = o.value["spec"]["triggers"]
            .as_sequence()
            .into_iter()
            .flatten();
        for (i, trigger) in triggers.enumerate() {
            if trigger["type"] != "kafka" {
                continue;
            }
            let at = format!("{}: triggers[{i}] (kafka)", o.label());
            let metadata = &trigger["metadata"];
            for key in metadata.as_mapping().into_iter().flatten().map(|(k, _)| k) {
                let key = key.as_str().unwrap_or_default();
                if !KAFKA_TRIGGER_KEYS.contains(&key) {
                    problems.push(format!(
                        "{at}: metadata key {key:?} is not a parameter of KEDA's kafka scaler \
                         (keda.sh/docs/2.21/scalers/apache-kafka/; known: {})",
                        KAFKA_TRIGGER_KEYS.join(", ")
                    ));
                }
            }
            let reset = metadata["offsetResetPolicy"]
                .as_str()
                .unwrap_or("latest (default)");
            if reset != CONSUMER_OFFSET_RESET {
                problems.push(format!(
                    "{at}: offsetResetPolicy is {reset}; the consumer resets to \
                     {CONSUMER_OFFSET_RESET}, so KEDA would misread a group without offsets"
                ));
            }
            if o.kind() == "ScaledObject" {
                problems.extend(
                    matches_target(m, o, metadata)
                        .err()
                        .map(|p| format!("{at}: {p}")),
                );
            }
        }
        let max = o.value["spec"]["maxReplicaCount"].as_u64();
        if o.kind() == "ScaledObject" && max.is_none_or(|max| max > ISSUE_TOPIC_PARTITIONS) {
            problems.push(format!(
                "{}: maxReplicaCount {} exceeds the {ISSUE_TOPIC_PARTITIONS} partitions of the \
                 issue topic (KEDA's default is 100): consumers past them sit idle",
                o.label(),
                max.map_or("(unset)".to_owned(), |m| m.to_string())
            ));
        }
    }
    problems
}

/// The trigger's `topic` and `consumerGroup` are those the scale target's containers load
/// through the config loader (a trigger on another group scales on a lag nobody consumes).
fn matches_target(
    m: &Manifests,
    o: &Object,
    metadata: &serde_yaml_ng::Value,
) -> Result<(), String> {
    let target = &o.value["spec"]["scaleTargetRef"];
    let kind = target["kind"].as_str().unwrap_or("Deployment");
    let name = target["name"].as_str().unwrap_or_default();
    let namespace = m.namespace(o);
    let Some(template) = m
        .templates()
        .into_iter()
        .find(|t| t.owner.kind() == kind && t.owner.name() == name && t.namespace == namespace)
    else {
        return Ok(()); // scale_targets_exist names a missing target
    };
    for container in containers(template.spec) {
        let Ok(Some(vars)) = environment(m, &template, container) else {
            continue; // env_from_names_defined_sources and the settings rule say why
        };
        let Ok(settings) = load(&vars, Needs::default()) else {
            continue;
        };
        for (key, wanted) in [
            ("topic", &settings.kafka.topic),
            ("consumerGroup", &settings.kafka.consumer_group),
        ] {
            let found = metadata[key].as_str().unwrap_or_default();
            if found != wanted.as_str() {
                return Err(format!(
                    "{key} is {found:?}, but {kind} {name} consumes {wanted:?} (its settings)"
                ));
            }
        }
    }
    Ok(())
}
