//! An embedded Kinesis endpoint: the `ferrokinesis` emulator served over
//! plain HTTP/1.1 on a `127.0.0.1` port, in this process.
//!
//! ferrokinesis' own `serve_plain_http` needs its `server` feature, which
//! pulls OpenTelemetry and more; with the lighter `rt` feature the crate
//! gives its store, validation and action dispatch, and this file adds the
//! few lines of HTTP/1.1 (keep-alive, `Content-Length` bodies) the AWS SDK
//! speaks to it. It skips request signing checks. `SubscribeToShard` is
//! answered with ferrokinesis' own event stream, sent as a chunked HTTP/1.1
//! body (the AWS SDK reads an event stream the same way over HTTP/1.1 and
//! HTTP/2).

use std::net::SocketAddr;

use ferrokinesis::actions::{Operation, dispatch};
use ferrokinesis::error::KinesisErrorResponse;
use ferrokinesis::store::{Store, StoreOptions};
use ferrokinesis::validation::{FieldDef, check_types, check_validations};
use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A Kinesis endpoint served by the ferrokinesis emulator in this process,
/// on a free `127.0.0.1` port; it stops when dropped.
///
/// Every start is a fresh, empty emulator. Point an AWS SDK client at
/// [`endpoint`](Self::endpoint) with any static credentials (requests are
/// not signature-checked), for example with [`client`](super::client).
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// use kcl_core::testkit::kinesis::{EmbeddedKinesis, client, create_stream, fast_options};
///
/// let kinesis = EmbeddedKinesis::start(fast_options()).await?;
/// let client = client(&kinesis.endpoint);
/// create_stream(&client, "orders", 2).await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct EmbeddedKinesis {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    /// The address it listens on.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for EmbeddedKinesis {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Emulator options for tests: streams become ACTIVE (and are deleted or
/// resharded) at once instead of after 500 ms, and there is room for 50
/// shards instead of 10.
pub fn fast_options() -> StoreOptions {
    StoreOptions {
        create_stream_ms: 0,
        delete_stream_ms: 0,
        update_stream_ms: 0,
        shard_limit: 50,
        ..StoreOptions::default()
    }
}

impl EmbeddedKinesis {
    /// Start serving a fresh emulator store with `options` on a free
    /// loopback port. Fails only if no port can be bound.
    pub async fn start(options: StoreOptions) -> std::io::Result<EmbeddedKinesis> {
        let (_router, store) = ferrokinesis::create_app(options);
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let _ = stream.set_nodelay(true);
                        connections.spawn(serve_connection(stream, store.clone()));
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Ok(EmbeddedKinesis {
            endpoint: format!("http://{addr}"),
            addr,
            task,
        })
    }
}

/// The largest request body read (see `serve_connection`).
const MAX_BODY: usize = 8 << 20;

/// The most bytes of request line and headers read for one request (the
/// SDK sends about 1 KiB): a peer that sends more, or a line without end,
/// gets a 431 and the connection is closed, instead of growing a buffer.
const MAX_HEAD: usize = 64 << 10;

/// A request's head as read.
enum Head {
    Request {
        content_length: usize,
        target: String,
    },
    /// The connection closed or failed.
    Closed,
    /// More than [`MAX_HEAD`] bytes without the blank line that ends it.
    TooLarge,
}

/// Read a request line and headers, at most [`MAX_HEAD`] bytes of them.
async fn read_head(read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Head {
    let mut budget = MAX_HEAD;
    let mut line = String::new();
    let mut content_length = 0usize;
    let mut target = String::new();
    // The request line first, then headers up to the blank line.
    let mut request_line = true;
    loop {
        line.clear();
        match (&mut *read).take(budget as u64).read_line(&mut line).await {
            Ok(n) => budget -= n,
            Err(_) => return Head::Closed,
        }
        if !line.ends_with('\n') {
            // The budget ran out inside the line, or the peer closed.
            return if budget == 0 {
                Head::TooLarge
            } else {
                Head::Closed
            };
        }
        let header = line.trim_end();
        if std::mem::take(&mut request_line) {
            continue;
        }
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                content_length = value.parse().unwrap_or(0);
            } else if name.eq_ignore_ascii_case("x-amz-target") {
                target = value.to_owned();
            }
        }
    }
    Head::Request {
        content_length,
        target,
    }
}

async fn serve_connection(stream: TcpStream, store: Store) {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    loop {
        let (content_length, target) = match read_head(&mut read).await {
            Head::Request {
                content_length,
                target,
            } => (content_length, target),
            Head::Closed => return,
            Head::TooLarge => {
                refuse(&mut write, 431, "request head too large").await;
                return;
            }
        };
        // A legal PutRecords is at most 5 MiB of data (base64 in JSON:
        // under 7 MiB); refuse more rather than allocate what a peer says.
        if content_length > MAX_BODY {
            refuse(&mut write, 413, "request body too large").await;
            return;
        }
        let mut body = vec![0u8; content_length];
        if read.read_exact(&mut body).await.is_err() {
            return;
        }
        if target == "Kinesis_20131202.SubscribeToShard" {
            match subscribe(&store, &body).await {
                Ok(events) => {
                    if stream_events(&mut write, events).await.is_err() {
                        return;
                    }
                    continue;
                }
                Err((status, error_type, payload)) => {
                    if write_response(&mut write, status, error_type, &payload)
                        .await
                        .is_err()
                    {
                        return;
                    }
                    continue;
                }
            }
        }
        let (status, error_type, payload) = handle(&store, &target, &body).await;
        if write_response(&mut write, status, error_type, &payload)
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Answer a request the emulator will not read (the connection is closed
/// after it).
async fn refuse(write: &mut tokio::net::tcp::OwnedWriteHalf, status: u16, message: &str) {
    let payload = format!("{{\"__type\":\"SerializationException\",\"message\":\"{message}\"}}");
    let _ = write_response(
        write,
        status,
        Some("SerializationException".to_owned()),
        &payload,
    )
    .await;
}

async fn write_response(
    write: &mut tokio::net::tcp::OwnedWriteHalf,
    status: u16,
    error_type: Option<String>,
    payload: &str,
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\nx-amzn-RequestId: embedded\r\n",
        if status == 200 { "OK" } else { "Error" },
        payload.len()
    );
    if let Some(error_type) = error_type {
        head.push_str(&format!("x-amzn-ErrorType: {error_type}\r\n"));
    }
    head.push_str("\r\n");
    write.write_all(head.as_bytes()).await?;
    write.write_all(payload.as_bytes()).await
}

type EventStream = futures::stream::BoxStream<'static, Result<bytes::Bytes, String>>;

/// Validate a `SubscribeToShard` request and start ferrokinesis' event
/// stream for it.
async fn subscribe(
    store: &Store,
    body: &[u8],
) -> Result<EventStream, (u16, Option<String>, String)> {
    let Some(raw) = std::str::from_utf8(body).ok().and_then(|s| s.parse().ok()) else {
        return Err(error(&KinesisErrorResponse::client_error(
            "SerializationException",
            None,
        )));
    };
    let rules = Operation::SubscribeToShard.validation_rules();
    let fields: Vec<(&str, &FieldDef)> = rules.iter().map(|(k, v)| (*k, v)).collect();
    let mut data = check_types(&raw, &fields).map_err(|e| error(&e))?;
    check_validations(&data, &fields, None).map_err(|e| error(&e))?;
    // ferrokinesis 0.7's type check keeps only `Type` of the starting
    // position, so AT/AFTER_SEQUENCE_NUMBER and AT_TIMESTAMP would start
    // at the shard's start; its handler does read the other fields.
    data["StartingPosition"] = raw["StartingPosition"].clone();
    let body = ferrokinesis::actions::subscribe_to_shard::execute_streaming(
        store,
        data,
        "application/x-amz-json-1.1",
    )
    .await
    .map_err(|e| error(&e))?;
    Ok(body
        .into_data_stream()
        .map(|chunk| chunk.map_err(|e| e.to_string()))
        .boxed())
}

/// Send an event stream as a chunked HTTP/1.1 response, frame by frame.
async fn stream_events(
    write: &mut tokio::net::tcp::OwnedWriteHalf,
    mut events: EventStream,
) -> std::io::Result<()> {
    write
        .write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.amazon.eventstream\r\nTransfer-Encoding: chunked\r\nx-amzn-RequestId: embedded\r\n\r\n",
        )
        .await?;
    while let Some(chunk) = events.next().await {
        let Ok(chunk) = chunk else { break };
        if chunk.is_empty() {
            continue;
        }
        write
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await?;
        write.write_all(&chunk).await?;
        write.write_all(b"\r\n").await?;
    }
    write.write_all(b"0\r\n\r\n").await
}

async fn handle(store: &Store, target: &str, body: &[u8]) -> (u16, Option<String>, String) {
    let operation = target
        .strip_prefix("Kinesis_20131202.")
        .and_then(|op| op.parse::<Operation>().ok());
    let Some(operation) = operation else {
        return error(&KinesisErrorResponse::client_error(
            "UnknownOperationException",
            None,
        ));
    };
    let Some(data) = std::str::from_utf8(body).ok().and_then(|s| s.parse().ok()) else {
        return error(&KinesisErrorResponse::client_error(
            "SerializationException",
            None,
        ));
    };
    let rules = operation.validation_rules();
    let fields: Vec<(&str, &FieldDef)> = rules.iter().map(|(k, v)| (*k, v)).collect();
    let data = match check_types(&data, &fields) {
        Ok(d) => d,
        Err(e) => return error(&e),
    };
    if let Err(e) = check_validations(&data, &fields, None) {
        return error(&e);
    }
    match dispatch(store, operation, data).await {
        Ok(Some(value)) => (200, None, value.to_string()),
        Ok(None) => (200, None, String::new()),
        Err(e) => error(&e),
    }
}

fn error(e: &KinesisErrorResponse) -> (u16, Option<String>, String) {
    let message = e.body.message.as_deref().unwrap_or("");
    let escaped: String = message
        .chars()
        .flat_map(|c| match c {
            '"' => vec!['\\', '"'],
            '\\' => vec!['\\', '\\'],
            c if c.is_control() => vec![' '],
            c => vec![c],
        })
        .collect();
    (
        e.status_code,
        Some(e.body.error_type.clone()),
        format!(
            "{{\"__type\":\"{}\",\"message\":\"{escaped}\"}}",
            e.body.error_type
        ),
    )
}
