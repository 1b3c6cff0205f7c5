//! `scripts/otlp-receiver.py`, a real OTLP/HTTP receiver (the protobuf decoded with the
//! official `opentelemetry-proto` messages), run for a task and killed when dropped: the
//! traces check reads every span it received, a benchmark only counts them.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::binaries::workspace_root;
use crate::tools;

/// One span as the receiver writes it.
#[derive(Debug, Clone, Deserialize)]
pub struct ReceivedSpan {
    pub service: Option<String>,
    pub service_version: Option<String>,
    pub service_instance: Option<String>,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub name: String,
    pub links: Vec<String>,
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug)]
pub struct OtlpReceiver {
    _child: tokio::process::Child,
    port: u16,
    out: PathBuf,
}

impl OtlpReceiver {
    /// Starts it on a free loopback port, writing what it receives into `log_dir` (every span,
    /// or with `count_only` one count per export).
    pub async fn start(log_dir: &Path, count_only: bool) -> anyhow::Result<Self> {
        let python = tools::require("otlp-python").await?;
        let script = workspace_root().join("scripts/otlp-receiver.py");
        let out = log_dir.join("spans.jsonl");
        let stderr = std::fs::File::create(log_dir.join("otlp-receiver.log"))?;
        let mut command = tokio::process::Command::new(python);
        command
            .arg(&script)
            .args(["--port", "0", "--out"])
            .arg(&out)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true);
        if count_only {
            command.arg("--count-only");
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("start {}", script.display()))?;
        let stdout = child.stdout.take().context("the receiver's stdout")?;
        let mut first = String::new();
        tokio::time::timeout(
            Duration::from_secs(30),
            BufReader::new(stdout).read_line(&mut first),
        )
        .await
        .context("the OTLP receiver did not start within 30 s")??;
        let port = first
            .trim()
            .strip_prefix("listening on ")
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("the OTLP receiver said {first:?}"))?;
        Ok(Self {
            _child: child,
            port,
            out,
        })
    }

    /// The base address to export to (`telemetry.otlp_endpoint`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn file(&self) -> &Path {
        &self.out
    }

    /// Every span received so far (not in `count_only` mode).
    pub fn spans(&self) -> anyhow::Result<Vec<ReceivedSpan>> {
        self.lines()?
            .iter()
            .map(|line| serde_json::from_str(line).with_context(|| format!("span line {line:?}")))
            .collect()
    }

    /// How many spans arrived so far (`count_only` mode).
    pub fn count(&self) -> anyhow::Result<u64> {
        #[derive(Deserialize)]
        struct Export {
            spans: u64,
        }
        self.lines()?.iter().try_fold(0, |sum, line| {
            let export: Export =
                serde_json::from_str(line).with_context(|| format!("count line {line:?}"))?;
            Ok(sum + export.spans)
        })
    }

    fn lines(&self) -> anyhow::Result<Vec<String>> {
        match std::fs::read_to_string(&self.out) {
            Ok(text) => Ok(text.lines().map(str::to_owned).collect()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(error) => Err(error).context(format!("read {}", self.out.display())),
        }
    }
}
