//! A DynamoDB endpoint that accepts connections and never answers: every
//! call fails with the retryable `Unavailable` within the operation
//! timeout instead of hanging (no server needed: the silent endpoint is a
//! loopback listener of this test).

mod common;

use std::time::{Duration, Instant};

use kcl_store_dynamo::DynamoStore;

#[tokio::test]
async fn a_silent_endpoint_fails_within_the_operation_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    // Accept and hold every connection, never writing a byte.
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let started = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        DynamoStore::builder()
            .application("kcl-timeouts")
            .client(common::client(&endpoint))
            .attempt_timeout(Duration::from_millis(300))
            .operation_timeout(Duration::from_secs(1))
            .build(),
    )
    .await
    .expect("a call on a silent endpoint must not hang");
    let elapsed = started.elapsed();
    let err = result.expect_err("nothing answers");
    assert!(err.is_retryable(), "{err:?}");
    assert!(
        elapsed < Duration::from_secs(5),
        "took {elapsed:?}, the operation timeout is 1 s"
    );
    eprintln!("silent endpoint: failed after {elapsed:?}");
    silent.abort();
}
