//! The real deploy/k8s/base through the rules and the binaries' config loader: it passes as
//! committed, and an edit production refuses (a loopback broker, the example Secret's
//! placeholder admin token) fails naming the setting. (tests.rs: each rule on a small set.)

use couponrush_config::Needs;
use serde_yaml_ng::Value;

use super::manifests::Manifests;
use super::settings::{environment, load};
use crate::binaries::workspace_root;

fn real_manifests() -> anyhow::Result<Manifests> {
    Manifests::load(&workspace_root().join("deploy/k8s/base"))
}

/// deploy/k8s/base/configmap.yaml with the example Secret, through the real loader under the
/// production profile: what every workload of the directory would start with.
#[test]
fn the_real_manifests_load_in_production() -> anyhow::Result<()> {
    let manifests = real_manifests()?;
    let problems = super::problems(&manifests);
    anyhow::ensure!(problems.is_empty(), "{problems:#?}");
    anyhow::ensure!(
        manifests.templates().len() >= 5,
        "the workloads were not found"
    );
    Ok(())
}

#[test]
fn a_loopback_broker_in_the_real_configmap_is_refused() -> anyhow::Result<()> {
    let mut manifests = real_manifests()?;
    let configmap = manifests
        .objects
        .iter_mut()
        .find(|o| o.kind() == "ConfigMap")
        .ok_or_else(|| anyhow::anyhow!("no ConfigMap in deploy/k8s/base"))?;
    configmap.value["data"]["COUPON__KAFKA__BOOTSTRAP_SERVERS"] =
        Value::String("kafka-0.kafka:9092,localhost:9092".into());
    let problems = super::problems(&manifests);
    let refused = |workload: &str| {
        problems.iter().any(|p| {
            p.contains(workload)
                && p.contains("kafka.bootstrap_servers")
                && p.contains("entry 2 of 2 is a loopback address")
        })
    };
    anyhow::ensure!(
        refused("Deployment issuer-api") && refused("Deployment coupon-consumer"),
        "{problems:#?}"
    );
    Ok(())
}

/// The example Secret's admin token is deliberately too short: an unchanged copy makes the
/// issuer-api (the one binary that needs the token) refuse to start, naming the setting.
#[test]
fn the_example_admin_token_is_refused_where_it_is_needed() -> anyhow::Result<()> {
    let manifests = real_manifests()?;
    let templates = manifests.templates();
    let api = templates
        .iter()
        .find(|t| t.owner.kind() == "Deployment" && t.owner.name() == "issuer-api")
        .ok_or_else(|| anyhow::anyhow!("no issuer-api Deployment"))?;
    let container = &api.spec["containers"][0];
    let vars = environment(&manifests, api, container)
        .map_err(anyhow::Error::msg)?
        .ok_or_else(|| anyhow::anyhow!("issuer-api names an undefined source"))?;
    load(&vars, Needs::default())?;
    let Err(error) = load(
        &vars,
        Needs {
            admin_token: true,
            ..Needs::default()
        },
    ) else {
        anyhow::bail!("the placeholder admin token was accepted");
    };
    let error = error.to_string();
    anyhow::ensure!(
        error.contains("admin.token (COUPON__ADMIN__TOKEN)"),
        "{error}"
    );
    Ok(())
}
