//! How every MySQL connection is opened, pool or not (the pool, `create_database_if_missing`,
//! test support, tools): the configured server, with TLS as `mysql.ssl_mode` says.

use std::path::PathBuf;
use std::time::Duration;

use couponrush_config::{MysqlSettings, MysqlSslMode, path_setting};
use diesel::ConnectionError;
use diesel_async::AsyncMysqlConnection;
use mysql_async::{ClientIdentity, Opts, OptsBuilder, SslOpts};

/// mysql_async's options for `settings`: server, credentials, keepalive, socket use and TLS.
pub(crate) fn options(
    settings: &MysqlSettings,
    keepalive: Duration,
) -> Result<Opts, ConnectionError> {
    let url = settings.url();
    let opts = Opts::from_url(url.expose())
        // mysql_async's message quotes the URL, password included: not repeated.
        .map_err(|_| ConnectionError::InvalidConnectionUrl("mysql settings".to_owned()))?;
    let tls = ssl_opts(settings);
    let builder = OptsBuilder::from_opts(opts)
        // As diesel-async's own `establish`: it keeps its own statement cache, and counts
        // matched rather than changed rows, as diesel does everywhere.
        .stmt_cache_size(0)
        .client_found_rows(true)
        .tcp_keepalive(u32::try_from(keepalive.as_millis()).ok())
        // mysql_async never encrypts a Unix socket: with TLS the connection must stay on TCP,
        // or a local server would quietly be reached in plain text.
        .prefer_socket(settings.prefer_socket && tls.is_none())
        .ssl_opts(tls);
    Ok(builder.into())
}

/// TLS options for `mysql.ssl_mode`; `None` when disabled.
fn ssl_opts(settings: &MysqlSettings) -> Option<SslOpts> {
    let (accept_any_certificate, skip_host_name) = match settings.ssl_mode {
        MysqlSslMode::Disabled => return None,
        MysqlSslMode::Required => (true, true),
        MysqlSslMode::VerifyCa => (false, true),
        MysqlSslMode::VerifyIdentity => (false, false),
    };
    let mut ssl = SslOpts::default()
        .with_danger_accept_invalid_certs(accept_any_certificate)
        .with_danger_skip_domain_validation(skip_host_name);
    if let Some(ca) = path_setting(&settings.ssl_ca) {
        // A private CA is the only one trusted: the web roots signing some other server's
        // certificate must not make it ours.
        ssl = ssl
            .with_root_certs(vec![PathBuf::from(ca).into()])
            .with_disable_built_in_roots(true);
    }
    if let (Some(cert), Some(key)) = (
        path_setting(&settings.ssl_cert),
        path_setting(&settings.ssl_key),
    ) {
        ssl = ssl.with_client_identity(Some(ClientIdentity::new(
            PathBuf::from(cert).into(),
            PathBuf::from(key).into(),
        )));
    }
    Some(ssl)
}

/// Opens one connection with `opts` (from [`options`]).
pub(crate) async fn open(opts: Opts) -> diesel::ConnectionResult<AsyncMysqlConnection> {
    let conn = mysql_async::Conn::new(opts)
        .await
        .map_err(|e| ConnectionError::BadConnection(e.to_string()))?;
    AsyncMysqlConnection::try_from(conn).await
}

/// One connection to the configured server, outside the pool (test support, tools), bounded
/// by `mysql.connect_timeout_ms`. `database`: `false` to select none (to create it).
pub async fn connect(
    settings: &MysqlSettings,
    database: bool,
) -> Result<AsyncMysqlConnection, crate::StorageError> {
    let mut server = settings.clone();
    if !database {
        server.database = String::new();
    }
    let unavailable = |reason: String| crate::StorageError::Unavailable {
        address: settings.address(),
        reason,
    };
    let opts =
        options(&server, settings.connect_timeout()).map_err(|e| unavailable(e.to_string()))?;
    tokio::time::timeout(settings.connect_timeout(), open(opts))
        .await
        .map_err(|_| crate::StorageError::Timeout {
            address: settings.address(),
            timeout_ms: settings.connect_timeout().as_millis(),
        })?
        .map_err(|e| unavailable(e.to_string()))
}
