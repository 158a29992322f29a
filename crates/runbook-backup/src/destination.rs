//! Where a restore may write. Two rules:
//! - runbook's own files (repository, password file, state database, locks) are never a
//!   destination, nor inside one, nor above one, from the CLI or the API;
//! - a restore requested through the API goes only below a configured `restore_roots`
//!   directory: no `..`, no symlink on the way, nothing outside the roots.

use std::path::{Component, Path, PathBuf};

use runbook_config::Config;

use crate::{Error, Result};

fn refused(path: &Path, reason: impl Into<String>) -> Error {
    Error::Destination {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// `path` made absolute and free of `.`/`..` without touching the file system, then with its
/// longest existing ancestor resolved through the file system (symlinks included), so two
/// spellings of one place compare equal.
fn normalize(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let mut lexical = PathBuf::new();
    for c in absolute.components() {
        match c {
            Component::ParentDir => {
                lexical.pop();
            }
            Component::CurDir => {}
            other => lexical.push(other),
        }
    }
    let mut rest = Vec::new();
    let mut existing = lexical.as_path();
    loop {
        if let Ok(real) = existing.canonicalize() {
            let mut out = real;
            out.extend(rest.iter().rev());
            return out;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return lexical,
        }
    }
}

/// Refuses `to` when it is, holds, or lies inside one of runbook's own files.
///
/// # Errors
/// [`Error::Destination`] naming the protected path.
pub(crate) fn check_not_protected(config: &Config, to: &Path) -> Result<()> {
    let want = normalize(to);
    for own in config.protected_paths() {
        let own = normalize(&own);
        if want.starts_with(&own) || own.starts_with(&want) {
            return Err(refused(
                to,
                format!(
                    "it would replace runbook's own {} (the repository, its password, the state and the locks are never restored over)",
                    own.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Resolves a destination asked for through the API: relative paths land in the first
/// restore root, absolute paths must lie inside one; `..` and symlinks are refused.
///
/// # Errors
/// [`Error::Destination`] saying which rule `requested` breaks; I/O errors creating a root.
pub(crate) fn resolve_api(config: &Config, requested: &str) -> Result<PathBuf> {
    let asked = Path::new(requested);
    if requested.trim().is_empty() {
        return Err(refused(asked, "`to` is empty"));
    }
    if asked.components().any(|c| c == Component::ParentDir) {
        return Err(refused(asked, "`to` may not contain `..`"));
    }
    let mut found = None;
    for root in &config.restore_roots {
        std::fs::create_dir_all(root).map_err(Error::io(format!(
            "cannot create restore root {}",
            root.display()
        )))?;
        let real = root.canonicalize().map_err(Error::io(format!(
            "cannot resolve restore root {}",
            root.display()
        )))?;
        let rel = if asked.is_absolute() {
            match asked
                .strip_prefix(root)
                .or_else(|_| asked.strip_prefix(&real))
            {
                Ok(rel) => rel.to_path_buf(),
                Err(_) => continue,
            }
        } else {
            asked.to_path_buf()
        };
        found = Some((real, rel));
        break;
    }
    let Some((root, rel)) = found else {
        let roots = config
            .restore_roots
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        return Err(refused(
            asked,
            format!(
                "API restores go only below the restore roots ({roots}); give a path inside one, or a relative path"
            ),
        ));
    };
    if rel.components().next().is_none() {
        return Err(refused(
            asked,
            "a restore root itself cannot be replaced; name a file or directory inside it",
        ));
    }
    let mut path = root;
    for c in rel.components() {
        let Component::Normal(name) = c else {
            continue;
        };
        path.push(name);
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(refused(
                asked,
                format!(
                    "{} is a symbolic link; API restores never follow links",
                    path.display()
                ),
            ));
        }
    }
    check_not_protected(config, &path)?;
    Ok(path)
}
