//! A MariaDB server of a test's own, with TLS from a [`TestCa`](crate::TestCa): its own data
//! directory (made by `mariadb-install-db`), port and socket, killed and removed on drop. The
//! shared server on 3306 is never touched.

use std::path::Path;
use std::process::Command;

use anyhow::Context;

use crate::{Issued, PrivateServer, closed_port};

/// A private `mariadbd` with TLS on, and a user that may log in from anywhere.
#[derive(Debug)]
pub struct PrivateMariadb {
    // Declared first: dropped (killed) before its data directory is removed.
    server: PrivateServer,
    _dir: tempfile::TempDir,
}

impl PrivateMariadb {
    /// Starts a server presenting `identity` (its CA's `ca.pem` beside it) and creates the user
    /// `user` with `password` and every privilege.
    pub async fn start_tls(identity: &Issued, user: &str, password: &str) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data");
        let text = |path: &Path| path.to_string_lossy().into_owned();
        let install = Command::new("mariadb-install-db")
            .args(["--no-defaults", "--user=root", "--skip-test-db"])
            .arg("--auth-root-authentication-method=socket")
            .arg(format!("--datadir={}", text(&data)))
            .output()
            .context("run mariadb-install-db (apt-get install mariadb-server)")?;
        anyhow::ensure!(
            install.status.success(),
            "mariadb-install-db failed: {}",
            String::from_utf8_lossy(&install.stderr)
        );
        let ca = identity
            .cert
            .parent()
            .map(|d| d.join("ca.pem"))
            .context("certificate without a directory")?;
        let socket = text(&dir.path().join("mysqld.sock"));
        let port = closed_port()?;
        let args = [
            "--no-defaults".to_owned(),
            "--user=root".to_owned(),
            format!("--datadir={}", text(&data)),
            format!("--port={port}"),
            "--bind-address=127.0.0.1".to_owned(),
            format!("--socket={socket}"),
            format!("--pid-file={}", text(&dir.path().join("mysqld.pid"))),
            "--skip-log-bin".to_owned(),
            "--innodb-buffer-pool-size=32M".to_owned(),
            format!("--ssl-ca={}", text(&ca)),
            format!("--ssl-cert={}", text(&identity.cert)),
            format!("--ssl-key={}", text(&identity.key)),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let server = PrivateServer::start("/usr/sbin/mariadbd".into(), &args, port).await?;
        // As the OS user root, through the socket (root's only way in).
        let sql = format!(
            "CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'; \
             GRANT ALL ON *.* TO '{user}'@'%';"
        );
        let created = Command::new("mariadb")
            .args([
                "--no-defaults",
                "-uroot",
                &format!("--socket={socket}"),
                "-e",
                &sql,
            ])
            .output()
            .context("run the mariadb client")?;
        anyhow::ensure!(
            created.status.success(),
            "creating the user failed: {}",
            String::from_utf8_lossy(&created.stderr)
        );
        Ok(Self { server, _dir: dir })
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }
}
