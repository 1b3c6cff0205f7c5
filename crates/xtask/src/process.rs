//! Processes a task starts (the project's binaries, k6, wrk, ...): each logs to its own file,
//! is waited for until it answers, and is stopped with SIGTERM, then SIGKILL. A `Service`
//! dropped on an error path is killed (`kill_on_drop`), so a failed task leaves nothing behind.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use couponrush_config::ENV_PREFIX;
use tokio::process::{Child, Command};

/// `program args` with `env` on top of this process's environment minus its `COUPON__*`
/// variables (only what the task sets applies), no stdin, killed if dropped while running.
fn command<I, S>(program: &Path, args: I, env: &[(String, String)]) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(program);
    command.args(args);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with(ENV_PREFIX) {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().map(|(k, v)| (k, v)));
    // Nothing reads a task's stdin; a process left when the task gives up is killed.
    command.stdin(Stdio::null()).kill_on_drop(true);
    command
}

/// `log_dir/<name>.log`, created empty (and `log_dir` with it): where a process's output goes.
fn log_file(log_dir: &Path, name: &str) -> anyhow::Result<(PathBuf, std::fs::File)> {
    std::fs::create_dir_all(log_dir).with_context(|| format!("create {}", log_dir.display()))?;
    let log = log_dir.join(format!("{name}.log"));
    let file = std::fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
    Ok((log, file))
}

/// How a one-shot run ended.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    /// Wall clock from the spawn to the exit.
    pub elapsed: Duration,
}

/// Runs `program args` to its end (a one-shot job, timed): stdout captured, stderr to
/// `log_dir/<name>.log`. The environment is built as for [`Service::spawn`].
pub async fn run_to_end<I, S>(
    name: &str,
    program: &Path,
    args: I,
    env: &[(String, String)],
    log_dir: &Path,
) -> anyhow::Result<Finished>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let (_, err) = log_file(log_dir, name)?;
    let started = Instant::now();
    let output = command(program, args, env)
        .stdout(Stdio::piped())
        .stderr(err)
        .output()
        .await
        .with_context(|| format!("run {name} ({})", program.display()))?;
    Ok(Finished {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        elapsed: started.elapsed(),
    })
}

/// A started process and where its output goes.
#[derive(Debug)]
pub struct Service {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Service {
    /// Starts `program args` with `env` on top of this process's environment minus its
    /// `COUPON__*` variables (only what the task sets applies), stdout and stderr to
    /// `log_dir/<name>.log`.
    pub fn spawn<I, S>(
        name: &str,
        program: &Path,
        args: I,
        env: &[(String, String)],
        log_dir: &Path,
    ) -> anyhow::Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let (log, out) = log_file(log_dir, name)?;
        let child = command(program, args, env)
            .stdout(out.try_clone()?)
            .stderr(out)
            // Its own process group: a Ctrl-C in the terminal reaches the task only, which then
            // stops its services in order (and cleans up) instead of all of them at once.
            .process_group(0)
            .spawn()
            .with_context(|| format!("start {name} ({})", program.display()))?;
        eprintln!("[xtask] started {name} (log {})", log.display());
        Ok(Self {
            name: name.to_owned(),
            child,
            log,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id (for CPU accounting); `None` once it was reaped.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of its log (for an error message).
    pub fn tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }

    /// An error if it has exited (with its status and the end of its log).
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            anyhow::bail!(
                "{} exited ({status}); last lines of {}:\n{}",
                self.name,
                self.log.display(),
                self.tail(20)
            );
        }
        Ok(())
    }

    /// Its exit status if it has exited, without waiting (a load run polled while it runs).
    pub fn try_wait(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        Ok(self.child.try_wait()?)
    }

    /// Waits for it to exit on its own (k6, wrk: a load run that ends by itself).
    pub async fn wait(mut self) -> anyhow::Result<ExitStatus> {
        Ok(self.child.wait().await?)
    }

    /// Sends `signal` (as `kill` names it: STOP, CONT, TERM...); nothing once it was reaped.
    pub async fn signal(&self, signal: &str) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            // `kill` the command: the workspace forbids the unsafe a signal call would need.
            let status = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(pid.to_string())
                .status()
                .await?;
            anyhow::ensure!(status.success(), "kill -{signal} {pid} failed ({status})");
        }
        Ok(())
    }

    /// SIGTERM (what Kubernetes sends), then SIGKILL after `grace`; its exit status.
    pub async fn stop(mut self, grace: Duration) -> anyhow::Result<ExitStatus> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(status);
        }
        // A frozen process (SIGSTOP) would never act on the TERM.
        self.signal("CONT").await?;
        self.signal("TERM").await?;
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => Ok(status?),
            Err(_) => {
                eprintln!(
                    "[xtask] {} ignored SIGTERM for {grace:?}; killing it",
                    self.name
                );
                self.child.kill().await?;
                Ok(self.child.wait().await?)
            }
        }
    }
}

/// The last `lines` lines of the log file `path` (for an error message); empty if unreadable.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Waits until each service answers 200 on its URL, all within `within`. All are watched at
/// once, so the first one to exit fails the wait at once, with the end of its log (a consumer
/// that refuses its settings is not hidden behind a slow API).
pub async fn wait_all_ok(
    mut waiting: Vec<(&mut Service, String)>,
    within: Duration,
) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let started = Instant::now();
    while !waiting.is_empty() {
        for (service, _) in &mut waiting {
            service.check_alive()?;
        }
        let mut still = Vec::with_capacity(waiting.len());
        for (service, url) in waiting {
            let ready = client
                .get(&url)
                .send()
                .await
                .is_ok_and(|response| response.status().is_success());
            if !ready {
                still.push((service, url));
            }
        }
        waiting = still;
        if let Some((service, url)) = waiting.first() {
            anyhow::ensure!(
                started.elapsed() < within,
                "{} did not answer 200 on {url} within {within:?}; last lines of {}:\n{}",
                service.name(),
                service.log().display(),
                service.tail(20)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}
