//! A certificate authority of a test's own, made with the `openssl` command line in a
//! temporary directory: server certificates for private TLS servers, client certificates, and a
//! second, unrelated CA for "wrong CA" tests. Keys are RSA in PKCS#1 PEM, the one form every
//! client here reads (mysql_async takes no other for a client key).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

/// A CA (`ca.pem`) and the certificates it issued, removed with it.
#[derive(Debug)]
pub struct TestCa {
    dir: tempfile::TempDir,
}

/// A certificate and its private key, as files.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCa {
    /// A new self-signed CA named `name`.
    pub fn new(name: &str) -> anyhow::Result<Self> {
        let ca = Self {
            dir: tempfile::tempdir()?,
        };
        let (key, cert) = (ca.path("ca.key"), ca.path("ca.pem"));
        openssl(&["genrsa", "-traditional", "-out", &key, "2048"])?;
        openssl(&[
            "req",
            "-x509",
            "-new",
            "-key",
            &key,
            "-out",
            &cert,
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
        ])?;
        Ok(ca)
    }

    /// The CA certificate (PEM): what a client is told to trust.
    pub fn ca_pem(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A certificate for `hosts` (DNS names or IP addresses), usable by a server and a client.
    pub fn issue(&self, name: &str, hosts: &[&str]) -> anyhow::Result<Issued> {
        let key = self.path(&format!("{name}.key"));
        let csr = self.path(&format!("{name}.csr"));
        let cert = self.path(&format!("{name}.pem"));
        let ext = self.dir.path().join(format!("{name}.ext"));
        let names: Vec<String> = hosts
            .iter()
            .map(|host| match host.parse::<std::net::IpAddr>() {
                Ok(_) => format!("IP:{host}"),
                Err(_) => format!("DNS:{host}"),
            })
            .collect();
        std::fs::write(
            &ext,
            format!(
                "subjectAltName={}\nbasicConstraints=CA:FALSE\n\
                 extendedKeyUsage=serverAuth,clientAuth\n",
                names.join(",")
            ),
        )?;
        openssl(&["genrsa", "-traditional", "-out", &key, "2048"])?;
        openssl(&[
            "req",
            "-new",
            "-key",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={name}"),
        ])?;
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &self.path("ca.pem"),
            "-CAkey",
            &self.path("ca.key"),
            "-CAcreateserial",
            "-out",
            &cert,
            "-days",
            "2",
            "-extfile",
            &path_text(&ext)?,
        ])?;
        Ok(Issued {
            cert: cert.into(),
            key: key.into(),
        })
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }
}

fn path_text(path: &Path) -> anyhow::Result<String> {
    path.to_str()
        .map(str::to_owned)
        .context("temporary path is not UTF-8")
}

fn openssl(args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("openssl")
        .args(args)
        .output()
        .context("run openssl (apt-get install openssl)")?;
    anyhow::ensure!(
        output.status.success(),
        "openssl {} failed: {}",
        args.first().copied().unwrap_or_default(),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}
