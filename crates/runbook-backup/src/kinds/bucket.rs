//! Bucket targets: the objects of an S3-compatible bucket, mirrored incrementally into
//! `data_dir/mirror/<target>` (unchanged objects are not downloaded again) and backed up as a
//! tree (`objects/<key>` plus `manifest.json` with each object's content type and metadata);
//! restored to a path, or into a bucket with that metadata.

use std::{fs, path::Path};

use runbook_config::BucketSource;

use super::{BackupCx, Kind, RestoreCx};
use crate::{
    Error, Result, Snapshot,
    bucket::{Bucket, MANIFEST, OBJECTS, ObjectMeta},
    repository::{BackupSpec, Chunking, Repo},
};

pub(crate) struct BucketKind<'a> {
    pub source: &'a BucketSource,
}

impl Kind for BucketKind<'_> {
    fn backup(&self, mut cx: BackupCx<'_>) -> Result<Snapshot> {
        let name = cx.target.name.clone();
        let source_err = |reason: String| Error::Source {
            target: name.clone(),
            path: self.source.s3.url.to_string().into(),
            reason,
        };
        let bucket = Bucket::open(&self.source.s3).map_err(source_err)?;
        let dir = cx.engine.config.data_dir.join("mirror").join(&name);
        let (include, exclude) = (
            runbook_config::glob_set(&self.source.include),
            runbook_config::glob_set(&self.source.exclude),
        );
        let wanted = |key: &str| {
            (self.source.include.is_empty() || include.is_match(key)) && !exclude.is_match(key)
        };
        let stats = bucket.mirror(&dir, &wanted).map_err(source_err)?;
        if let Ok(text) = serde_json::to_vec_pretty(&stats) {
            let _ = fs::write(dir.with_extension("last-sync.json"), text);
        }
        for key in &stats.skipped_keys {
            log::warn!("target `{name}`: object {key:?} skipped: its key is not a safe path");
        }
        cx.meta.prepare_seconds = cx.started.elapsed().as_secs_f64();
        let repo = cx.repo(Chunking::Content)?;
        cx.begin_write(&repo)?;
        let as_path = format!("/bucket/{}", self.source.s3.url.bucket);
        repo.backup(&BackupSpec {
            paths: std::slice::from_ref(&dir),
            as_path: Some(Path::new(&as_path)),
            excludes: &[],
            use_parent: true,
            meta: cx.meta,
            time: cx.time,
        })
    }

    fn restore_to(&self, cx: RestoreCx<'_>) -> Result<()> {
        super::files::restore_tree(cx)
    }

    fn restore_into_bucket(
        &self,
        target: &str,
        repo: Repo,
        snapshot: &Snapshot,
        into: &str,
        force: bool,
        scratch: &Path,
    ) -> Result<bool> {
        let url = runbook_config::S3Url::parse(into).map_err(|reason| Error::Usage {
            target: target.to_string(),
            message: format!("--into {into}: {reason}"),
        })?;
        let dest_cfg = runbook_config::S3Repository {
            url,
            ..self.source.s3.clone()
        };
        let usage = |message: String| Error::Usage {
            target: target.to_string(),
            message,
        };
        let dest = Bucket::open(&dest_cfg).map_err(usage)?;
        let existing = dest.list().map_err(usage)?;
        if !existing.is_empty() && !force {
            return Err(usage(format!(
                "{into} already holds {} object(s); give --force to write over them (objects not in the snapshot are left alone)",
                existing.len()
            )));
        }
        let tree = scratch.join("tree");
        repo.restore_tree(&snapshot.id, &tree)?;
        let root = snapshot.paths.first().cloned().unwrap_or_default();
        let root = tree.join(root.trim_start_matches('/'));
        let manifest: std::collections::BTreeMap<String, ObjectMeta> = serde_json::from_slice(
            &fs::read(root.join(MANIFEST))
                .map_err(Error::io("the snapshot has no bucket manifest".to_string()))?,
        )
        .map_err(|e| usage(format!("unreadable bucket manifest: {e}")))?;
        for (key, meta) in &manifest {
            let file = root.join(OBJECTS).join(key);
            let bytes =
                fs::read(&file).map_err(Error::io(format!("cannot read {}", file.display())))?;
            dest.put(key, bytes, meta).map_err(usage)?;
        }
        Ok(!existing.is_empty())
    }
}
