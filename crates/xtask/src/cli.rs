//! The command line: one subcommand per task. Every option also reads an environment variable,
//! so the shell entry points (`scripts/demo.sh`, ...) keep their documented knobs.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::{bench, check, demo, generate};

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    about = "couponrush run harness: demo, benchmarks, checks"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Replays the incident's event on this machine (k6 rush) and ends with the reconcile verdict.
    Demo(demo::Args),
    /// Measures a part of the system against a ceiling measured in the same run.
    #[command(subcommand)]
    Bench(bench::Command),
    /// Offline and against-the-running-code checks of what the project ships.
    #[command(subcommand)]
    Check(check::Command),
    /// Writes the files generated from the project's own sources (each check reading one
    /// fails while it is stale).
    #[command(name = "gen", subcommand)]
    Gen(generate::Command),
}

impl Command {
    /// Runs the task; its exit code (0 only when it succeeded and its verdict is good).
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Self::Demo(args) => demo::run(args).await,
            Self::Bench(command) => command.run().await,
            Self::Check(command) => command.run().await,
            Self::Gen(command) => command.run().await,
        }
    }
}
