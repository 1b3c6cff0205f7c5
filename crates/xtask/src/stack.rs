//! The backing services (MariaDB, Redis, the broker), brought up by `scripts/stack.sh`: bash
//! owns installing and starting them; a task asks for them and reads back where they are.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::Context;
use couponrush_config::{ConfigArgs, ENV_PREFIX, Settings};

use crate::binaries::workspace_root;

/// The services a task runs against, and the `COUPON__*` variables that point at them.
#[derive(Debug)]
pub struct Stack {
    state_dir: PathBuf,
    vars: Vec<(String, String)>,
}

impl Stack {
    /// `scripts/stack.sh up` with its state (pid files, logs) in `state_dir` and `settings` as
    /// extra `STACK_*` variables. Services that already answer are reused; [`Stack::down`]
    /// stops only what this state directory started.
    pub async fn up(state_dir: &Path, settings: &[(&str, String)]) -> anyhow::Result<Self> {
        let script = workspace_root().join("scripts/stack.sh");
        // bash evaluates the script's own `export` lines (whatever quoting it uses), then
        // prints the resulting environment NUL-separated.
        let output = tokio::process::Command::new("bash")
            .args(["-c", r#"eval "$("$0" up)" && env -0"#])
            .arg(&script)
            .env("STACK_STATE_DIR", state_dir)
            .envs(settings.iter().map(|(k, v)| (*k, v)))
            .stderr(Stdio::inherit())
            .output()
            .await
            .with_context(|| format!("run {}", script.display()))?;
        anyhow::ensure!(
            output.status.success(),
            "{} up failed ({})",
            script.display(),
            output.status
        );
        let vars = output
            .stdout
            .split(|b| *b == 0)
            .filter_map(|entry| std::str::from_utf8(entry).ok())
            .filter_map(|entry| entry.split_once('='))
            .filter(|(key, _)| key.starts_with(ENV_PREFIX))
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect::<Vec<_>>();
        anyhow::ensure!(
            !vars.is_empty(),
            "stack.sh up printed no {ENV_PREFIX} settings"
        );
        Ok(Self {
            state_dir: state_dir.to_owned(),
            vars,
        })
    }

    /// The `COUPON__*` variables `stack.sh up` printed.
    pub fn vars(&self) -> &[(String, String)] {
        &self.vars
    }

    /// Sets (or replaces) one `COUPON__*` variable: a run's own names on top of what
    /// `stack.sh up` printed. [`Stack::vars`] and [`Stack::settings`] then include it.
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        let value = value.into();
        match self.vars.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => self.vars.push((key.to_owned(), value)),
        }
    }

    /// The settings those variables make, through the binaries' own loader (each variable
    /// becomes a `--set` override, so they win over this process's environment).
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let args = ConfigArgs {
            overrides: as_overrides(&self.vars),
            ..ConfigArgs::default()
        };
        args.load().context("settings from scripts/stack.sh")
    }

    /// `scripts/stack.sh down` for this state directory: stops only what `up` started here.
    pub async fn down(self) -> anyhow::Result<()> {
        let script = workspace_root().join("scripts/stack.sh");
        let status = tokio::process::Command::new(&script)
            .arg("down")
            .env("STACK_STATE_DIR", &self.state_dir)
            .stdout(Stdio::null())
            .status()
            .await
            .with_context(|| format!("run {}", script.display()))?;
        anyhow::ensure!(status.success(), "stack.sh down failed ({status})");
        Ok(())
    }
}

/// `COUPON__SECTION__KEY=value` variables as the loader's `--set section.key=value` overrides:
/// the environment form and the flag form name the same setting.
pub fn as_overrides(vars: &[(String, String)]) -> Vec<String> {
    vars.iter()
        .filter_map(|(key, value)| {
            let path = key
                .strip_prefix(ENV_PREFIX)?
                .to_lowercase()
                .replace("__", ".");
            Some(format!("{path}={value}"))
        })
        .collect()
}
