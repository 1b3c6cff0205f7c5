//! Binaries run as a person would run them: with a given environment, bounded in time, and
//! start-ups that must be refused.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::closed_port;

/// Runs a binary with extra environment (and `COUPON__*` cleared first, so only what the test
/// sets applies), bounded by `timeout`. Returns its output.
pub fn run_binary(
    binary: &Path,
    args: &[&str],
    env: &[(&str, String)],
    timeout: Duration,
) -> anyhow::Result<Output> {
    let mut command = Command::new(binary);
    command.args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with(couponrush_config::ENV_PREFIX) {
            command.env_remove(key);
        }
    }
    command
        .env("COUPON__LOG__FORMAT", "text")
        .env("NO_COLOR", "1");
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("spawn {}", binary.display()))?;
    let start = Instant::now();
    loop {
        if child.try_wait()?.is_some() {
            return Ok(child.wait_with_output()?);
        }
        if start.elapsed() > timeout {
            child.kill().ok();
            let output = child.wait_with_output()?;
            anyhow::bail!(
                "{} still running after {timeout:?}; stderr:\n{}",
                binary.display(),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A start-up that must be refused: what to change, and what the error must say.
#[derive(Debug)]
pub struct Refusal {
    pub name: &'static str,
    pub overrides: Vec<(&'static str, String)>,
    pub must_mention: Vec<String>,
}

impl Refusal {
    /// A dependency pointed at a loopback port where nothing listens: the incident's consumer.
    pub fn unreachable(dependency: &'static str) -> anyhow::Result<Self> {
        let port = closed_port()?;
        let address = format!("127.0.0.1:{port}");
        let overrides = match dependency {
            "Kafka" => vec![("COUPON__KAFKA__BOOTSTRAP_SERVERS", address.clone())],
            "Redis" => vec![("COUPON__REDIS__URL", format!("redis://{address}"))],
            "MySQL" => vec![
                ("COUPON__MYSQL__HOST", "127.0.0.1".to_owned()),
                ("COUPON__MYSQL__PORT", port.to_string()),
            ],
            other => anyhow::bail!("unknown dependency {other}"),
        };
        Ok(Self {
            name: dependency,
            overrides,
            must_mention: vec![format!("start-up check failed for {dependency}"), address],
        })
    }

    /// The production profile with the development defaults' loopback hosts.
    pub fn production_with_loopback() -> Self {
        let loopback = |key: &'static str, value: &str| (key, value.to_owned());
        Self {
            name: "production with loopback hosts",
            overrides: vec![
                loopback("COUPON__PROFILE", "production"),
                loopback("COUPON__ADMIN__TOKEN", "a-long-enough-admin-token"),
                loopback("COUPON__KAFKA__BOOTSTRAP_SERVERS", "localhost:9092"),
                loopback("COUPON__REDIS__URL", "redis://127.0.0.1:6379"),
                loopback("COUPON__MYSQL__HOST", "::1"),
            ],
            must_mention: [
                "kafka.bootstrap_servers (COUPON__KAFKA__BOOTSTRAP_SERVERS)",
                "redis.url (COUPON__REDIS__URL)",
                "mysql.host (COUPON__MYSQL__HOST)",
                "loopback address, refused in the production profile",
            ]
            .map(String::from)
            .to_vec(),
        }
    }

    /// Runs `binary` with `base` env plus this case's overrides; asserts it exits non-zero
    /// within a bound, and that stderr says what it must.
    pub fn assert_refused(
        &self,
        binary: &Path,
        args: &[&str],
        base: &[(&'static str, String)],
    ) -> anyhow::Result<()> {
        let mut env: Vec<(&str, String)> = base
            .iter()
            .filter(|(k, _)| !self.overrides.iter().any(|(o, _)| o == k))
            .cloned()
            .collect();
        env.extend(self.overrides.iter().cloned());
        let output = run_binary(binary, args, &env, Duration::from_secs(30))?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        anyhow::ensure!(
            !output.status.success(),
            "{}: {} started although it must refuse; stderr:\n{stderr}",
            self.name,
            binary.display()
        );
        for needle in &self.must_mention {
            anyhow::ensure!(
                stderr.contains(needle.as_str()),
                "{}: stderr does not mention {needle:?}:\n{stderr}",
                self.name
            );
        }
        Ok(())
    }
}

/// Asserts that `binary` refuses to start when Kafka, Redis or MySQL in turn is unreachable, and
/// promptly: a refused connection is an answer, so each refusal must come far within the probe
/// timeout (5 s here) that is kept for silence.
pub fn assert_each_dependency_refused_promptly(
    binary: &Path,
    env: &crate::TestEnv,
) -> anyhow::Result<()> {
    let mut base = env.env_vars();
    base.retain(|(key, _)| *key != "COUPON__STARTUP__PROBE_TIMEOUT_MS");
    base.push(("COUPON__STARTUP__PROBE_TIMEOUT_MS", "5000".to_owned()));
    for dependency in ["Kafka", "Redis", "MySQL"] {
        let started = Instant::now();
        Refusal::unreachable(dependency)?.assert_refused(binary, &[], &base)?;
        let took = started.elapsed();
        anyhow::ensure!(
            took < Duration::from_secs(2),
            "{dependency} refused after {took:?}"
        );
    }
    Ok(())
}
