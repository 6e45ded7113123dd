//! Building a [`MemoryStore`].

use kcl_core::store_url::{StoreOptions, StoreUrl};
use kcl_core::{ApplicationName, Error, Result};

use crate::store::MemoryStore;

/// Builder for [`MemoryStore`].
#[derive(Debug, Default, Clone)]
pub struct MemoryStoreBuilder {
    application: Option<String>,
}

impl MemoryStoreBuilder {
    /// The application namespace. Required; see [`ApplicationName`] for
    /// the rules.
    pub fn application(mut self, name: impl Into<String>) -> Self {
        self.application = Some(name.into());
        self
    }

    /// Validate and build an empty store.
    pub fn build(self) -> Result<MemoryStore> {
        let name = self
            .application
            .ok_or_else(|| Error::Config("MemoryStore needs an application name".into()))?;
        Ok(MemoryStore::new(ApplicationName::new(name)?))
    }
}

/// The settings [`MemoryStoreBuilder::from_map`] knows.
const KNOWN: [&str; 1] = ["application"];

impl MemoryStoreBuilder {
    /// A builder from a URL: `memory://`, or `memory://?application=NAME`.
    /// Set the application here or with [`application`](Self::application)
    /// afterwards. Anything else in the URL is an [`Error::Config`].
    ///
    /// ```
    /// use kcl_store_memory::MemoryStoreBuilder;
    /// let store = MemoryStoreBuilder::from_url("memory://?application=orders")?.build()?;
    /// assert_eq!(store.application().as_str(), "orders");
    /// # Ok::<(), kcl_core::Error>(())
    /// ```
    pub fn from_url(url: &str) -> Result<Self> {
        Self::from_map([("url", url)])
    }

    /// A builder from key/value settings: `application`, and `url` (a
    /// `memory://` URL, whose options are read as settings too). Unknown
    /// keys are an [`Error::Config`].
    pub fn from_map<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Result<Self>
    where
        K: Into<String>,
        V: Into<String>,
    {
        let mut options = StoreOptions::new("memory store", pairs);
        if let Some(url) = options.take("url") {
            let mut url = StoreUrl::parse(&url)?;
            if url.scheme() != "memory" || !url.host()?.is_empty() || !url.path().is_empty() {
                return Err(Error::Config(format!(
                    "a memory store URL is memory:// with options only, not {}",
                    url.redacted()
                )));
            }
            url.drain_into(&mut options);
        }
        let mut builder = MemoryStoreBuilder::default();
        if let Some(application) = options.take("application") {
            builder = builder.application(application);
        }
        options.finish(&KNOWN)?;
        Ok(builder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_url_reads_the_application_and_refuses_the_rest() {
        let store = MemoryStoreBuilder::from_url("memory://")
            .unwrap()
            .application("app")
            .build()
            .unwrap();
        assert_eq!(store.application().as_str(), "app");
        let store = MemoryStoreBuilder::from_map([("application", "app2")])
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(store.application().as_str(), "app2");
        for bad in [
            "redis://host",
            "memory://host",
            "memory:///path",
            "memory://?prefix=x",
            "memory",
        ] {
            let err = MemoryStoreBuilder::from_url(bad).unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{bad}: {err:?}");
        }
    }
}
