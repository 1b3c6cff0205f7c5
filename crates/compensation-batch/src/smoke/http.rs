//! HTTP calls bounded in time that say what they saw: the status and the start of the body,
//! or the connection error with its causes, always with the URL.

use std::error::Error;
use std::net::SocketAddr;
use std::time::Duration;

use url::Url;

/// Characters of a body kept in a report: enough for a readiness body's failing check.
const EXCERPT_CHARS: usize = 400;

/// A client whose every call is bounded by `timeout`, connect included. With `pinned`, the
/// host is reached at that one address (one pod behind a headless Service), TLS and `Host`
/// still naming the host.
pub fn client(
    timeout: Duration,
    pinned: Option<(&str, SocketAddr)>,
) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("couponrush-smoke/", env!("CARGO_PKG_VERSION")));
    if let Some((host, address)) = pinned {
        builder = builder.resolve(host, address);
    }
    builder
        .build()
        .map_err(|error| format!("HTTP client: {}", causes(&error)))
}

/// `path` under `base`, keeping any path prefix `base` has (an API behind `/couponrush/`).
pub fn endpoint(base: &Url, path: &str) -> Result<Url, String> {
    let mut base = base.clone();
    if !base.path().ends_with('/') {
        let with_slash = format!("{}/", base.path());
        base.set_path(&with_slash);
    }
    base.join(path.trim_start_matches('/'))
        .map_err(|error| format!("{base}{path}: not a URL: {error}"))
}

/// An answer, whatever its status.
#[derive(Debug)]
pub struct Seen {
    pub status: u16,
    pub body: String,
}

impl Seen {
    /// The body on one line, cut to a readable length.
    pub fn excerpt(&self) -> String {
        excerpt(&self.body)
    }

    /// `answered 503: {"status":"DOWN",...}`.
    pub fn describe(&self) -> String {
        format!("answered {}: {}", self.status, self.excerpt())
    }
}

/// Sends `request` and reads the whole answer; an error names the method, the URL and the
/// cause (refused, timed out, TLS, ...).
pub async fn send(request: reqwest::RequestBuilder, what: &str) -> Result<Seen, String> {
    let response = request
        .send()
        .await
        .map_err(|error| format!("{what}: {}", causes(&error)))?;
    let status = response.status().as_u16();
    let body = response
        .text()
        .await
        .map_err(|error| format!("{what} answered {status}, then: {}", causes(&error)))?;
    Ok(Seen { status, body })
}

/// GET `url`, which must answer 200; the error says what it saw.
pub async fn get_ok(client: &reqwest::Client, url: &Url) -> Result<Seen, String> {
    let what = format!("GET {url}");
    let seen = send(client.get(url.clone()), &what).await?;
    if seen.status == 200 {
        Ok(seen)
    } else {
        Err(format!("{what} {}", seen.describe()))
    }
}

/// An error and its causes on one line: reqwest's own message says only "error sending
/// request"; the cause says "Connection refused" or "operation timed out".
pub fn causes(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = cause.source();
    }
    text
}

/// `text` on one line, at most [`EXCERPT_CHARS`] characters.
pub fn excerpt(text: &str) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= EXCERPT_CHARS {
        line
    } else {
        let cut: String = line.chars().take(EXCERPT_CHARS).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_keep_the_base_path() -> Result<(), String> {
        let base = Url::parse("https://api.example/couponrush").map_err(|e| e.to_string())?;
        assert_eq!(
            endpoint(&base, "/health/ready")?.as_str(),
            "https://api.example/couponrush/health/ready"
        );
        let root = Url::parse("http://10.0.0.1:8080").map_err(|e| e.to_string())?;
        assert_eq!(
            endpoint(&root, "/coupons/7/issue")?.as_str(),
            "http://10.0.0.1:8080/coupons/7/issue"
        );
        Ok(())
    }

    #[test]
    fn excerpts_are_one_short_line() {
        assert_eq!(
            excerpt("{\n  \"status\": \"DOWN\"\n}"),
            "{ \"status\": \"DOWN\" }"
        );
        let long = "x".repeat(EXCERPT_CHARS + 10);
        assert_eq!(excerpt(&long).chars().count(), EXCERPT_CHARS + 1);
    }
}
