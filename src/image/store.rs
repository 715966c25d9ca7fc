//! The content-addressed image store: an OCI image layout (`oci-layout`, `index.json`,
//! `blobs/sha256/<hex>`) so skopeo, umoci and crane can read it, plus husk's own `tmp/` and
//! lock files.
//!
//! * A blob becomes visible only whole: it is streamed into `tmp/`, its size and sha256 checked
//!   while streaming, fsynced, and renamed to its name. A crash leaves files in `tmp/` only.
//! * Pulls hold a shared lock on `lock` for their whole run; `rm` (which garbage-collects blobs
//!   nothing refers to, and clears `tmp/`) holds it exclusively, so it never collects the blobs
//!   of a pull that has not written its index entry yet.
//! * Two pulls of the same blob: each takes an exclusive lock on `tmp/<hex>.lock` before
//!   fetching; the second waits, finds the blob present, and reuses it.
//! * `index.json` is changed under an exclusive lock on `index.lock`, written to a temp file and
//!   renamed.

use super::follow::Follow;
use anyhow::{bail, Context, Result};
use nix::fcntl::{Flock, FlockArg};
use oci_spec::image::{Descriptor, ImageIndex, ImageIndexBuilder, MediaType};
use sha2::{Digest as _, Sha256};
use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// The annotation that names an image in `index.json` (the full normalised reference).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

pub struct Store {
    root: PathBuf,
    _lock: Flock<File>,
}

/// `sha256:<hex>` of `data`.
pub use crate::registry::reference::{hex, sha256_digest};

/// The store when neither `--store` nor `HUSK_STORE` is given: `/var/lib/husk` for root,
/// `$XDG_DATA_HOME/husk` (default `~/.local/share/husk`) otherwise.
pub fn default_dir() -> PathBuf {
    if let Some(s) = std::env::var_os("HUSK_STORE").filter(|s| !s.is_empty()) {
        return PathBuf::from(s);
    }
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/lib/husk");
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|s| !s.is_empty()) {
        return PathBuf::from(x).join("husk");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/".into());
    PathBuf::from(home).join(".local/share/husk")
}

/// The flock `arg` of the file `path` (made if missing, never truncated); errors name the file.
fn lock_file(path: &Path, arg: FlockArg) -> Result<Flock<File>> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("open {}", path.display()))?;
    Flock::lock(f, arg).map_err(|(_, e)| anyhow::anyhow!("lock {}: {e}", path.display()))
}

fn hex_of(digest: &str) -> Result<&str> {
    crate::registry::reference::check_digest(digest).map_err(anyhow::Error::msg)?;
    Ok(&digest["sha256:".len()..])
}

static TMP_SEQ: AtomicU32 = AtomicU32::new(0);

impl Store {
    /// The store at `root` if there is one (its `oci-layout` file), else None: commands that
    /// only read a store never create one.
    pub fn open_existing(root: &Path, exclusive: bool) -> Result<Option<Store>> {
        if !root.join("oci-layout").exists() {
            return Ok(None);
        }
        Store::open(root, exclusive).map(Some)
    }

    /// The store at `root` for reading an image `reference` from it: a missing store is the
    /// image not being there, said with the directory looked in.
    pub fn open_for(root: &Path, exclusive: bool, reference: &str) -> Result<Store> {
        Store::open_existing(root, exclusive)?.with_context(|| {
            format!(
                "image {reference}: not found: there is no image store at {} (husk image pull \
                 or import makes one)",
                root.display()
            )
        })
    }

    /// Runs `f` on the store at `root`, creating the store first if needed. A store this call
    /// created (its directory did not exist) is removed again when `f` fails, so a first pull
    /// or import that fails leaves no empty store behind.
    pub fn with_store<T>(
        root: &Path,
        exclusive: bool,
        f: impl FnOnce(&Store) -> Result<T>,
    ) -> Result<T> {
        let existed = fs::symlink_metadata(root).is_ok();
        let res = Store::open(root, exclusive).and_then(|s| f(&s));
        if res.is_err() && !existed {
            // the lock was dropped with the store; another husk that opened the store meanwhile
            // holds it, and then the store is left to it
            if let Ok(lock) = OpenOptions::new().write(true).open(root.join("lock")) {
                if Flock::lock(lock, FlockArg::LockExclusiveNonblock).is_ok() {
                    let _ = fs::remove_dir_all(root);
                }
            } else {
                let _ = fs::remove_dir_all(root);
            }
        }
        res
    }

    /// Open (creating it if needed) the store at `root`, holding the store lock shared, or
    /// exclusive for operations that collect garbage.
    pub fn open(root: &Path, exclusive: bool) -> Result<Store> {
        fs::create_dir_all(root.join("blobs/sha256"))
            .and_then(|_| fs::create_dir_all(root.join("tmp")))
            .with_context(|| format!("create image store {}", root.display()))?;
        let lock = lock_file(
            &root.join("lock"),
            if exclusive {
                FlockArg::LockExclusive
            } else {
                FlockArg::LockShared
            },
        )?;
        let layout = root.join("oci-layout");
        if !layout.exists() {
            write_atomic(root, &layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        let store = Store {
            root: root.to_path_buf(),
            _lock: lock,
        };
        if !root.join("index.json").exists() {
            store.update_index(|_| Ok(()))?;
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        Ok(self.root.join("blobs/sha256").join(hex_of(digest)?))
    }

    /// Is blob `digest` present with `size` bytes?
    pub fn has_blob(&self, digest: &str, size: u64) -> bool {
        self.blob_path(digest)
            .ok()
            .and_then(|p| fs::metadata(p).ok())
            .is_some_and(|m| m.is_file() && m.len() == size)
    }

    /// Store `size` bytes from `src` as blob `digest`, unless it is present already. `fetch` is
    /// called (under the blob's lock) only when the blob is missing. `what` names the blob in
    /// errors (the reference and role).
    pub fn put_blob<F>(&self, digest: &str, size: u64, what: &str, fetch: F) -> Result<bool>
    where
        F: FnOnce() -> Result<Box<dyn Read + Send + Sync>>,
    {
        let mut once = Some(fetch);
        self.put_blob_resumable(digest, size, what, |_| match once.take() {
            Some(f) => Ok(Fetched {
                reader: f()?,
                from: 0,
            }),
            None => bail!("this source cannot be read again"),
        })
    }

    /// [`Store::put_blob`] from a source that can be asked again from an offset: a stream that
    /// breaks part way (a connection reset, a read timeout) goes on from the bytes already
    /// written (HTTP Range) up to [`MAX_RESUMES`] times; a source that answers from the start
    /// instead (a registry that ignores Range) starts the blob over.
    pub fn put_blob_resumable<F>(
        &self,
        digest: &str,
        size: u64,
        what: &str,
        fetch: F,
    ) -> Result<bool>
    where
        F: FnMut(u64) -> Result<Fetched>,
    {
        self.put_blob_followed(digest, size, what, None, fetch)
    }

    /// [`Store::put_blob_resumable`], its bytes readable as they are written through `follow`
    /// (see [`Follow`]): its reader gets the stored blob when it is present already, ends once
    /// the blob is verified and stored, and fails when it is not.
    pub fn put_blob_followed<F>(
        &self,
        digest: &str,
        size: u64,
        what: &str,
        follow: Option<&Follow>,
        fetch: F,
    ) -> Result<bool>
    where
        F: FnMut(u64) -> Result<Fetched>,
    {
        let r = self.put_blob_locked(digest, size, what, follow, fetch);
        if let (Some(f), Err(e)) = (follow, &r) {
            f.fail(&format!("{e:#}"));
        }
        r
    }

    fn put_blob_locked<F>(
        &self,
        digest: &str,
        size: u64,
        what: &str,
        follow: Option<&Follow>,
        fetch: F,
    ) -> Result<bool>
    where
        F: FnMut(u64) -> Result<Fetched>,
    {
        let hex = hex_of(digest)?;
        let present = || -> Result<bool> {
            if let Some(f) = follow {
                let p = self.blob_path(digest)?;
                let file = File::open(&p).with_context(|| format!("open {}", p.display()))?;
                f.stored(Some(file), size);
            }
            Ok(false)
        };
        if self.has_blob(digest, size) {
            return present();
        }
        let _lock = lock_file(
            &self.root.join("tmp").join(format!("{hex}.lock")),
            FlockArg::LockExclusive,
        )?;
        if self.has_blob(digest, size) {
            return present(); // another pull stored it while we waited
        }
        self.write_verified(digest, size, what, follow, fetch)?;
        Ok(true)
    }

    /// A new empty directory under `tmp/` for files being checked before they become blobs
    /// (`import`); `prune` and `rm` clear what a crash leaves there.
    pub fn staging_dir(&self, what: &str) -> Result<PathBuf> {
        let d = self.root.join("tmp").join(format!(
            "{what}.{}.{}.staging",
            std::process::id(),
            TMP_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir(&d).with_context(|| format!("create {}", d.display()))?;
        Ok(d)
    }

    /// Make `file` (in `tmp/`, fsynced, its sha256 already checked to be `digest` and its size
    /// `size`) the blob `digest`, unless the store has it already.
    pub fn adopt_blob(&self, digest: &str, size: u64, file: &Path) -> Result<()> {
        if self.has_blob(digest, size) {
            return Ok(());
        }
        let dst = self.blob_path(digest)?;
        fs::rename(file, &dst)
            .with_context(|| format!("rename {} to {}", file.display(), dst.display()))
    }

    /// Store `data` as blob `digest` (checked).
    pub fn put_bytes(&self, digest: &str, data: &[u8], what: &str) -> Result<()> {
        if self.has_blob(digest, data.len() as u64) {
            return Ok(());
        }
        self.write_verified(digest, data.len() as u64, what, None, |from| {
            Ok(Fetched {
                reader: Box::new(io::Cursor::new(data[from as usize..].to_vec())),
                from,
            })
        })
    }

    fn write_verified(
        &self,
        digest: &str,
        size: u64,
        what: &str,
        follow: Option<&Follow>,
        mut fetch: impl FnMut(u64) -> Result<Fetched>,
    ) -> Result<()> {
        let hex = hex_of(digest)?;
        let tmp = self.root.join("tmp").join(format!(
            "{hex}.{}.{}.partial",
            std::process::id(),
            TMP_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| -> Result<()> {
            let mut f = File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
            if let Some(fl) = follow {
                fl.begin(File::open(&tmp).with_context(|| format!("open {}", tmp.display()))?);
            }
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 256 << 10];
            let mut got: u64 = 0;
            let mut src = fetch(0)?.reader;
            let mut resumes = 0;
            loop {
                let n = match src.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if resumes < MAX_RESUMES && got < size => {
                        resumes += 1;
                        let again = fetch(got).with_context(|| {
                            format!(
                                "{what} {digest}: read failed after {got} of {size} bytes: {e}; \
                                 asking again from there"
                            )
                        })?;
                        if again.from == 0 && got > 0 {
                            // the whole blob again: start over
                            if let Some(fl) = follow {
                                fl.restart();
                            }
                            f.set_len(0)?;
                            f.seek(io::SeekFrom::Start(0))?;
                            hasher = Sha256::new();
                            got = 0;
                        } else if again.from != got {
                            bail!(
                                "{what} {digest}: asked again from byte {got}, the source \
                                 answered from byte {}",
                                again.from
                            );
                        }
                        src = again.reader;
                        continue;
                    }
                    Err(e) => {
                        bail!("{what} {digest}: read failed after {got} of {size} bytes: {e}")
                    }
                };
                got += n as u64;
                if got > size {
                    bail!("{what} {digest}: more than the {size} bytes its descriptor says");
                }
                hasher.update(&buf[..n]);
                f.write_all(&buf[..n])
                    .with_context(|| format!("{what} {digest}: write {}", tmp.display()))?;
                if let Some(fl) = follow {
                    fl.wrote(n as u64);
                }
            }
            if got != size {
                bail!("{what} {digest}: truncated: got {got} of {size} bytes");
            }
            let actual = format!("sha256:{}", hex_str(&hasher.finalize()));
            if actual != digest {
                bail!("{what}: digest mismatch: expected {digest}, content is {actual}");
            }
            f.sync_all()
                .with_context(|| format!("fsync {}", tmp.display()))?;
            let dst = self.blob_path(digest)?;
            fs::rename(&tmp, &dst)
                .with_context(|| format!("rename {} to {}", tmp.display(), dst.display()))?;
            if let Some(fl) = follow {
                fl.stored(None, size);
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Read a small blob (manifest, config) whole, checking its digest; at most `limit` bytes.
    pub fn read_blob(&self, digest: &str, limit: u64) -> Result<Vec<u8>> {
        let p = self.blob_path(digest)?;
        let mut data = Vec::new();
        File::open(&p)
            .with_context(|| format!("blob {digest} is not in the store {}", self.root.display()))?
            .take(limit + 1)
            .read_to_end(&mut data)
            .with_context(|| format!("read {}", p.display()))?;
        if data.len() as u64 > limit {
            bail!("blob {digest} is larger than the limit of {limit} bytes");
        }
        let actual = sha256_digest(&data);
        if actual != digest {
            bail!("blob {digest} in the store is corrupt: its content is {actual}");
        }
        Ok(data)
    }

    pub fn index(&self) -> Result<ImageIndex> {
        let p = self.root.join("index.json");
        let text = fs::read(&p).with_context(|| format!("read {}", p.display()))?;
        serde_json::from_slice(&text).with_context(|| format!("parse {}", p.display()))
    }

    /// Change the manifest list of `index.json` under the index lock; the file is replaced whole.
    pub fn update_index<F>(&self, change: F) -> Result<()>
    where
        F: FnOnce(&mut Vec<Descriptor>) -> Result<()>,
    {
        let _lock = lock_file(&self.root.join("index.lock"), FlockArg::LockExclusive)?;
        let mut manifests = if self.root.join("index.json").exists() {
            self.index()?.manifests().clone()
        } else {
            Vec::new()
        };
        change(&mut manifests)?;
        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(manifests)
            .build()
            .context("build index.json")?;
        let text = serde_json::to_vec_pretty(&index).context("serialise index.json")?;
        write_atomic(&self.root, &self.root.join("index.json"), &text)
    }

    /// The index entry named `name` (a normalised reference).
    pub fn find(&self, name: &str) -> Result<Option<Descriptor>> {
        Ok(self
            .index()?
            .manifests()
            .iter()
            .find(|d| ref_name(d) == Some(name))
            .cloned())
    }

    /// Delete every blob no index entry reaches and everything in `tmp/`. Needs the exclusive
    /// store lock (see [`Store::open`]). Returns the number of blobs removed.
    pub fn collect_garbage(&self) -> Result<usize> {
        Ok(self.collect_garbage_report()?.blobs)
    }

    /// [`Store::collect_garbage`], telling what went: blobs, their bytes, and the bytes of what
    /// was left in `tmp/` (partial blobs, import staging dirs of a killed command).
    pub fn collect_garbage_report(&self) -> Result<GcReport> {
        let mut keep: HashSet<String> = HashSet::new();
        for d in self.index()?.manifests() {
            keep.insert(d.digest().to_string());
            // an index entry keeps every platform's manifest and blobs
            if is_index_type(d.media_type().as_ref()) {
                if let Ok(i) = self.read_image_index(d.digest().as_ref()) {
                    keep.extend(i.manifests().iter().map(|m| m.digest().to_string()));
                }
            }
            for (md, m) in self.manifests_of(d).unwrap_or_default() {
                keep.insert(md.digest().to_string());
                keep.insert(m.config().digest().to_string());
                for l in m.layers() {
                    keep.insert(l.digest().to_string());
                }
            }
        }
        let mut report = GcReport::default();
        let dir = self.root.join("blobs/sha256");
        for e in fs::read_dir(&dir).with_context(|| format!("read {}", dir.display()))? {
            let e = e?;
            let name = format!("sha256:{}", e.file_name().to_string_lossy());
            if !keep.contains(&name) {
                let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                fs::remove_file(e.path())
                    .with_context(|| format!("remove {}", e.path().display()))?;
                report.blobs += 1;
                report.blob_bytes += size;
            }
        }
        let tmp = self.root.join("tmp");
        for e in fs::read_dir(&tmp).with_context(|| format!("read {}", tmp.display()))? {
            let p = e?.path();
            let size = tree_size(&p);
            let gone = match fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => fs::remove_dir_all(&p).is_ok(),
                _ => fs::remove_file(&p).is_ok(),
            };
            if gone {
                report.tmp_bytes += size;
            }
        }
        Ok(report)
    }

    pub fn read_manifest(&self, digest: &str) -> Result<oci_spec::image::ImageManifest> {
        let data = self.read_blob(digest, crate::registry::MAX_MANIFEST)?;
        serde_json::from_slice(&data).with_context(|| format!("parse manifest {digest}"))
    }

    pub fn read_image_index(&self, digest: &str) -> Result<ImageIndex> {
        let data = self.read_blob(digest, crate::registry::MAX_MANIFEST)?;
        serde_json::from_slice(&data).with_context(|| format!("parse image index {digest}"))
    }

    /// The image manifests an `index.json` entry stands for: the entry itself (one platform),
    /// or every manifest of a multi-platform image's index (`pull --all-platforms`, `import
    /// --all-platforms`), each with its descriptor.
    pub fn manifests_of(
        &self,
        d: &Descriptor,
    ) -> Result<Vec<(Descriptor, oci_spec::image::ImageManifest)>> {
        let digest = d.digest().to_string();
        if !is_index_type(d.media_type().as_ref()) {
            return Ok(vec![(d.clone(), self.read_manifest(&digest)?)]);
        }
        let index = self.read_image_index(&digest)?;
        index
            .manifests()
            .iter()
            .map(|m| {
                let md = m.digest().to_string();
                let mt = m.media_type().to_string();
                if is_index_type(&mt) {
                    bail!("image index {digest}: entry {md} is itself an index ({mt}); husk keeps one level");
                }
                let manifest = self
                    .read_manifest(&md)
                    .with_context(|| format!("image index {digest}: manifest {md}"))?;
                Ok((m.clone(), manifest))
            })
            .collect()
    }
}

/// An OCI image index or a Docker manifest list (a multi-platform image).
pub fn is_index_type(media_type: &str) -> bool {
    media_type == crate::registry::MEDIA_OCI_INDEX
        || media_type == crate::registry::MEDIA_DOCKER_LIST
}

/// How often one blob's transfer is taken up again after its stream broke.
pub const MAX_RESUMES: u32 = 5;

/// A blob's bytes from `from` on (0: the whole blob).
pub struct Fetched {
    pub reader: Box<dyn Read + Send + Sync>,
    pub from: u64,
}

/// What garbage collection removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    pub blobs: usize,
    pub blob_bytes: u64,
    /// Bytes of temp files and staging dirs removed from `tmp/`.
    pub tmp_bytes: u64,
    /// Layer snapshots no image and no bundle uses any more, and their bytes (filled in by
    /// `image::collect_garbage`).
    pub snapshots: usize,
    pub snapshot_bytes: u64,
}

/// Bytes of the regular files at or under `p` (symlinks not followed).
pub(crate) fn tree_size(p: &Path) -> u64 {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::read_dir(p)
            .map(|it| it.flatten().map(|e| tree_size(&e.path())).sum())
            .unwrap_or(0),
        Ok(m) if m.is_file() => m.len(),
        _ => 0,
    }
}

fn hex_str(b: &[u8]) -> String {
    hex(b)
}

pub fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations()
        .as_ref()
        .and_then(|a| a.get(REF_NAME))
        .map(String::as_str)
}

/// Write `path` (inside `root`) via a temp file in `root/tmp` and a rename.
fn write_atomic(root: &Path, path: &Path, data: &[u8]) -> Result<()> {
    let tmp = root.join("tmp").join(format!(
        "meta.{}.{}.partial",
        std::process::id(),
        TMP_SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let r = (|| -> io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r.with_context(|| format!("write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that fails after its first `n` bytes.
    struct Breaks(io::Cursor<Vec<u8>>, usize);
    impl Read for Breaks {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.1 == 0 {
                return Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset"));
            }
            let k = buf.len().min(self.1);
            let n = self.0.read(&mut buf[..k])?;
            self.1 -= n;
            Ok(n)
        }
    }

    #[test]
    fn a_broken_blob_stream_is_taken_up_again() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path(), false).unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let d = sha256_digest(&data);
        // resumed from where it broke, twice
        let mut asked = Vec::new();
        s.put_blob_resumable(&d, data.len() as u64, "layer", |from| {
            asked.push(from);
            Ok(Fetched {
                reader: Box::new(Breaks(
                    io::Cursor::new(data[from as usize..].to_vec()),
                    30_000,
                )),
                from,
            })
        })
        .unwrap();
        assert_eq!(asked, [0, 30_000, 60_000, 90_000]);
        assert_eq!(s.read_blob(&d, 1 << 20).unwrap(), data);
        // a source that starts over: the blob starts over
        let data2: Vec<u8> = data.iter().map(|b| b ^ 0x55).collect();
        let d2 = sha256_digest(&data2);
        let mut calls = 0;
        s.put_blob_resumable(&d2, data2.len() as u64, "layer", |_| {
            calls += 1;
            let cut = if calls == 1 { 50_000 } else { usize::MAX };
            Ok(Fetched {
                reader: Box::new(Breaks(io::Cursor::new(data2.clone()), cut)),
                from: 0,
            })
        })
        .unwrap();
        assert_eq!(s.read_blob(&d2, 1 << 20).unwrap(), data2);
        // a source that keeps breaking: an error after MAX_RESUMES, nothing stored
        let data3 = vec![7u8; 1000];
        let d3 = sha256_digest(&data3);
        let mut n = 0;
        let e = s
            .put_blob_resumable(&d3, 1000, "layer", |from| {
                n += 1;
                Ok(Fetched {
                    reader: Box::new(Breaks(io::Cursor::new(data3[from as usize..].to_vec()), 1)),
                    from,
                })
            })
            .unwrap_err();
        assert_eq!(n, 1 + MAX_RESUMES as usize);
        assert!(format!("{e:#}").contains("read failed after"), "{e:#}");
        assert!(!s.has_blob(&d3, 1000));
        // a source that answers from another offset than asked: refused
        let e = s
            .put_blob_resumable(&d3, 1000, "layer", |from| {
                Ok(Fetched {
                    reader: Box::new(Breaks(io::Cursor::new(data3.clone()), 10)),
                    from: if from == 0 { 0 } else { from + 1 },
                })
            })
            .unwrap_err();
        assert!(format!("{e:#}").contains("answered from byte 11"), "{e:#}");
    }

    #[test]
    fn blobs_are_verified_before_they_are_visible() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path(), false).unwrap();
        let data = b"hello blob".to_vec();
        let d = sha256_digest(&data);
        // wrong content under the name
        let bad = sha256_digest(b"other");
        let e = s
            .put_blob(&bad, data.len() as u64, "layer", || {
                Ok(Box::new(io::Cursor::new(data.clone())))
            })
            .unwrap_err();
        assert!(format!("{e:#}").contains("digest mismatch"), "{e:#}");
        // truncated and overlong
        let e = s
            .put_blob(&d, 100, "layer", || {
                Ok(Box::new(io::Cursor::new(data.clone())))
            })
            .unwrap_err();
        assert!(
            format!("{e:#}").contains("truncated: got 10 of 100"),
            "{e:#}"
        );
        let e = s
            .put_blob(&d, 3, "layer", || {
                Ok(Box::new(io::Cursor::new(data.clone())))
            })
            .unwrap_err();
        assert!(format!("{e:#}").contains("more than the 3 bytes"), "{e:#}");
        assert_eq!(
            fs::read_dir(t.path().join("blobs/sha256")).unwrap().count(),
            0
        );
        let partial = fs::read_dir(t.path().join("tmp"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .to_string_lossy()
                    .ends_with(".partial")
            })
            .count();
        assert_eq!(partial, 0);
        // good, then reused without fetching
        assert!(s
            .put_blob(&d, data.len() as u64, "layer", || Ok(Box::new(
                io::Cursor::new(data.clone())
            )))
            .unwrap());
        assert!(!s
            .put_blob(&d, data.len() as u64, "layer", || panic!("fetched twice"))
            .unwrap());
        assert_eq!(s.read_blob(&d, 100).unwrap(), data);
        // garbage collection drops it (nothing refers to it)
        drop(s);
        let s = Store::open(t.path(), true).unwrap();
        assert_eq!(s.collect_garbage().unwrap(), 1);
        assert!(!s.has_blob(&d, data.len() as u64));
        assert!(s.index().unwrap().manifests().is_empty());
    }
}
