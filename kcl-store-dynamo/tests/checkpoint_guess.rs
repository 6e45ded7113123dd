//! The store uses the checkpoint it last saw as the expected value of the
//! next checkpoint write. A stale guess (another handle moved the
//! checkpoint) must cost a retry, never a wrong write or a wrong refusal.

mod common;

use kcl_core::{Error, ExtendedSequenceNumber as Esn, Lease, LeaseStore, ShardId, WorkerId};
use kcl_store_dynamo::DynamoStore;

fn seq(d: &str) -> Esn {
    Esn::at(d.parse().unwrap(), 0)
}

#[tokio::test]
async fn a_stale_guess_is_judged_against_the_stored_checkpoint() {
    let Some(endpoint) = common::endpoint() else {
        return;
    };
    let client = common::client(&endpoint);
    let one = common::store(&client).await;
    // A second handle on the same table, with its own guesses.
    let two = DynamoStore::builder()
        .application(one.application().as_str())
        .client(client.clone())
        .build()
        .await
        .unwrap();
    let lease = Lease::new(
        ShardId::new("shardId-000000000001").unwrap(),
        Esn::TrimHorizon,
    );
    assert!(one.create_lease_if_absent(&lease).await.unwrap());
    let held = one
        .take_lease(&lease, &WorkerId::new("w").unwrap())
        .await
        .unwrap();

    one.update_checkpoint(&held, &seq("100")).await.unwrap(); // one guesses 100
    two.update_checkpoint(&held, &seq("200")).await.unwrap(); // stored is now 200

    // 150 is above one's guess but below what is stored: refused, nothing written.
    let err = one.update_checkpoint(&held, &seq("150")).await.unwrap_err();
    assert!(matches!(err, Error::InvalidCheckpoint(_)), "{err:?}");
    assert_eq!(
        two.get_lease(&held.shard_id)
            .await
            .unwrap()
            .unwrap()
            .checkpoint,
        seq("200")
    );

    // 300 with the stale guess: one retry, then written.
    two.update_checkpoint(&held, &seq("250")).await.unwrap();
    one.update_checkpoint(&held, &seq("300")).await.unwrap();
    assert_eq!(
        two.get_lease(&held.shard_id)
            .await
            .unwrap()
            .unwrap()
            .checkpoint,
        seq("300")
    );

    // Below the guess is judged on a fresh read too: 9 < 300 is refused
    // whatever the guess, and an equal position is accepted.
    assert!(matches!(
        two.update_checkpoint(&held, &seq("9")).await,
        Err(Error::InvalidCheckpoint(_))
    ));
    two.update_checkpoint(&held, &seq("300")).await.unwrap();

    // An admin reset moves the checkpoint back and fences the holder: the
    // holder's guess (300) cannot make its write succeed.
    two.reset_checkpoint(&held.shard_id, &seq("5"))
        .await
        .unwrap();
    assert!(matches!(
        one.update_checkpoint(&held, &seq("400")).await,
        Err(Error::Conflict { .. })
    ));
    assert_eq!(
        two.get_lease(&held.shard_id)
            .await
            .unwrap()
            .unwrap()
            .checkpoint,
        seq("5")
    );
}
