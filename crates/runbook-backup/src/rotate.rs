//! Rotating the repository password without a moment in which the password file fails to open
//! a repository.
//!
//! The password file `P` is the only thing that must open every repository (each target's, in
//! the main repository and in each copy). The rotation moves through files beside it:
//! 1. the new password is written to `P.rotating`;
//! 2. a key for it is added to every repository (restic's key format: stock restic opens them
//!    with either password now), and each is opened with it;
//! 3. the old password is kept in `P.previous`, then `P.rotating` is renamed over `P` (atomic);
//! 4. the caller's hook runs (the ops log re-keys its anchor);
//! 5. the old key is removed from every repository, which no longer opens with it;
//! 6. `P.previous` is removed.
//!
//! Killed anywhere, `P` still opens every repository: before step 3 it holds the old password
//! and no old key is gone; after it, the new one, whose key every repository already has. The
//! next `runbook key rotate` sees `P.rotating` or `P.previous` and finishes the same rotation
//! (both present: killed inside step 3, so it makes the switch first). The tests kill it at
//! each step (`RUNBOOK_FAILPOINT=rotate-after-new-password`, `rotate-after-first-key`,
//! `rotate-before-switch`, `rotate-after-switch`, `rotate-after-first-removal`).
//! Every target's lock is held throughout, so no backup creates a repository in between.

use std::{
    fs,
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};

use crate::{Engine, Error, Result, TargetLock, failpoint, repository::Repo};

/// What a rotation did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RotateReport {
    /// The repositories that now open with the new password only.
    pub repositories: Vec<String>,
    /// An interrupted rotation was finished rather than a new one started.
    pub resumed: bool,
}

/// Where the rotation stands, read from the files beside the password file.
enum Phase {
    /// Keys are being added: `P` is the old password, `P.rotating` the new one.
    Adding {
        old: SecretString,
        new: SecretString,
    },
    /// The switch is done: `P.previous` is the old password, `P` the new one.
    Removing {
        old: SecretString,
        new: SecretString,
    },
}

fn beside(p: &Path, ext: &str) -> PathBuf {
    let mut name = p.file_name().unwrap_or_default().to_os_string();
    name.push(ext);
    p.with_file_name(name)
}

/// Reads a password file as restic does (surrounding white space trimmed).
fn read(p: &Path) -> Result<SecretString> {
    let text = fs::read_to_string(p).map_err(Error::io(format!("cannot read {}", p.display())))?;
    Ok(SecretString::from(text.trim().to_string()))
}

/// Writes `secret` to `p` (mode 0600) durably: the data and the directory entry are synced.
fn write_durably(p: &Path, secret: &SecretString) -> Result<()> {
    let io = |what: &str| Error::io(format!("cannot {what} {}", p.display()));
    let tmp = beside(p, ".tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io("create"))?;
    writeln!(f, "{}", secret.expose_secret()).map_err(io("write"))?;
    f.sync_all().map_err(io("sync"))?;
    fs::rename(&tmp, p).map_err(io("write"))?;
    sync_dir(p)
}

/// Syncs the directory holding `p`, so that a file created or renamed there survives a crash.
pub(crate) fn sync_dir(p: &Path) -> Result<()> {
    let dir = p
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io(format!("cannot sync {}", dir.display())))
}

/// A new repository password: 32 random bytes as hex (what `runbook init` writes too).
#[must_use]
pub fn new_password() -> SecretString {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    SecretString::from(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

impl Engine {
    /// Rotates the repository password (see the module documentation); `hook(old, new)` runs
    /// right after the password file holds the new password, before any old key is removed
    /// (it may run twice for one rotation when a rotation is resumed). `progress` hears each step.
    ///
    /// # Errors
    /// The password comes from the environment (the file cannot be switched), a target is
    /// busy, a repository cannot be opened or written, or the hook failed. Whatever happened,
    /// the password file opens every repository; run it again to finish.
    pub fn rotate_password(
        &self,
        hook: &mut dyn FnMut(&SecretString, &SecretString) -> std::result::Result<(), String>,
        progress: &mut dyn FnMut(&str),
    ) -> Result<RotateReport> {
        if std::env::var(runbook_config::ENV_PASSWORD).is_ok_and(|v| !v.is_empty()) {
            return Err(Error::Usage {
                target: "repository".into(),
                message: format!(
                    "the password comes from {}; rotation switches the password file, so unset it and keep the password in {}",
                    runbook_config::ENV_PASSWORD,
                    self.config.repository.password_file.display()
                ),
            });
        }
        let _locks = self
            .config
            .targets
            .values()
            .map(|t| self.lock(t))
            .collect::<Result<Vec<TargetLock>>>()?;
        let file = &self.config.repository.password_file;
        let (rotating, previous) = (beside(file, ".rotating"), beside(file, ".previous"));
        let resumed = rotating.exists() || previous.exists();
        if previous.exists() && rotating.exists() {
            // Killed between keeping the old password and the switch: every repository has the
            // new key already (the old password is kept only after that), so switch now.
            fs::rename(&rotating, file)
                .map_err(Error::io(format!("cannot replace {}", file.display())))?;
            sync_dir(file)?;
            failpoint("rotate-after-switch");
        }
        let phase = if previous.exists() {
            Phase::Removing {
                old: read(&previous)?,
                new: read(file)?,
            }
        } else if rotating.exists() {
            Phase::Adding {
                old: read(file)?,
                new: read(&rotating)?,
            }
        } else {
            let new = new_password();
            write_durably(&rotating, &new)?;
            failpoint("rotate-after-new-password");
            Phase::Adding {
                old: read(file)?,
                new,
            }
        };
        let repos = self.repositories()?;
        let (old, new) = match phase {
            Phase::Adding { old, new } => {
                for (location, target, shown) in &repos {
                    progress(&format!("adding the new key to {shown}"));
                    match Repo::open(location, target, &new, None) {
                        // Added before an interruption.
                        Ok(_) => continue,
                        Err(Error::WrongPassword { .. }) => {}
                        Err(e) => return Err(e),
                    }
                    Repo::open(location, target, &old, None)?.add_key(&new)?;
                    failpoint("rotate-after-first-key");
                    Repo::open(location, target, &new, None)?;
                }
                write_durably(&previous, &old)?;
                failpoint("rotate-before-switch");
                fs::rename(&rotating, file)
                    .map_err(Error::io(format!("cannot replace {}", file.display())))?;
                sync_dir(file)?;
                failpoint("rotate-after-switch");
                (old, new)
            }
            Phase::Removing { old, new } => (old, new),
        };
        hook(&old, &new).map_err(|message| Error::Usage {
            target: "repository".into(),
            message,
        })?;
        for (location, target, shown) in &repos {
            progress(&format!("removing the old key from {shown}"));
            let old_key = match Repo::open(location, target, &old, None) {
                Ok(repo) => repo.key_id(),
                // Removed before an interruption.
                Err(Error::WrongPassword { .. }) => continue,
                Err(e) => return Err(e),
            };
            let repo = Repo::open(location, target, &new, None)?;
            if let Some(id) = old_key {
                repo.delete_key(&id)?;
                failpoint("rotate-after-first-removal");
            }
            if !matches!(
                Repo::open(location, target, &old, None),
                Err(Error::WrongPassword { .. })
            ) {
                return Err(Error::Usage {
                    target: target.clone(),
                    message: format!("{shown} still opens with the old password"),
                });
            }
        }
        fs::remove_file(&previous)
            .map_err(Error::io(format!("cannot remove {}", previous.display())))?;
        sync_dir(file)?;
        Ok(RotateReport {
            repositories: repos.into_iter().map(|(_, _, shown)| shown).collect(),
            resumed,
        })
    }

    /// Every repository that exists: each configured target's, in the main repository and in
    /// each copy repository.
    fn repositories(&self) -> Result<Vec<(runbook_config::RepositoryConfig, String, String)>> {
        let mut locations = vec![self.config.repository.clone()];
        locations.extend(self.config.copies.values().map(|c| c.location.clone()));
        let mut out = Vec::new();
        for location in locations {
            for target in self.config.targets.keys() {
                if Repo::exists(&location, target)? {
                    let shown = location.location_of(target);
                    out.push((location.clone(), target.clone(), shown));
                }
            }
        }
        Ok(out)
    }
}
