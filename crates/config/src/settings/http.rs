use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    #[serde(deserialize_with = "crate::lenient::text")]
    pub bind: String,
    pub workers: usize,
    /// Open connections the API serves at once, over all workers (actix counts a connection
    /// after handing it to a worker, so a few more may get in); more wait in the listen
    /// backlog. Each costs memory while open: this bounds what a flood of connections takes.
    pub max_connections: usize,
    /// A connection that has not sent a whole request head within this is closed.
    pub client_request_timeout_ms: u64,
    /// An idle keep-alive connection is closed after this.
    pub keep_alive_ms: u64,
}

impl HttpSettings {
    /// `max_connections` shared out over `workers` (actix counts per worker), at least one each.
    pub fn max_connections_per_worker(&self, workers: usize) -> usize {
        self.max_connections.div_ceil(workers.max(1)).max(1)
    }
}
