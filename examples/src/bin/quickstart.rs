//! The README's "Use it" snippet, kept here so CI compiles it: a consumer of
//! the Kinesis stream `orders` with leases in the DynamoDB table
//! `orders-consumer`. Needs AWS credentials (or `AWS_ENDPOINT_URL`) to run.

use kcl_core::engine::Worker;
use kcl_core::retrieval::kinesis::KinesisSource;
use kcl_store_dynamo::DynamoStore;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> kcl_core::Result<()> {
    let store = DynamoStore::builder()
        .application("orders-consumer")
        .build()
        .await?;
    let source = KinesisSource::builder().stream("orders").build().await?;
    let worker = Worker::builder()
        .lease_store(Arc::new(store))
        .source(Arc::new(source))
        .process_with(|batch| async move {
            for record in batch.records() {
                println!("{} {:?}", record.sequence_number, record.data);
            }
            Ok(()) // checkpointed after every batch that returns Ok
        })
        .build()?;
    // Cancelling the token shuts down gracefully: every processor checkpoints,
    // every lease is released so peers take it at once.
    worker.run(CancellationToken::new()).await
}
