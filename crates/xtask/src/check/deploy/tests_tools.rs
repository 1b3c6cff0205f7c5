//! The checks that run the real tools: `kubectl kustomize` on the real layout and on small
//! layouts broken one way, the custom-resource schemas through node and the
//! `@kubernetes-models` packages, and the generated PrometheusRule's staleness.

use std::path::Path;

use serde_yaml_ng::Value;

use super::layout::{self, Kustomization};
use super::manifests::{Manifests, Object, parse};
use super::{build, crds, object_problems};
use crate::binaries::workspace_root;
use crate::generate::monitoring;

/// `dir` of the real deploy/k8s, built by kubectl with the example Secret, as the check does.
async fn built(name: &str) -> anyhow::Result<Manifests> {
    let root = workspace_root().join("deploy/k8s");
    let all = layout::discover(&root)?;
    let top = all
        .iter()
        .find(|k| k.name == name)
        .ok_or_else(|| anyhow::anyhow!("no kustomization {name} under deploy/k8s"))?;
    let (kubectl, _) = build::kubectl().await?;
    let text = build::kustomize(&kubectl, &top.dir)
        .await?
        .map_err(anyhow::Error::msg)?;
    Ok(Manifests::built(
        name,
        &text,
        super::example_secrets(&all),
        layout::covered_images(&all, top),
    ))
}

#[tokio::test]
async fn every_real_build_passes_the_object_rules() -> anyhow::Result<()> {
    let all = layout::discover(&workspace_root().join("deploy/k8s"))?;
    let names: Vec<&str> = all
        .iter()
        .filter(|k| !k.is_component())
        .map(|k| k.name.as_str())
        .collect();
    anyhow::ensure!(
        names.contains(&"base") && names.contains(&"overlays/production"),
        "{names:?}"
    );
    anyhow::ensure!(layout::unused_components(&all).is_empty());
    for name in names {
        let manifests = built(name).await?;
        let problems = object_problems(&manifests);
        anyhow::ensure!(problems.is_empty(), "{name}: {problems:#?}");
    }
    Ok(())
}

#[tokio::test]
async fn a_loopback_broker_in_the_built_production_overlay_is_refused() -> anyhow::Result<()> {
    let mut manifests = built("overlays/production").await?;
    let configmap = manifests
        .objects
        .iter_mut()
        .find(|o| o.kind() == "ConfigMap")
        .ok_or_else(|| anyhow::anyhow!("no ConfigMap in the production overlay"))?;
    configmap.value["data"]["COUPON__KAFKA__BOOTSTRAP_SERVERS"] =
        Value::String("localhost:9092".into());
    let problems = object_problems(&manifests);
    anyhow::ensure!(
        problems.iter().any(
            |p| p.starts_with("overlays/production: Deployment coupon-consumer")
                && p.contains("entry 1 of 1 is a loopback address")
        ),
        "{problems:#?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_monitor_without_the_rules_job_is_refused() -> anyhow::Result<()> {
    let mut manifests = built("overlays/production").await?;
    for o in manifests
        .objects
        .iter_mut()
        .filter(|o| o.kind() == "PodMonitor")
    {
        if let Some(spec) = o.value.get_mut("spec").and_then(Value::as_mapping_mut) {
            spec.remove("jobLabel");
        }
    }
    let problems = object_problems(&manifests);
    anyhow::ensure!(
        problems
            .iter()
            .any(|p| p.contains("no PodMonitor or ServiceMonitor gives job=\"coupon-consumer\"")),
        "{problems:#?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_monitor_on_a_port_the_pods_do_not_name_is_refused() -> anyhow::Result<()> {
    let mut manifests = built("overlays/production").await?;
    let monitor = manifests
        .objects
        .iter_mut()
        .find(|o| o.kind() == "PodMonitor" && o.name() == "issuer-api")
        .ok_or_else(|| anyhow::anyhow!("no PodMonitor issuer-api in the production overlay"))?;
    monitor.value["spec"]["podMetricsEndpoints"][0]["port"] = Value::String("metrics".into());
    let problems = object_problems(&manifests);
    anyhow::ensure!(
        problems.iter().any(|p| p.contains(
            "PodMonitor issuer-api: scrapes port \"metrics\", which no selected pod template names"
        )),
        "{problems:#?}"
    );
    Ok(())
}

/// Writes `files` (path relative to the layout's root, text) into a temporary directory.
fn layout_of(files: &[(&str, &str)]) -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap_or(dir.path()))?;
        std::fs::write(path, text)?;
    }
    Ok(dir)
}

const BASE: (&str, &str) = (
    "base/kustomization.yaml",
    "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [cm.yaml]\n",
);
const BASE_CM: (&str, &str) = (
    "base/cm.yaml",
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {COUPON__PROFILE: production}\n",
);
const COMPONENT: (&str, &str) = (
    "components/extra/kustomization.yaml",
    "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nresources: [so.yaml]\n",
);
const COMPONENT_SO: (&str, &str) = (
    "components/extra/so.yaml",
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: d}\n",
);

fn kustomizations(dir: &Path) -> anyhow::Result<Vec<Kustomization>> {
    layout::discover(dir)
}

#[tokio::test]
async fn overlays_are_found_built_and_their_components_must_be_included() -> anyhow::Result<()> {
    let overlay = (
        "overlays/prod/kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
         resources: [../../base]\ncomponents: [../../components/extra]\n",
    );
    let dir = layout_of(&[BASE, BASE_CM, COMPONENT, COMPONENT_SO, overlay])?;
    let all = kustomizations(dir.path())?;
    let names: Vec<&str> = all.iter().map(|k| k.name.as_str()).collect();
    anyhow::ensure!(
        names == ["base", "components/extra", "overlays/prod"],
        "{names:?}"
    );
    anyhow::ensure!(layout::unused_components(&all).is_empty());
    let (kubectl, _) = build::kubectl().await?;
    let prod = all
        .iter()
        .find(|k| k.name == "overlays/prod")
        .ok_or_else(|| anyhow::anyhow!("no overlay"))?;
    let text = build::kustomize(&kubectl, &prod.dir)
        .await?
        .map_err(anyhow::Error::msg)?;
    let names: Vec<String> = parse(&text)?
        .iter()
        .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    anyhow::ensure!(names == ["c", "d"], "{names:?}");

    // The same layout without the overlay: the component is built by nothing.
    let dir = layout_of(&[BASE, BASE_CM, COMPONENT, COMPONENT_SO])?;
    let problems = layout::unused_components(&kustomizations(dir.path())?);
    anyhow::ensure!(
        problems == ["components/extra: a Component that no kustomization includes"],
        "{problems:?}"
    );

    // An overlay naming a missing component does not build: kubectl's complaint is kept.
    let broken = (
        "overlays/prod/kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
         resources: [../../base]\ncomponents: [../../components/missing]\n",
    );
    let dir = layout_of(&[BASE, BASE_CM, broken])?;
    let Err(complaint) = build::kustomize(&kubectl, &dir.path().join("overlays/prod")).await?
    else {
        anyhow::bail!("an overlay naming a missing component built");
    };
    anyhow::ensure!(complaint.contains("missing"), "{complaint}");
    Ok(())
}

fn object(yaml: &str) -> anyhow::Result<Object> {
    Ok(Object {
        file: "test".to_owned(),
        value: serde_yaml_ng::from_str(yaml)?,
    })
}

const ROLLOUT: &str = "\
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: issuer-api}
spec:
  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: issuer-api}
  strategy:
    canary:
      steps: [{setWeight: 10}, {pause: {duration: 5m}}, {setWeight: 50}]
";

#[tokio::test]
async fn custom_resources_go_through_their_published_schemas() -> anyhow::Result<()> {
    let good = object(ROLLOUT)?;
    let problems = crds::validate(&[&good]).await?;
    anyhow::ensure!(problems.is_empty(), "{problems:#?}");

    let bad = object(&ROLLOUT.replace("{setWeight: 50}", "{setWeight: fifty}"))?;
    let problems = crds::validate(&[&bad]).await?;
    anyhow::ensure!(
        problems
            == [
                "test: Rollout issuer-api: /spec/strategy/canary/steps/2/setWeight: must be integer"
            ],
        "{problems:#?}"
    );

    let scaled = object(
        "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: c}\n\
         spec: {scaleTargetRef: {name: c}, maxReplicaCount: three, triggers: []}\n",
    )?;
    let problems = crds::validate(&[&scaled]).await?;
    anyhow::ensure!(
        problems.len() == 1 && problems[0].contains("ScaledObject c: /spec/maxReplicaCount"),
        "{problems:#?}"
    );

    // A kind of a known group the package has no model of, and a group nobody knows: failures.
    let unknown =
        object("apiVersion: keda.sh/v1alpha1\nkind: ScaledObjekt\nmetadata: {name: c}\n")?;
    let other = object("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n")?;
    let problems = crds::validate(&[&unknown, &other]).await?;
    anyhow::ensure!(
        problems.len() == 2
            && problems[0].contains("has no model of keda.sh/v1alpha1 ScaledObjekt")
            && problems[1].contains("no validator knows example.com/v1 Widget"),
        "{problems:#?}"
    );
    anyhow::ensure!(crds::is_core("v1") && crds::is_core("apps/v1"));
    anyhow::ensure!(crds::is_core("networking.k8s.io/v1") && !crds::is_core("keda.sh/v1alpha1"));
    Ok(())
}

#[test]
fn the_generated_prometheus_rules_are_current_and_a_stale_copy_fails() -> anyhow::Result<()> {
    // The committed file is what the generator writes from the committed rule files.
    let stale = monitoring::stale(&workspace_root())?;
    anyhow::ensure!(stale.is_none(), "{stale:?}");

    let dir = layout_of(&[
        (
            "deploy/prometheus/prometheus.yaml",
            "rule_files: [alerts.yaml]\n",
        ),
        (
            "deploy/prometheus/alerts.yaml",
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n",
        ),
    ])?;
    let root = dir.path();
    std::fs::create_dir_all(root.join(monitoring::OUTPUT).parent().unwrap_or(root))?;
    std::fs::write(root.join(monitoring::OUTPUT), monitoring::render(root)?)?;
    anyhow::ensure!(monitoring::stale(root)?.is_none());
    let generated: Vec<Value> = parse(&std::fs::read_to_string(root.join(monitoring::OUTPUT))?)?;
    anyhow::ensure!(
        generated.len() == 1
            && generated[0]["kind"] == "PrometheusRule"
            && generated[0]["metadata"]["name"] == "couponrush-alerts"
            && generated[0]["spec"]["groups"][0]["rules"][0]["expr"] == "up == 0",
        "{generated:#?}"
    );

    // A rule changed without regenerating, and a hand edit of the generated file: both stale.
    std::fs::write(
        root.join("deploy/prometheus/alerts.yaml"),
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 1\n",
    )?;
    let problem = monitoring::stale(root)?.unwrap_or_default();
    anyhow::ensure!(
        problem.contains("run it and commit the result"),
        "{problem}"
    );
    std::fs::write(
        root.join(monitoring::OUTPUT),
        monitoring::render(root)?.replace("up == 1", "up == 2"),
    )?;
    anyhow::ensure!(monitoring::stale(root)?.is_some());
    Ok(())
}
