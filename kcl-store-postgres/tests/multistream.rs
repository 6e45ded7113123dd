//! Many streams on PostgreSQL: the shared scenario (3 streams x 8 shards
//! over 3 workers; a split in one stream, one stream removed and one added
//! while they run) on a real server (`KCL_TEST_POSTGRES_URL`). The table
//! keeps the engine's lease keys (`account:name:epoch:shardId`) and keyed
//! parents as they are.

mod common;

use std::sync::Arc;
use std::time::Duration;

use kcl_core::LeaseStore;
use kcl_core::testkit::multistream::three_streams_over_three_workers;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_streams_over_three_workers_on_postgres() {
    let Some(schemas) = common::schemas().await else {
        return;
    };
    let store: Arc<dyn LeaseStore> = Arc::new(schemas.store().await);
    let report = three_streams_over_three_workers(store, Duration::from_secs(3)).await;
    println!("multistream postgres: {report:?}");
    schemas.drop_all().await;
}
