//! Buckets read and written through OpenDAL's S3 service (the library rustic's `opendal:`
//! backends use): listing, incremental mirroring into a local tree, and uploads on restore.

use std::{
    collections::{BTreeMap, HashMap},
    fs,
    path::Path,
    sync::OnceLock,
};

use opendal::{
    blocking::Operator,
    layers::RetryLayer,
    options::{ListOptions, WriteOptions},
};
use runbook_config::S3Repository;
use serde::{Deserialize, Serialize};

/// The file in the mirrored tree that records each object's metadata.
pub(crate) const MANIFEST: &str = "manifest.json";
/// The directory in the mirrored tree that holds the objects, by key.
pub(crate) const OBJECTS: &str = "objects";

fn runtime() -> Result<&'static tokio::runtime::Runtime, String> {
    static RT: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .ok()
    })
    .as_ref()
    .ok_or_else(|| "cannot start the runtime for object storage".to_string())
}

/// What the manifest keeps of one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ObjectMeta {
    pub etag: Option<String>,
    pub size: u64,
    pub last_modified: Option<String>,
    pub content_type: Option<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// What a mirror pass did.
#[derive(Debug, Default, Serialize)]
pub(crate) struct MirrorStats {
    pub listed: usize,
    pub downloaded: usize,
    pub removed: usize,
    pub skipped_keys: Vec<String>,
}

/// A bucket (under its prefix).
pub(crate) struct Bucket {
    op: Operator,
    pub(crate) shown: String,
}

impl Bucket {
    /// Opens `s3`'s bucket at its prefix with the keys from the environment or the file.
    pub(crate) fn open(s3: &S3Repository) -> Result<Self, String> {
        let options = crate::repository::opendal_options(s3, &s3.url.prefix)?;
        let op = opendal::Operator::via_iter("s3", options)
            .map_err(|e| e.to_string())?
            .layer(RetryLayer::new().with_max_times(4).with_jitter());
        let _guard = runtime()?.enter();
        let op = Operator::new(op).map_err(|e| e.to_string())?;
        Ok(Self {
            op,
            shown: s3.url.to_string(),
        })
    }

    fn err(&self, what: &str, e: &opendal::Error) -> String {
        let kind = match e.kind() {
            opendal::ErrorKind::NotFound => "not found (does the bucket exist?)".to_string(),
            opendal::ErrorKind::PermissionDenied => "the storage refused the credentials".into(),
            _ => e
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        };
        format!("{}: {what}: {kind}", self.shown)
    }

    /// Every object key under the prefix with its listed metadata.
    pub(crate) fn list(&self) -> Result<Vec<(String, ObjectMeta)>, String> {
        let entries = self
            .op
            .list_options(
                "",
                ListOptions {
                    recursive: true,
                    ..ListOptions::default()
                },
            )
            .map_err(|e| self.err("list", &e))?;
        Ok(entries
            .into_iter()
            .filter(|e| !e.path().ends_with('/'))
            .map(|e| {
                let m = e.metadata();
                (
                    e.path().to_string(),
                    ObjectMeta {
                        etag: m.etag().map(str::to_string),
                        size: m.content_length(),
                        last_modified: m.last_modified().map(|t| t.to_string()),
                        content_type: None,
                        metadata: BTreeMap::new(),
                    },
                )
            })
            .collect())
    }

    /// The object's bytes and its full metadata (content type, user metadata).
    pub(crate) fn get(&self, key: &str) -> Result<(Vec<u8>, ObjectMeta), String> {
        let m = self.op.stat(key).map_err(|e| self.err(key, &e))?;
        let bytes = self.op.read(key).map_err(|e| self.err(key, &e))?.to_vec();
        let meta = ObjectMeta {
            etag: m.etag().map(str::to_string),
            size: m.content_length(),
            last_modified: m.last_modified().map(|t| t.to_string()),
            content_type: m.content_type().map(str::to_string),
            metadata: m
                .user_metadata()
                .map(|u| u.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
        };
        Ok((bytes, meta))
    }

    /// Whether the object exists (a HEAD request).
    pub(crate) fn exists(&self, key: &str) -> Result<bool, String> {
        self.op.exists(key).map_err(|e| self.err(key, &e))
    }

    /// Writes `key` with its content type and user metadata.
    pub(crate) fn put(&self, key: &str, bytes: Vec<u8>, meta: &ObjectMeta) -> Result<(), String> {
        let opts = WriteOptions {
            content_type: meta.content_type.clone(),
            user_metadata: (!meta.metadata.is_empty()).then(|| {
                meta.metadata
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<HashMap<_, _>>()
            }),
            ..WriteOptions::default()
        };
        self.op
            .write_options(key, bytes, opts)
            .map(drop)
            .map_err(|e| self.err(key, &e))
    }

    /// Brings the tree at `dir` (`objects/<key>` and the manifest) up to date with the
    /// bucket: an object whose ETag, size and last-modified time are those recorded is not
    /// downloaded again; objects gone from the bucket leave the tree.
    pub(crate) fn mirror(
        &self,
        dir: &Path,
        wanted: &dyn Fn(&str) -> bool,
    ) -> Result<MirrorStats, String> {
        let objects = dir.join(OBJECTS);
        fs::create_dir_all(&objects)
            .map_err(|e| format!("cannot create {}: {e}", objects.display()))?;
        let old: BTreeMap<String, ObjectMeta> = fs::read(dir.join(MANIFEST))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let mut stats = MirrorStats::default();
        let mut new = BTreeMap::new();
        for (key, listed) in self.list()? {
            if !wanted(&key) {
                continue;
            }
            if !safe_key(&key) {
                stats.skipped_keys.push(key);
                continue;
            }
            stats.listed += 1;
            let file = objects.join(&key);
            if let Some(prev) = old.get(&key)
                && prev.etag == listed.etag
                && prev.size == listed.size
                && prev.last_modified == listed.last_modified
                && file.exists()
            {
                new.insert(key, prev.clone());
                continue;
            }
            let (bytes, meta) = self.get(&key)?;
            if let Some(parent) = file.parent() {
                fs::create_dir_all(parent)
                    .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            }
            let tmp = file.with_file_name(format!(
                ".{}.runbook-tmp",
                file.file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default()
            ));
            fs::write(&tmp, &bytes).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
            fs::rename(&tmp, &file).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
            stats.downloaded += 1;
            new.insert(
                key,
                ObjectMeta {
                    last_modified: listed.last_modified,
                    etag: listed.etag,
                    ..meta
                },
            );
        }
        for key in old.keys().filter(|k| !new.contains_key(*k)) {
            let _ = fs::remove_file(objects.join(key));
            stats.removed += 1;
        }
        let manifest = serde_json::to_vec_pretty(&new).map_err(|e| e.to_string())?;
        fs::write(dir.join(MANIFEST), manifest)
            .map_err(|e| format!("cannot write the manifest: {e}"))?;
        Ok(stats)
    }
}

/// A key that maps to a path inside the tree: no `..`, no empty or absolute parts.
fn safe_key(key: &str) -> bool {
    !key.starts_with('/')
        && key
            .split('/')
            .all(|p| !p.is_empty() && p != "." && p != "..")
}

impl crate::Engine {
    /// For a bucket target's drill: `sample` of the objects picked at random from the tree restored
    /// under `restored` (the snapshot's `objects/` and manifest) are compared with the live
    /// bucket, each fetched and hashed. Returns how many were compared and what differs (an
    /// object gone from the bucket, or whose content changed since the snapshot).
    ///
    /// # Errors
    /// Not a bucket target, no manifest in the restored tree, the bucket unreachable.
    pub fn bucket_sample(
        &self,
        target: &str,
        restored: &Path,
        sample: runbook_config::Sample,
    ) -> crate::Result<(usize, Vec<String>)> {
        use sha2::{Digest, Sha256};
        let t = self.config.target(target)?;
        let runbook_config::TargetKind::Bucket(source) = &t.kind else {
            return Err(crate::Error::Usage {
                target: target.to_string(),
                message: "not a bucket target".into(),
            });
        };
        let fail = |reason: String| crate::Error::Source {
            target: target.to_string(),
            path: source.s3.url.to_string().into(),
            reason,
        };
        let manifest: BTreeMap<String, ObjectMeta> = fs::read(restored.join(MANIFEST))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| fail("the restored tree has no readable manifest".into()))?;
        let bucket = Bucket::open(&source.s3).map_err(fail)?;
        let mut keys: Vec<&String> = manifest.keys().collect();
        let n = sample.of(keys.len());
        let mut picked = Vec::new();
        while picked.len() < n && !keys.is_empty() {
            picked.push(keys.swap_remove(rand::random_range(0..keys.len())));
        }
        let mut problems = Vec::new();
        for key in &picked {
            if !bucket.exists(key).map_err(fail)? {
                problems.push(format!("{key}: gone from the live bucket"));
                continue;
            }
            let (live, _) = bucket.get(key).map_err(fail)?;
            let copy = fs::read(restored.join(OBJECTS).join(key)).unwrap_or_default();
            if Sha256::digest(&live) != Sha256::digest(&copy) {
                problems.push(format!("{key}: content differs from the snapshot"));
            }
        }
        Ok((picked.len(), problems))
    }
}
