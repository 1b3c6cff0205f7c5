//! Each rule fails on a small manifest set broken in its one way and passes on the unbroken
//! set. (tests_real_manifests.rs: the real deploy/k8s/base through the rules and the binaries'
//! config loader; tests_tools.rs: the checks that run kubectl and node.)

use std::collections::BTreeMap;

use super::manifests::Manifests;

const KUSTOMIZATION: &str = "\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: app
resources: [config.yaml, api.yaml]
images:
  - name: couponrush
    newTag: latest
";

const SECRET: &str = "\
apiVersion: v1
kind: Secret
metadata: {name: s}
stringData:
  COUPON__MYSQL__PASSWORD: pw
  COUPON__REDIS__URL: redis://redis:6379
  COUPON__ADMIN__TOKEN: 0123456789abcdef0123
  COUPON__MESSAGE_SIGNING__KEY: 0123456789abcdef0123456789abcdef
  COUPON__MESSAGE_SIGNING__PREVIOUS_KEY: ''
";

const CONFIG: &str = "\
apiVersion: v1
kind: ConfigMap
metadata: {name: c}
data:
  COUPON__PROFILE: production
  COUPON__KAFKA__BOOTSTRAP_SERVERS: kafka:9092
  COUPON__MYSQL__HOST: mysql
  COUPON__KAFKA__TOPIC: coupon-issue
  COUPON__KAFKA__CONSUMER_GROUP: coupon-issue-group
";

const API: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers:
        - name: api
          image: couponrush:latest
          envFrom: [{configMapRef: {name: c}}, {secretRef: {name: s}}]
---
apiVersion: v1
kind: Service
metadata: {name: api}
spec: {selector: {app: api}, ports: [{port: 80}]}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: api}
spec: {selector: {matchLabels: {app: api}}}
";

/// The problems of the good set after each `(file, from, to)` of `edit` (a new file: from "").
fn problems_after(edit: &[(&str, &str, &str)]) -> anyhow::Result<Vec<String>> {
    let mut files = BTreeMap::from([
        ("kustomization.yaml", KUSTOMIZATION.to_owned()),
        ("secret.example.yaml", SECRET.to_owned()),
        ("config.yaml", CONFIG.to_owned()),
        ("api.yaml", API.to_owned()),
    ]);
    for (file, from, to) in edit {
        let text = files.entry(file).or_default();
        anyhow::ensure!(text.contains(from), "{file} has no {from:?}");
        *text = text.replacen(from, to, 1);
    }
    let dir = tempfile::tempdir()?;
    for (file, text) in files {
        std::fs::write(dir.path().join(file), text)?;
    }
    Ok(super::problems(&Manifests::load(dir.path())?))
}

/// The set broken by `edit` has a problem that says each of `expected` (the unbroken set has
/// none, so that problem is the edit's).
fn fails(edit: &[(&str, &str, &str)], expected: &[&str]) -> anyhow::Result<()> {
    let problems = problems_after(edit)?;
    anyhow::ensure!(
        problems
            .iter()
            .any(|p| expected.iter().all(|e| p.contains(e))),
        "no problem says {expected:?}: {problems:#?}"
    );
    Ok(())
}

#[test]
fn the_small_set_has_no_problem() -> anyhow::Result<()> {
    let problems = problems_after(&[])?;
    anyhow::ensure!(problems.is_empty(), "{problems:#?}");
    Ok(())
}

#[test]
fn kustomization_must_list_every_manifest_and_nothing_else() -> anyhow::Result<()> {
    fails(
        &[("kustomization.yaml", "config.yaml, api.yaml", "api.yaml")],
        &["resources does not list config.yaml"],
    )?;
    fails(
        &[(
            "kustomization.yaml",
            "api.yaml]",
            "api.yaml, secret.example.yaml]",
        )],
        &["lists secret.example.yaml; it is an example only"],
    )?;
    fails(
        &[("kustomization.yaml", "api.yaml]", "api.yaml, gone.yaml]")],
        &["\"gone.yaml\", not a manifest"],
    )?;
    fails(
        &[("kustomization.yaml", "api.yaml]", "api.yaml, api.yaml]")],
        &["lists a file twice"],
    )
}

#[test]
fn a_repeated_key_or_a_yml_file_is_refused() -> anyhow::Result<()> {
    fails(
        &[(
            "config.yaml",
            "  COUPON__MYSQL__HOST: mysql\n",
            "  COUPON__MYSQL__HOST: mysql\n  COUPON__MYSQL__HOST: other\n",
        )],
        &[
            "config.yaml: not valid YAML",
            "duplicate entry with key \"COUPON__MYSQL__HOST\"",
        ],
    )?;
    fails(
        &[("extra.yml", "", "kind: ConfigMap\n")],
        &["extra.yml: use the .yaml extension"],
    )
}

#[test]
fn a_selector_must_match_its_pod_labels() -> anyhow::Result<()> {
    fails(
        &[(
            "api.yaml",
            "selector: {matchLabels: {app: api}}\n  template",
            "selector: {matchLabels: {app: apl}}\n  template",
        )],
        &["Deployment api: selector {\"app\":\"apl\"} does not match its pod labels"],
    )
}

#[test]
fn services_and_budgets_must_select_a_pod_template() -> anyhow::Result<()> {
    fails(
        &[(
            "api.yaml",
            "spec: {selector: {app: api}",
            "spec: {selector: {app: apl}",
        )],
        &["Service api: selector {\"app\":\"apl\"} matches no pod template"],
    )?;
    fails(
        &[(
            "api.yaml",
            "spec: {selector: {matchLabels: {app: api}}}",
            "spec: {selector: {matchLabels: {app: apl}}}",
        )],
        &[
            "PodDisruptionBudget api: selector",
            "matches no pod template",
        ],
    )
}

#[test]
fn env_from_must_name_a_defined_source() -> anyhow::Result<()> {
    fails(
        &[(
            "api.yaml",
            "configMapRef: {name: c}",
            "configMapRef: {name: d}",
        )],
        &["container api: envFrom names ConfigMap \"d\", not defined here"],
    )?;
    fails(
        &[("api.yaml", "secretRef: {name: s}", "secretRef: {name: t}")],
        &["container api: envFrom names Secret \"t\""],
    )
}

#[test]
fn settings_are_coupon_keys_and_secrets_stay_in_the_secret() -> anyhow::Result<()> {
    fails(
        &[("config.yaml", "data:\n", "data:\n  LOG_LEVEL: debug\n")],
        &["ConfigMap c: LOG_LEVEL: not a COUPON__* setting"],
    )?;
    fails(
        &[(
            "config.yaml",
            "data:\n",
            "data:\n  COUPON__ADMIN__TOKEN: 0123456789abcdef0123\n",
        )],
        &["ConfigMap c: COUPON__ADMIN__TOKEN: a secret; it belongs in the Secret"],
    )?;
    fails(
        &[(
            "secret.example.yaml",
            "  COUPON__REDIS__URL: redis://redis:6379\n",
            "",
        )],
        &["Secret s: does not document COUPON__REDIS__URL"],
    )
}

#[test]
fn a_secret_data_value_is_base64() -> anyhow::Result<()> {
    let base64 = (
        "secret.example.yaml",
        "stringData:\n  COUPON__MYSQL__PASSWORD: pw\n",
        "data:\n  COUPON__MYSQL__PASSWORD: cHc=\nstringData:\n",
    );
    anyhow::ensure!(problems_after(&[base64])?.is_empty(), "base64 data refused");
    fails(
        &[(
            "secret.example.yaml",
            "stringData:\n  COUPON__MYSQL__PASSWORD: pw\n",
            "data:\n  COUPON__MYSQL__PASSWORD: p*w\nstringData:\n",
        )],
        &["data.COUPON__MYSQL__PASSWORD: not base64"],
    )
}

#[test]
fn every_image_needs_an_images_entry() -> anyhow::Result<()> {
    fails(
        &[(
            "api.yaml",
            "image: couponrush:latest",
            "image: registry.example:5000/other:1@sha256:00",
        )],
        &[
            "container api: image \"registry.example:5000/other:1@sha256:00\" has no `images:` entry",
        ],
    )
}

#[test]
fn the_config_loader_refuses_what_production_refuses() -> anyhow::Result<()> {
    fails(
        &[(
            "config.yaml",
            "COUPON__MYSQL__HOST: mysql",
            "COUPON__MYSQL__HOST: 127.0.0.1",
        )],
        &[
            "container api:",
            "mysql.host (COUPON__MYSQL__HOST): it is a loopback address",
        ],
    )?;
    fails(
        &[(
            "config.yaml",
            "COUPON__PROFILE: production",
            "COUPON__PROFILE: development",
        )],
        &["COUPON__PROFILE must be production"],
    )?;
    fails(
        &[(
            "config.yaml",
            "COUPON__MYSQL__HOST: mysql",
            "COUPON__MYSQL__HOTS: mysql",
        )],
        &["container api:", "hots"],
    )
}

/// A KEDA ScaledObject scaling the small set's Deployment on the consumer group's lag.
const SCALED: &str = "\
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: api}
spec:
  scaleTargetRef: {name: api}
  minReplicaCount: 1
  maxReplicaCount: 3
  triggers:
    - type: kafka
      metadata:
        bootstrapServers: kafka:9092
        consumerGroup: coupon-issue-group
        topic: coupon-issue
        lagThreshold: '50'
        offsetResetPolicy: earliest
";

/// The small set plus [`SCALED`], listed in the kustomization, then `edit`.
fn fails_scaled(edit: &[(&str, &str, &str)], expected: &[&str]) -> anyhow::Result<()> {
    let mut all = vec![
        ("scale.yaml", "", SCALED),
        ("kustomization.yaml", "api.yaml]", "api.yaml, scale.yaml]"),
    ];
    all.extend_from_slice(edit);
    fails(&all, expected)
}

#[test]
fn a_kafka_trigger_must_use_documented_keys_and_match_the_consumer() -> anyhow::Result<()> {
    let problems = problems_after(&[
        ("scale.yaml", "", SCALED),
        ("kustomization.yaml", "api.yaml]", "api.yaml, scale.yaml]"),
    ])?;
    anyhow::ensure!(problems.is_empty(), "{problems:#?}");
    fails_scaled(
        &[("scale.yaml", "lagThreshold:", "lagThreshhold:")],
        &[
            "ScaledObject api: triggers[0] (kafka): metadata key \"lagThreshhold\" is not a \
             parameter of KEDA's kafka scaler",
        ],
    )?;
    fails_scaled(
        &[(
            "scale.yaml",
            "offsetResetPolicy: earliest",
            "offsetResetPolicy: latest",
        )],
        &["offsetResetPolicy is latest; the consumer resets to earliest"],
    )?;
    fails_scaled(
        &[("scale.yaml", "        offsetResetPolicy: earliest\n", "")],
        &["offsetResetPolicy is latest (default)"],
    )?;
    fails_scaled(
        &[(
            "scale.yaml",
            "consumerGroup: coupon-issue-group",
            "consumerGroup: other",
        )],
        &["consumerGroup is \"other\", but Deployment api consumes \"coupon-issue-group\""],
    )?;
    fails_scaled(
        &[("scale.yaml", "maxReplicaCount: 3", "maxReplicaCount: 4")],
        &["ScaledObject api: maxReplicaCount 4 exceeds the 3 partitions"],
    )?;
    fails_scaled(
        &[("scale.yaml", "  maxReplicaCount: 3\n", "")],
        &["maxReplicaCount (unset) exceeds"],
    )
}

#[test]
fn a_scale_target_must_exist() -> anyhow::Result<()> {
    fails_scaled(
        &[(
            "scale.yaml",
            "scaleTargetRef: {name: api}",
            "scaleTargetRef: {name: apl}",
        )],
        &["ScaledObject api: targets Deployment \"apl\", not defined here"],
    )?;
    fails(
        &[
            (
                "hpa.yaml",
                "",
                "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: api}\n\
                 spec: {scaleTargetRef: {apiVersion: argoproj.io/v1alpha1, kind: Rollout, name: api}}\n",
            ),
            ("kustomization.yaml", "api.yaml]", "api.yaml, hpa.yaml]"),
        ],
        &["HorizontalPodAutoscaler api: targets Rollout \"api\", not defined here"],
    )
}

#[test]
fn an_overlay_names_its_patches() -> anyhow::Result<()> {
    // A patch named by `patches` counts as listed; one named nowhere does not.
    let patch =
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\nspec: {replicas: 2}\n";
    let listed = problems_after(&[
        ("replicas.yaml", "", patch),
        (
            "kustomization.yaml",
            "images:",
            "patches:\n  - path: replicas.yaml\nimages:",
        ),
    ])?;
    anyhow::ensure!(
        !listed
            .iter()
            .any(|p| p.contains("does not list replicas.yaml")),
        "{listed:#?}"
    );
    fails(
        &[("replicas.yaml", "", patch)],
        &["resources does not list replicas.yaml"],
    )
}
