//! A [`StoreFactory`] from a closure, so a backend's test need not write
//! the trait out.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;

use super::StoreFactory;
use crate::store::{CheckpointStore, LeaseStore};

/// A [`StoreFactory`] that calls `make` for every store it hands out; see
/// [`store_factory`].
pub struct FnStoreFactory<F>(F);

impl<F> std::fmt::Debug for FnStoreFactory<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FnStoreFactory")
    }
}

/// A [`StoreFactory`] for a backend whose one store type is both a
/// [`LeaseStore`] and a [`CheckpointStore`]: `make` must return a store in
/// a fresh namespace on every call (for example with
/// [`random_application`](super::random_application)).
///
/// ```
/// use kcl_core::testkit::conformance::{self, random_application, store_factory};
/// use kcl_core::ApplicationName;
/// use kcl_store_memory::MemoryStore;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let server = MemoryStore::new(ApplicationName::new("unused")?);
/// let factory = store_factory(move || {
///     let store = server.with_application(random_application());
///     async move { store }
/// });
/// conformance::run_all(&factory).await;
/// # Ok::<(), kcl_core::Error>(()) }).unwrap();
/// ```
pub fn store_factory<F, Fut, S>(make: F) -> FnStoreFactory<F>
where
    F: Fn() -> Fut + Send + Sync,
    Fut: Future<Output = S> + Send,
    S: LeaseStore + CheckpointStore + 'static,
{
    FnStoreFactory(make)
}

#[async_trait]
impl<F, Fut, S> StoreFactory for FnStoreFactory<F>
where
    F: Fn() -> Fut + Send + Sync,
    Fut: Future<Output = S> + Send,
    S: LeaseStore + CheckpointStore + 'static,
{
    async fn lease_store(&self) -> Arc<dyn LeaseStore> {
        Arc::new((self.0)().await)
    }
    async fn checkpoint_store(&self) -> Arc<dyn CheckpointStore> {
        Arc::new((self.0)().await)
    }
}
