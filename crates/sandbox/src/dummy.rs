//! How a dummy store is made. The Visiting environment only reads stores: whoever opens it
//! (niji's CLI, the test kit) says how the dummy store is made, so the query side does not
//! depend on synthesis or the write path.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use niji_catalog::Catalog;
use niji_pseudo::CustodianKey;

type Make = dyn Fn(&Catalog, &CustodianKey, &Path) -> Result<(), String> + Send + Sync;

/// Makes the dummy store in a directory, under the dummy store's own key. Blocking; run once
/// per data directory, on the first dummy-data query.
#[derive(Clone)]
pub struct DummyStoreMaker(Arc<Make>);

impl DummyStoreMaker {
    /// `make`'s error is kept as its text: only custodians see it (the dummy store failing
    /// is a fault of the platform, not of a query).
    pub fn new<E: fmt::Display>(
        make: impl Fn(&Catalog, &CustodianKey, &Path) -> Result<(), E> + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(
            move |catalog: &Catalog, key: &CustodianKey, dir: &Path| {
                make(catalog, key, dir).map_err(|e| e.to_string())
            },
        ))
    }

    pub(crate) fn make(
        &self,
        catalog: &Catalog,
        key: &CustodianKey,
        dir: &Path,
    ) -> Result<(), String> {
        (self.0)(catalog, key, dir)
    }
}

impl fmt::Debug for DummyStoreMaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DummyStoreMaker")
    }
}
