//! Building a [`MemoryStore`].

use kcl_core::{ApplicationName, Result};

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
        let name = self.application.ok_or_else(|| {
            kcl_core::Error::Config("MemoryStore needs an application name".into())
        })?;
        Ok(MemoryStore::new(ApplicationName::new(name)?))
    }
}
