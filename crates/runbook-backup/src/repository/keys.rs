//! Repository keys (restic's key files): add one for a new password, remove an old one; and
//! whether a repository exists at all.

use rustic_core::{KeyOptions, Repository, RepositoryOptions};
use secrecy::{ExposeSecret, SecretString};

use super::{Repo, backends, rerr};
use crate::Result;
use runbook_config::RepositoryConfig;

impl Repo {
    /// Whether `target` has a repository in `location`.
    pub(crate) fn exists(location: &RepositoryConfig, target: &str) -> Result<bool> {
        let rerr = |action: &'static str| rerr(target, action);
        let backends = backends(location, target)?
            .to_backends()
            .map_err(rerr("open repository"))?;
        let opts = RepositoryOptions::default().no_cache(true);
        let base = Repository::new(&opts, &backends).map_err(rerr("open repository"))?;
        Ok(base.config_id().map_err(rerr("open repository"))?.is_some())
    }

    /// Adds a key for `password` (restic's key format); the repository then opens with it too.
    pub(crate) fn add_key(&self, password: &SecretString) -> Result<()> {
        self.inner
            .add_key(password.expose_secret(), &KeyOptions::default())
            .map(|_| ())
            .map_err(self.err("add key"))
    }

    /// The id of the key this repository was opened with.
    pub(crate) fn key_id(&self) -> Option<rustic_core::repofile::KeyId> {
        *self.inner.key_id()
    }

    /// Removes the key `id` (not the one this repository was opened with).
    pub(crate) fn delete_key(&self, id: &rustic_core::repofile::KeyId) -> Result<()> {
        self.inner.delete_key(id).map_err(self.err("remove key"))
    }
}
