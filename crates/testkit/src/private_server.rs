//! Servers of a test's own, on a free loopback port, that the test can kill and start again:
//! real outages of a broker or a Redis, not mocks.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;

use crate::{closed_port, eventually};

/// A private tansu broker or redis-server.
#[derive(Debug)]
pub struct PrivateServer {
    program: PathBuf,
    args: Vec<String>,
    port: u16,
    child: Option<Child>,
}

impl PrivateServer {
    /// A Kafka-compatible broker (tansu, memory storage: topics vanish when it is killed).
    pub async fn tansu() -> anyhow::Result<Self> {
        let port = closed_port()?;
        Self::tansu_on(&locate_tansu()?, port, port).await
    }

    /// A tansu listening on `port` that tells clients to connect to `advertised`.
    pub(crate) async fn tansu_on(
        program: &std::path::Path,
        port: u16,
        advertised: u16,
    ) -> anyhow::Result<Self> {
        let listen = format!("tcp://127.0.0.1:{port}");
        let advertise = format!("tcp://127.0.0.1:{advertised}");
        let args = [
            "broker",
            "--listener-url",
            &listen,
            "--advertised-listener-url",
            &advertise,
            "--storage-engine",
            "memory://tansu/",
            "--silent",
        ];
        Self::start(program.to_path_buf(), &args, port).await
    }

    /// A redis-server that keeps nothing on disk.
    pub async fn redis() -> anyhow::Result<Self> {
        let port = closed_port()?;
        Self::redis_with(&["--port", &port.to_string()], port, &[]).await
    }

    /// A redis-server that replicates `master` (`--replicaof`), keeping nothing on disk; it is
    /// returned once its link to the master is up and the first sync is done.
    pub async fn redis_replica_of(master: &Self) -> anyhow::Result<Self> {
        let port = closed_port()?;
        let master_port = master.port.to_string();
        let replica = Self::redis_with(
            &["--port", &port.to_string()],
            port,
            // Loading the master's snapshot straight from the socket keeps the replica off
            // the disk (its working directory would get a dump.rdb).
            &[
                "--replicaof",
                "127.0.0.1",
                &master_port,
                "--repl-diskless-load",
                "on-empty-db",
            ],
        )
        .await?;
        eventually(
            Duration::from_secs(15),
            "the replica to sync with its master",
            async || {
                let info: String = replica
                    .query(redis::cmd("INFO").arg("replication"))
                    .await
                    .ok()?;
                info.lines()
                    .any(|line| line.trim() == "master_link_status:up")
                    .then_some(())
            },
        )
        .await?;
        Ok(replica)
    }

    /// A redis-server whose `default` user is off: only the ACL user `user`, authenticated by
    /// `password`, with the rules `acl` (e.g. `["~app:*", "+@all", "-@dangerous"]`), gets in.
    pub async fn redis_with_acl_user(
        user: &str,
        password: &str,
        acl: &[&str],
    ) -> anyhow::Result<Self> {
        let args = acl_user(user, password, acl);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let port = closed_port()?;
        Self::redis_with(&["--port", &port.to_string()], port, &args).await
    }

    /// A redis-server that speaks only TLS (no plain port), with the certificate `identity`
    /// issued by `ca`, that asks clients for no certificate, and admits only the ACL user
    /// `user` as [`Self::redis_with_acl_user`] does.
    pub async fn redis_tls_with_acl_user(
        identity: &crate::Issued,
        user: &str,
        password: &str,
        acl: &[&str],
    ) -> anyhow::Result<Self> {
        let port = closed_port()?;
        let text = |path: &std::path::Path| path.to_string_lossy().into_owned();
        let ca = identity
            .cert
            .parent()
            .map(|dir| text(&dir.join("ca.pem")))
            .context("certificate without a directory")?;
        let (cert, key, port_arg) = (text(&identity.cert), text(&identity.key), port.to_string());
        let listen = [
            "--port",
            "0",
            "--tls-port",
            &port_arg,
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-auth-clients",
            "no",
        ];
        let args = acl_user(user, password, acl);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Self::redis_with(&listen, port, &args).await
    }

    /// A Redis Cluster node on `port` (its cluster bus on `port + 10000`) that keeps nothing
    /// on disk but its cluster state, `nodes-<port>.conf` in `dir`: killed and resumed, it
    /// rejoins its cluster as the node it was. Not a cluster yet: `PrivateCluster` joins them.
    pub(crate) async fn redis_cluster_node(
        port: u16,
        dir: &std::path::Path,
    ) -> anyhow::Result<Self> {
        let config = dir.join(format!("nodes-{port}.conf"));
        let (port_arg, config, dir) = (
            port.to_string(),
            config.to_string_lossy().into_owned(),
            dir.to_string_lossy().into_owned(),
        );
        let cluster = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            &config,
            // A dead master is noticed (and its replica promoted) within about this.
            "--cluster-node-timeout",
            "2000",
            "--dir",
            &dir,
        ];
        Self::redis_with(&["--port", &port_arg], port, &cluster).await
    }

    /// A redis-server on `port` that keeps nothing on disk, listening as `listen` says, with
    /// `extra` arguments.
    async fn redis_with(listen: &[&str], port: u16, extra: &[&str]) -> anyhow::Result<Self> {
        let mut args = listen.to_vec();
        args.extend(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
        args.extend_from_slice(extra);
        Self::start("redis-server".into(), &args, port).await
    }

    pub(crate) async fn start(program: PathBuf, args: &[&str], port: u16) -> anyhow::Result<Self> {
        let mut server = Self {
            program,
            args: args.iter().map(ToString::to_string).collect(),
            port,
            child: None,
        };
        server.resume().await?;
        Ok(server)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The running server's process id (to watch its CPU), `None` while it is killed.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// One command to this redis-server by itself (no cluster routing), within 5 s.
    pub async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> anyhow::Result<T> {
        query(&self.address(), cmd).await
    }

    /// `127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL): in-flight requests get no answer.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing is answered, as with a
    /// hung process or a stalled VM. [`Self::thaw`] resumes it with its state.
    pub fn freeze(&self) -> anyhow::Result<()> {
        self.signal("-STOP")
    }

    /// Resumes a frozen server (SIGCONT).
    pub fn thaw(&self) -> anyhow::Result<()> {
        self.signal("-CONT")
    }

    fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let child = self.child.as_ref().context("the server is not running")?;
        // `kill(1)` rather than libc: the workspace forbids unsafe code.
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .context("run kill")?;
        anyhow::ensure!(status.success(), "kill {signal} failed: {status}");
        Ok(())
    }

    /// Starts the server again on the same port and waits until it accepts connections.
    pub async fn resume(&mut self) -> anyhow::Result<()> {
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("start {}", self.program.display()))?;
        self.child = Some(child);
        let address = self.address();
        eventually(
            Duration::from_secs(15),
            "the private server to listen",
            async || {
                tokio::net::TcpStream::connect(&address)
                    .await
                    .ok()
                    .map(drop)
            },
        )
        .await?;
        // Something listening is not proof that it is ours: the port may have been taken
        // between choosing it and binding it, and then our server has exited.
        if let Some(status) = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
        {
            anyhow::bail!("{} exited at start ({status})", self.program.display());
        }
        Ok(())
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One command to the redis-server at `node` by itself (no cluster routing), within 5 s.
pub(crate) async fn query<T: redis::FromRedisValue>(
    node: &str,
    cmd: &redis::Cmd,
) -> anyhow::Result<T> {
    let client = redis::Client::open(format!("redis://{node}"))?;
    let work = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        cmd.query_async::<T>(&mut conn).await
    };
    tokio::time::timeout(Duration::from_secs(5), work)
        .await
        .with_context(|| format!("{node} did not answer"))?
        .with_context(|| node.to_owned())
}

/// redis-server arguments: the `default` user off, `user` with `password` and the rules `acl`.
fn acl_user(user: &str, password: &str, acl: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["--user", "default", "off", "--user", user, "on"]
        .map(String::from)
        .to_vec();
    args.push(format!(">{password}"));
    args.extend(acl.iter().map(ToString::to_string));
    args
}

/// The tansu binary, found (and installed when missing) by `scripts/stack.sh tool tansu`: the
/// one place that knows where it lives (`STACK_TANSU_BIN`, PATH, the tools virtualenv, ...).
pub(crate) fn locate_tansu() -> anyhow::Result<PathBuf> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/stack.sh");
    let output = Command::new(&script)
        .args(["tool", "tansu"])
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("run {} tool tansu", script.display()))?;
    anyhow::ensure!(
        output.status.success(),
        "tansu not found: `scripts/stack.sh tool tansu` failed ({})",
        output.status
    );
    Ok(String::from_utf8(output.stdout)?.trim().into())
}
