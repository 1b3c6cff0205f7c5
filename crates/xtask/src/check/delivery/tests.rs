//! The real files pass every step, and each step fails on a copy broken in its one way: hadolint,
//! actionlint, shellcheck and k6 run for real (installed by `scripts/stack.sh tool` if missing).

use super::{Layout, check, compose, dockerfile, linters};
use crate::binaries::workspace_root;

/// What the check reads, copied from the workspace into a temporary root.
const FILES: [&str; 7] = [
    "docker/Dockerfile",
    "docker/compose.yaml",
    ".github/workflows/ci.yml",
    ".github/workflows/release.yml",
    ".github/workflows/deploy.yml",
    ".github/actions/cluster/action.yml",
    "deploy/k6/issue-load.js",
];

/// A copy of the checked files, with every `from` in `file` (there must be one) replaced by
/// `to`; removed with the returned directory.
fn broken(file: &str, from: &str, to: &str) -> anyhow::Result<(tempfile::TempDir, Layout)> {
    let dir = tempfile::tempdir()?;
    for name in FILES.iter().chain(["deploy/k6/lib.js"].iter()) {
        let target = dir.path().join(name);
        std::fs::create_dir_all(target.parent().unwrap_or(dir.path()))?;
        std::fs::copy(workspace_root().join(name), target)?;
    }
    let path = dir.path().join(file);
    let text = std::fs::read_to_string(&path)?;
    anyhow::ensure!(text.contains(from), "{file} has no `{from}` to break");
    std::fs::write(&path, text.replace(from, to))?;
    let layout = Layout {
        root: dir.path().to_owned(),
    };
    Ok((dir, layout))
}

fn assert_mentions(problems: &[String], needle: &str) {
    assert!(
        problems.iter().any(|p| p.contains(needle)),
        "no problem mentions `{needle}`; problems: {problems:#?}"
    );
}

fn image_env(layout: &Layout) -> anyhow::Result<Vec<(String, String)>> {
    Ok(dockerfile::coupon_env(&std::fs::read_to_string(
        layout.dockerfile(),
    )?))
}

/// [`compose::problems`] of docker/compose.yaml with every `from` replaced by `to`.
fn compose_report(from: &str, to: &str) -> anyhow::Result<Vec<String>> {
    let (_dir, layout) = broken("docker/compose.yaml", from, to)?;
    compose::problems(&layout.compose(), &image_env(&layout)?)
}

#[tokio::test]
async fn the_real_files_pass_every_step() -> anyhow::Result<()> {
    for (title, problems) in check(&Layout {
        root: workspace_root(),
    })
    .await?
    {
        assert!(problems.is_empty(), "{title}: {problems:#?}");
    }
    Ok(())
}

#[test]
fn an_unknown_coupon_key_in_compose_is_refused() -> anyhow::Result<()> {
    let problems = compose_report(
        "COUPON__KAFKA__TOPIC: coupon-issue",
        "COUPON__KAFKA__TOPIC: coupon-issue\n    COUPON__KAFKA__BOOTSTRAP_SERVER: kafka:9092",
    )?;
    // Every application service inherits it from the x-app anchor: each is reported.
    for service in ["migrate", "issuer-api", "coupon-consumer"] {
        assert_mentions(&problems, &format!("service {service}:"));
    }
    assert_mentions(&problems, "bootstrap_server");
    Ok(())
}

#[test]
fn a_loopback_host_in_compose_is_refused_by_the_production_profile() -> anyhow::Result<()> {
    let problems = compose_report(
        "COUPON__REDIS__URL: redis://redis:6379",
        "COUPON__REDIS__URL: redis://localhost:6379",
    )?;
    assert_mentions(&problems, "service issuer-api:");
    assert_mentions(&problems, "redis");
    Ok(())
}

#[test]
fn a_short_admin_token_default_fails_only_the_api() -> anyhow::Result<()> {
    let problems = compose_report(
        "${COUPON_ADMIN_TOKEN:-dev-only-admin-token-change-me}",
        "${COUPON_ADMIN_TOKEN:-short}",
    )?;
    assert_mentions(&problems, "service issuer-api:");
    assert!(
        !problems
            .iter()
            .any(|p| p.contains("service coupon-consumer:")),
        "the consumer does not read the admin token: {problems:#?}"
    );
    Ok(())
}

#[test]
fn a_variable_without_default_is_reported() -> anyhow::Result<()> {
    let problems = compose_report(
        "${MYSQL_ROOT_PASSWORD:-dev-only-mysql-root-pw}",
        "${MYSQL_ROOT_PASSWORD}",
    )?;
    assert_mentions(
        &problems,
        "COUPON__MYSQL__PASSWORD: `${MYSQL_ROOT_PASSWORD}` has no default",
    );
    Ok(())
}

#[test]
fn the_image_env_is_the_first_layer() -> anyhow::Result<()> {
    // The image's production profile is what a service without COUPON__PROFILE runs with.
    let (_dir, layout) = broken(
        "docker/Dockerfile",
        "COUPON__PROFILE=production",
        "COUPON__PROFILE=development",
    )?;
    let env = image_env(&layout)?;
    assert!(env.contains(&("COUPON__PROFILE".to_owned(), "development".to_owned())));
    assert!(env.contains(&("COUPON__HTTP__BIND".to_owned(), "0.0.0.0:8080".to_owned())));
    Ok(())
}

#[tokio::test]
async fn hadolint_rejects_a_cd_in_run() -> anyhow::Result<()> {
    let (_dir, layout) = broken(
        "docker/Dockerfile",
        "RUN cargo chef prepare --recipe-path recipe.json",
        "RUN cd /src && cargo chef prepare --recipe-path recipe.json",
    )?;
    assert_mentions(&dockerfile::problems(&layout).await?, "DL3003");
    Ok(())
}

#[test]
fn floating_base_images_are_refused() {
    for floating in [
        "rust:1-bookworm",
        "debian:bookworm-slim",
        "debian:latest",
        "debian",
        "rust:1.95-slim@sha256:abc",
    ] {
        let text = format!("ARG BASE={floating}\nFROM ${{BASE}} AS build\nFROM build\n");
        let problems = dockerfile::unpinned_bases(&text);
        assert_eq!(problems.len(), 1, "{floating}: {problems:#?}");
        assert_mentions(&problems, &format!("`{floating}` is not pinned"));
    }
    let digest = "0".repeat(64);
    for pinned in [
        "rust:1.95.0-bookworm",
        "debian:12.12-slim",
        "ghcr.io/a/b:1.2",
        &format!("debian@sha256:{digest}"),
    ] {
        let text = format!("FROM {pinned} AS base\nFROM base\nFROM scratch\n");
        assert_eq!(
            dockerfile::unpinned_bases(&text),
            Vec::<String>::new(),
            "{pinned}"
        );
    }
}

#[tokio::test]
async fn actionlint_rejects_a_job_needing_an_unknown_job() -> anyhow::Result<()> {
    let (_dir, layout) = broken(
        ".github/workflows/deploy.yml",
        "needs: [resolve, staging, load]",
        "needs: [resolve, staging, loadtest]",
    )?;
    assert_mentions(&linters::actionlint(&layout.workflows()).await?, "loadtest");
    Ok(())
}

#[tokio::test]
async fn actionlint_runs_shellcheck_on_run_scripts() -> anyhow::Result<()> {
    let (_dir, layout) = broken(
        ".github/workflows/deploy.yml",
        r#"run: deploy/pipeline/job.sh migrate "$OVERLAY" 600"#,
        "run: deploy/pipeline/job.sh migrate $OVERLAY 600",
    )?;
    assert_mentions(&linters::actionlint(&layout.workflows()).await?, "SC2086");
    Ok(())
}

#[tokio::test]
async fn k6_inspect_rejects_a_bad_threshold() -> anyhow::Result<()> {
    let (_dir, layout) = broken(
        "deploy/k6/issue-load.js",
        "http_req_failed: [`rate<${MAX_FAILED}`]",
        "http_req_failed: [`rate<<${MAX_FAILED}`]",
    )?;
    assert_mentions(
        &linters::k6_inspect(&layout.k6_script()).await?,
        "threshold",
    );
    Ok(())
}

#[tokio::test]
async fn k6_inspect_rejects_a_script_that_does_not_parse() -> anyhow::Result<()> {
    let (_dir, layout) = broken(
        "deploy/k6/issue-load.js",
        "export default function (data) {",
        "export default function (data {",
    )?;
    assert_mentions(&linters::k6_inspect(&layout.k6_script()).await?, "failed");
    Ok(())
}
