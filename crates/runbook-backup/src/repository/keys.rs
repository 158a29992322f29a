//! Repository keys (restic's key files): add one for a new password, remove an old one; and
//! whether a repository exists at all.

use rand::RngCore;
use rustic_core::{
    FileType, Id, Repository, RepositoryOptions, WriteBackend,
    repofile::{KeyFile, KeyId, MasterKey},
};
use secrecy::{ExposeSecret, SecretString};

use super::{Repo, backends, errors::one_line, rerr, seal::Seal};
use crate::Result;
use runbook_config::RepositoryConfig;

/// The scrypt parameters of the key files runbook writes: restic's own, what `restic init`
/// settles on for a machine of this kind (it calibrates to half a second within 60 MiB).
/// rustic_core's (N = 2^17, r = 8, p = 1) take a third longer and 128 MiB of memory, paid by
/// every command that opens a repository; runbook's passwords are 32 random bytes besides.
const LOG_N: u8 = 15;
const R: u32 = 8;
const P: u32 = 3;

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
        save_key(&*self.backend, &self.inner.key(), password)
            .map(|_| ())
            .map_err(self.fail("add key"))
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

/// The key of a repository about to be created, derived and not yet written: its master key,
/// and the key file to write for it unless one was already there.
pub(super) struct NewKey {
    pub(super) master: MasterKey,
    file: Option<(Id, Vec<u8>)>,
}

impl NewKey {
    /// Writes the key file (before the config: see [`new_master`]), if there is one to write.
    pub(super) fn write(&self, be: &dyn WriteBackend) -> std::result::Result<(), String> {
        if let Some((id, bytes)) = &self.file {
            be.write_bytes(FileType::Key, id, false, bytes.clone().into())
                .map_err(|e| one_line(&e))?;
        }
        Ok(())
    }
}

/// The master key for a repository about to be created in `be`, derived without writing
/// anything: the one a key file already there opens with `password` (left by a creation stopped
/// before its config was written, which rustic would otherwise try first and fail on), else a
/// new one with its key file. `listed`: whether `be` may hold key files at all (a local
/// repository whose directory does not exist yet has none to list).
pub(super) fn new_master(
    be: &dyn WriteBackend,
    password: &SecretString,
    listed: bool,
) -> std::result::Result<NewKey, String> {
    let ids = if listed {
        be.list(FileType::Key).map_err(|e| one_line(&e))?
    } else {
        Vec::new()
    };
    for id in ids {
        let bytes = be.read_full(FileType::Key, &id).map_err(|e| one_line(&e))?;
        let file: KeyFile = serde_json::from_slice(&bytes)
            .map_err(|e| format!("cannot read key {}: {e}", id.to_hex().as_str()))?;
        if let Some(master) = open_key(&file, password)? {
            return Ok(NewKey { master, file: None });
        }
    }
    let master = MasterKey::new();
    let file = key_file(&master, password)?;
    Ok(NewKey {
        master,
        file: Some(file),
    })
}

/// Writes a key file (restic's format) that `password` opens to `master`.
fn save_key(
    be: &dyn WriteBackend,
    master: &MasterKey,
    password: &SecretString,
) -> std::result::Result<KeyId, String> {
    let (id, bytes) = key_file(master, password)?;
    be.write_bytes(FileType::Key, &id, false, bytes.into())
        .map_err(|e| one_line(&e))?;
    Ok(KeyId::from(id))
}

/// A key file (restic's format) that `password` opens to `master`: its id and its bytes.
fn key_file(
    master: &MasterKey,
    password: &SecretString,
) -> std::result::Result<(Id, Vec<u8>), String> {
    let mut salt = vec![0_u8; 64];
    rand::rng().fill_bytes(&mut salt);
    let mut file = KeyFile {
        hostname: None,
        username: None,
        created: Some(jiff::Zoned::now()),
        kdf: "scrypt".into(),
        n: 1 << LOG_N,
        r: R,
        p: P,
        data: Vec::new(),
        salt,
    };
    let plain = serde_json::to_vec(master).map_err(|e| format!("cannot write a key: {e}"))?;
    file.data = derive(&file, password)?.seal(&plain);
    let bytes = serde_json::to_vec(&file).map_err(|e| format!("cannot write a key: {e}"))?;
    Ok((Id::new(super::pages::sha256(&bytes)), bytes))
}

/// The master key in `file` if `password` opens it, `None` if it is another password's.
fn open_key(
    file: &KeyFile,
    password: &SecretString,
) -> std::result::Result<Option<MasterKey>, String> {
    let Ok(plain) = derive(file, password)?.open(&file.data) else {
        return Ok(None);
    };
    serde_json::from_slice(&plain)
        .map(Some)
        .map_err(|e| format!("cannot read a key: {e}"))
}

/// The key `password` derives through the key file's scrypt parameters.
fn derive(file: &KeyFile, password: &SecretString) -> std::result::Result<Seal, String> {
    if file.kdf != "scrypt" || !file.n.is_power_of_two() {
        return Err(format!(
            "a key file asks for {} with N = {}, not scrypt with a power of two",
            file.kdf, file.n
        ));
    }
    let log_n = u8::try_from(file.n.ilog2()).map_err(|_| "N is too large".to_string())?;
    let params = scrypt::Params::new(log_n, file.r, file.p)
        .map_err(|e| format!("a key file's scrypt parameters are invalid: {e}"))?;
    let mut raw = [0_u8; 64];
    scrypt::scrypt(
        password.expose_secret().as_bytes(),
        &file.salt,
        &params,
        &mut raw,
    )
    .map_err(|e| format!("cannot derive a key: {e}"))?;
    Ok(Seal::from_bytes(&raw))
}

#[cfg(test)]
mod tests {
    use rustic_backend::BackendOptions;

    use super::*;

    fn key_files(dir: &std::path::Path) -> Vec<serde_json::Value> {
        std::fs::read_dir(dir.join("keys"))
            .expect("keys/")
            .map(|e| {
                let bytes = std::fs::read(e.expect("entry").path()).expect("key file");
                serde_json::from_slice(&bytes).expect("JSON")
            })
            .collect()
    }

    #[test]
    fn a_new_repository_key_has_restics_parameters_and_a_stopped_creation_reuses_it() {
        let dir = tempfile::tempdir().expect("tmp");
        let be = BackendOptions::default()
            .repository(dir.path().to_str().expect("UTF-8 temp path"))
            .to_backends()
            .expect("local backend")
            .repository();
        let password = SecretString::from("one password");
        // What a creation does: the directories, the key derived, its file written.
        be.create().expect("directories");
        let create = |password: &SecretString| {
            let key = new_master(&*be, password, true).expect("new key");
            key.write(&*be).expect("key file written");
            key.master
        };

        let first = create(&password);
        let files = key_files(dir.path());
        assert_eq!(files.len(), 1);
        assert_eq!(
            (&files[0]["N"], &files[0]["r"], &files[0]["p"]),
            (&32768.into(), &8.into(), &3.into()),
            "{:?}",
            files[0]
        );

        // Stopped before the config: the same password finds the same master key again.
        let again = create(&password);
        assert_eq!(key_files(dir.path()).len(), 1);
        assert_eq!(again.encrypt, first.encrypt);

        // Another password does not open it: a key of its own.
        let other = create(&SecretString::from("another"));
        assert_eq!(key_files(dir.path()).len(), 2);
        assert_ne!(other.encrypt, first.encrypt);
    }
}
