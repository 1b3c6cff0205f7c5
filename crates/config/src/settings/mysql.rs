use std::time::Duration;

use serde::Deserialize;

use crate::secret::Secret;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlSettings {
    #[serde(deserialize_with = "crate::lenient::text")]
    pub host: String,
    pub port: u16,
    #[serde(deserialize_with = "crate::lenient::text")]
    pub user: String,
    pub password: Secret,
    #[serde(deserialize_with = "crate::lenient::text")]
    pub database: String,
    pub pool_size: usize,
    pub connect_timeout_ms: u64,
    pub lock_wait_timeout_s: u32,
    /// Whether the client may switch to the server's Unix socket when it runs on this host
    /// (mysql_async's `prefer_socket`); `false` keeps every connection on `host:port`.
    pub prefer_socket: bool,
    /// TLS to the server, as MySQL's `--ssl-mode`.
    pub ssl_mode: MysqlSslMode,
    /// PEM file of the CA(s) that signed the server's certificate; empty: the built-in web
    /// roots only (a private CA must be named here).
    #[serde(deserialize_with = "crate::lenient::text")]
    pub ssl_ca: String,
    /// Client certificate (PEM) for a server that requires one (`REQUIRE X509`); with `ssl_key`.
    #[serde(deserialize_with = "crate::lenient::text")]
    pub ssl_cert: String,
    /// The client certificate's RSA private key, PKCS#1 PEM (`BEGIN RSA PRIVATE KEY`): the only
    /// form mysql_async reads.
    #[serde(deserialize_with = "crate::lenient::text")]
    pub ssl_key: String,
}

/// `mysql.ssl_mode`, named as MySQL's `--ssl-mode` values (no `preferred`: a connection that
/// silently falls back to plain text is what the setting exists to rule out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MysqlSslMode {
    /// Plain TCP.
    Disabled,
    /// Encrypted, the server's certificate not checked (protects against a passive listener
    /// only).
    Required,
    /// Encrypted, the certificate signed by a trusted CA; its name is not checked.
    VerifyCa,
    /// Encrypted, signed by a trusted CA and issued for `mysql.host`.
    VerifyIdentity,
}

impl MysqlSettings {
    /// Where the database is, for messages; carries no credentials.
    pub fn address(&self) -> String {
        format!("{}:{}/{}", self.host, self.port, self.database)
    }

    /// Connection URL for the client library. Contains the password: never log it.
    pub fn url(&self) -> Secret {
        let mut url = url::Url::parse("mysql://placeholder").unwrap_or_else(|_| unreachable!());
        // Setting parts of a `mysql://` URL only fails for cannot-be-a-base URLs, which it is not;
        // going through `Url` percent-encodes user, password and database correctly.
        let _ = url.set_host(Some(&self.host));
        let _ = url.set_port(Some(self.port));
        let _ = url.set_username(&self.user);
        if !self.password.is_empty() {
            let _ = url.set_password(Some(self.password.expose()));
        }
        url.set_path(&self.database);
        Secret::new(url.to_string())
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
}
