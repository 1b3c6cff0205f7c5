//! The stand-in for the pager and the chat: an HTTP listener on a free loopback port that
//! takes Alertmanager's webhook POSTs (`/<receiver>`), answers 200 and keeps each JSON body
//! with the moment it arrived. Plain HTTP/1.1 on a tokio socket: Alertmanager sends one
//! `Content-Length` body per request, on a kept-alive connection.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Largest request accepted: Alertmanager's bodies are a few KiB per alert group.
const MAX_REQUEST: usize = 4 << 20;

/// One webhook call: when it arrived, the receiver (its URL path) and the body.
#[derive(Debug, Clone)]
pub struct Notification {
    pub at: Instant,
    pub receiver: String,
    pub body: serde_json::Value,
}

impl Notification {
    /// The names of the alerts it reports firing with `severity`.
    pub fn firing(&self, severity: &str) -> Vec<String> {
        self.body["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|alert| alert["status"] == "firing" && alert["labels"]["severity"] == severity)
            .map(|alert| {
                alert["labels"]["alertname"]
                    .as_str()
                    .unwrap_or("(no alertname)")
                    .to_owned()
            })
            .collect()
    }
}

/// The listener and what it received; see the module documentation. Stops when dropped.
#[derive(Debug)]
pub struct Pager {
    address: SocketAddr,
    received: Arc<Mutex<Vec<Notification>>>,
    task: JoinHandle<()>,
}

impl Pager {
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let received = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&received)));
        Ok(Self {
            address,
            received,
            task,
        })
    }

    /// The URL that stands in for `receiver`'s webhook.
    pub fn url(&self, receiver: &str) -> String {
        format!("http://{}/{receiver}", self.address)
    }

    /// Everything received so far, in order of arrival.
    pub fn received(&self) -> Vec<Notification> {
        self.received
            .lock()
            .map(|all| all.clone())
            .unwrap_or_default()
    }
}

impl Drop for Pager {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, received: Arc<Mutex<Vec<Notification>>>) {
    let mut connections = JoinSet::new();
    loop {
        if let Ok((stream, _)) = listener.accept().await {
            connections.spawn(serve(stream, Arc::clone(&received)));
        }
        while connections.try_join_next().is_some() {}
    }
}

/// Requests of one connection until it closes or sends something that is not a webhook call.
async fn serve(mut stream: TcpStream, received: Arc<Mutex<Vec<Notification>>>) {
    let mut buffer = Vec::new();
    loop {
        let Some((receiver, body)) = next_request(&mut stream, &mut buffer).await else {
            return;
        };
        let at = Instant::now();
        let status = match serde_json::from_slice(&body) {
            Ok(body) => {
                if let Ok(mut all) = received.lock() {
                    all.push(Notification { at, receiver, body });
                }
                "200 OK"
            }
            Err(_) => "400 Bad Request",
        };
        let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
        if stream.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// The next request's path (without its leading `/`) and body; `None` at the end of the
/// connection or on a request that is not `POST` with a `Content-Length`.
async fn next_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
    let end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        if buffer.len() > MAX_REQUEST || !read_more(stream, buffer).await {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
    let mut lines = head.lines();
    let mut request_line = lines.next()?.split_whitespace();
    let (method, path) = (request_line.next()?, request_line.next()?);
    if method != "POST" {
        return None;
    }
    let length: usize = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())?;
    if length > MAX_REQUEST {
        return None;
    }
    let start = end + 4;
    while buffer.len() < start + length {
        if !read_more(stream, buffer).await {
            return None;
        }
    }
    let body = buffer[start..start + length].to_vec();
    buffer.drain(..start + length);
    Some((path.trim_start_matches('/').to_owned(), body))
}

/// Appends what the peer sent next; false at the end of the stream or on an error.
async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 8192];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buffer.extend_from_slice(&chunk[..n]);
            true
        }
    }
}
