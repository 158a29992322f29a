//! The ops log's anchor: the newest entry's position and hash, kept outside the database in a
//! file authenticated with a key derived from the repository password.
//!
//! The hash chain alone catches an edited, reordered or deleted entry in the middle, but not
//! the newest entries deleted, and not a chain recomputed by someone who can write the
//! database. The anchor catches both as long as the attacker does not also hold the
//! repository password: `verify` finds the anchored entry missing or different. It cannot
//! catch the database and the anchor file both rolled back to an older copy.

use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Where the anchor lives and the key that authenticates it.
#[derive(Clone)]
pub struct Anchor {
    path: PathBuf,
    key: Key,
}

/// Where the anchor's key comes from.
#[derive(Clone)]
enum Key {
    /// Derived once (a password given directly, e.g. from the environment).
    Fixed([u8; 32]),
    /// Derived from the password file each time it is used, so a long-running `serve` follows
    /// a password rotation (`runbook key rotate`) without a restart.
    File(PathBuf),
}

fn derive(password: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"runbook ops-log anchor v1\0");
    h.update(password.as_bytes());
    h.finalize().into()
}

impl std::fmt::Debug for Anchor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Anchor")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The file's content.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Head {
    pub seq: i64,
    pub hash: String,
    mac: String,
}

/// What reading the anchor found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Read {
    Missing,
    Altered,
    Head { seq: i64, hash: String },
}

impl Anchor {
    /// An anchor at `path`, authenticated with a key derived from `password`.
    #[must_use]
    pub fn new(path: PathBuf, password: &SecretString) -> Self {
        Self {
            path,
            key: Key::Fixed(derive(password.expose_secret())),
        }
    }

    /// An anchor at `path`, authenticated with a key derived from the password in
    /// `password_file` as it reads at each use (trimmed as restic trims it).
    #[must_use]
    pub fn from_password_file(path: PathBuf, password_file: PathBuf) -> Self {
        Self {
            path,
            key: Key::File(password_file),
        }
    }

    fn key(&self) -> std::io::Result<[u8; 32]> {
        match &self.key {
            Key::Fixed(k) => Ok(*k),
            Key::File(f) => Ok(derive(std::fs::read_to_string(f)?.trim())),
        }
    }

    /// Where the anchor file is.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn mac(&self, seq: i64, hash: &str) -> std::io::Result<String> {
        let key = self.key()?;
        // The key is 32 bytes; HMAC takes keys of any length, so this cannot fail.
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        m.update(format!("{seq}\0{hash}").as_bytes());
        Ok(hex::encode(m.finalize().into_bytes()))
    }

    pub(crate) fn read(&self) -> Read {
        let Ok(text) = std::fs::read_to_string(&self.path) else {
            return Read::Missing;
        };
        match serde_json::from_str::<Head>(&text) {
            Ok(h) if self.mac(h.seq, &h.hash).is_ok_and(|m| m == h.mac) => Read::Head {
                seq: h.seq,
                hash: h.hash,
            },
            _ => Read::Altered,
        }
    }

    /// Moves the anchor forward to entry `seq` (never back: a slower writer of an older
    /// entry leaves a newer anchor alone). Written beside and renamed, so it is never torn.
    /// Re-authenticates the anchored head with `to`'s key (the repository password changed).
    /// An anchor that `to` already reads is left alone, so this may run twice.
    ///
    /// # Errors
    /// The anchor cannot be written.
    pub fn rekey(&self, to: &Anchor) -> std::io::Result<()> {
        match self.read() {
            Read::Head { seq, hash } => to.advance(seq, &hash),
            Read::Missing | Read::Altered => Ok(()),
        }
    }

    pub(crate) fn advance(&self, seq: i64, hash: &str) -> std::io::Result<()> {
        if let Read::Head { seq: have, .. } = self.read()
            && have >= seq
        {
            return Ok(());
        }
        let head = Head {
            seq,
            hash: hash.to_string(),
            mac: self.mac(seq, hash)?,
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self
            .path
            .with_extension(format!("tmp-{}", std::process::id()));
        std::fs::write(
            &tmp,
            serde_json::to_vec(&head).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(&tmp, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_anchor_is_authenticated_and_only_moves_forward() {
        let dir = tempfile::tempdir().expect("tmp");
        let a = Anchor::new(dir.path().join("oplog.anchor"), &"pw".to_string().into());
        assert_eq!(a.read(), Read::Missing);
        a.advance(3, "abc").expect("write");
        a.advance(2, "old").expect("write");
        assert_eq!(
            a.read(),
            Read::Head {
                seq: 3,
                hash: "abc".into()
            }
        );
        let other = Anchor::new(a.path().to_path_buf(), &"other".to_string().into());
        assert_eq!(other.read(), Read::Altered, "another key cannot vouch");

        // Keyed by a password file: follows the file, and a re-key carries the head over.
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "pw\n").expect("write");
        let by_file = Anchor::from_password_file(a.path().to_path_buf(), pw.clone());
        assert!(
            matches!(by_file.read(), Read::Head { seq: 3, .. }),
            "same password"
        );
        std::fs::write(&pw, "rotated").expect("write");
        assert_eq!(
            by_file.read(),
            Read::Altered,
            "the file changed, the anchor did not"
        );
        a.rekey(&Anchor::new(
            a.path().to_path_buf(),
            &"rotated".to_string().into(),
        ))
        .expect("rekey");
        assert!(
            matches!(by_file.read(), Read::Head { seq: 3, .. }),
            "re-keyed"
        );
        let text = std::fs::read_to_string(a.path()).expect("read");
        std::fs::write(a.path(), text.replace("\"seq\":3", "\"seq\":9")).expect("write");
        assert_eq!(a.read(), Read::Altered, "an edited anchor is caught");
    }
}
