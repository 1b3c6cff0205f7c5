//! `cargo xtask <task>`: the project's run harness. Bash (`scripts/stack.sh`) installs and
//! starts the backing services; everything about a run (isolated names, starting the binaries,
//! waiting until ready, load, verdict, clean-up) lives here, in Rust, next to the code it drives.

use std::process::ExitCode;

use clap::Parser;

mod apps;
mod bench;
mod binaries;
mod check;
mod cli;
mod coupon;
mod demo;
mod generate;
mod lock;
mod otlp_receiver;
mod process;
mod report;
mod run_env;
mod signals;
mod stack;
mod tools;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("xtask: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli.command.run()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("xtask: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
