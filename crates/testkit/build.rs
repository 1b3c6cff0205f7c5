//! Fingerprints the migrations the storage crate embeds, so each migration set gets a template
//! database of its own (`crt_template_<fingerprint>`, see `src/database_template.rs`): editing
//! or adding a migration names a new template instead of reusing a stale one.

#![allow(
    clippy::print_stdout,
    reason = "cargo reads a build script's instructions from its stdout"
)]

use std::path::{Path, PathBuf};

const MIGRATIONS: &str = "../../migrations";

fn main() -> std::io::Result<()> {
    println!("cargo::rerun-if-changed={MIGRATIONS}");
    let mut files = Vec::new();
    collect(Path::new(MIGRATIONS), &mut files)?;
    files.sort();
    // FNV-1a: a fingerprint, not a defence; stable across toolchains, unlike std's hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for file in &files {
        let name = file
            .strip_prefix(MIGRATIONS)
            .unwrap_or(file)
            .to_string_lossy();
        let content = std::fs::read(file)?;
        for part in [name.as_bytes(), &[0], &content, &[0]] {
            for byte in part {
                hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
            }
        }
    }
    println!("cargo::rustc-env=COUPONRUSH_MIGRATIONS_FINGERPRINT={hash:016x}");
    Ok(())
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, files)?;
        } else {
            files.push(path);
        }
    }
    Ok(())
}
