//! `husk image export REF FILE` and `husk image import FILE [REF]` (FILE `-`: standard output
//! or input).
//!
//! Export writes an OCI archive: a tar of an OCI image layout (`oci-layout`, `index.json` with
//! the image's full reference in `org.opencontainers.image.ref.name`, `blobs/sha256/…`), as
//! skopeo's and podman's `oci-archive:` read it. Import reads that, or a `docker save` tarball
//! (`manifest.json`, a config JSON and layer tars, identical layers as symlinks), plain or
//! gzipped. Every entry is streamed into a staging directory under the store's `tmp/` with its
//! sha256 computed on the way; only when every image in the archive checks out (names, media
//! types, sizes, digests, diff_ids of uncompressed Docker layers) do the files become blobs and
//! the names index entries. A bad archive leaves the store as it was.

use super::store::{self, ref_name, Store, REF_NAME};
use super::{check_layer_types, lookup_entry, Compression, MAX_CONFIG};
use crate::registry::{self, reference::Reference};
use anyhow::{bail, Context, Result};
use flate2::read::GzDecoder;
use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

/// `containerd`'s annotation for the full image name (`ctr export`, `docker save` since 25).
const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// JSON documents of an archive (index.json, manifest.json, configs) larger than this are
/// refused.
const MAX_JSON: u64 = 8 << 20;

/// Write `text`'s image to `file` as an OCI archive (via a temp file renamed at the end).
pub fn export(store: &Store, text: &str, file: &Path) -> Result<()> {
    let (name, desc) = lookup_entry(store, text)?;
    let digest = desc.digest().to_string();
    let what = if name.is_empty() { &digest } else { &name };
    // the entry (a manifest, or a multi-platform image's index), then each image's blobs
    let mut blobs = vec![desc.digest().to_string()];
    for (md, m) in store.manifests_of(&desc)? {
        let ds = std::iter::once(md.digest())
            .chain(std::iter::once(m.config().digest()))
            .chain(m.layers().iter().map(|l| l.digest()));
        for d in ds {
            let d = d.to_string();
            if !blobs.contains(&d) {
                blobs.push(d);
            }
        }
    }
    let mut entry = desc.clone();
    if name.is_empty() {
        entry.set_annotations(None);
    } else {
        entry.set_annotations(Some(HashMap::from([(REF_NAME.to_string(), name.clone())])));
    }
    let index = oci_spec::image::ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![entry])
        .build()
        .context("build index.json")?;
    let index = serde_json::to_vec(&index)?;
    if file == Path::new("-") {
        if nix::unistd::isatty(io::stdout()).unwrap_or(false) {
            bail!("export {what}: standard output is a terminal; give a file or redirect it");
        }
        let out = io::BufWriter::with_capacity(256 << 10, io::stdout().lock());
        let mut out = write_archive(store, what, &index, &blobs, out, "standard output")?;
        return out
            .flush()
            .with_context(|| format!("export {what}: write standard output"));
    }
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let base = file
        .file_name()
        .ok_or_else(|| anyhow::anyhow!("export {what}: {} is not a file name", file.display()))?
        .to_string_lossy()
        .into_owned();
    let tmp = dir.join(format!(".{base}.{}.partial", std::process::id()));
    let result = (|| -> Result<()> {
        let f = File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
        let w = io::BufWriter::with_capacity(256 << 10, f);
        let shown = tmp.display().to_string();
        let w = write_archive(store, what, &index, &blobs, w, &shown)?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        std::fs::rename(&tmp, file)
            .with_context(|| format!("rename {} to {}", tmp.display(), file.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The tar of an OCI layout: `oci-layout`, `index.json`, `blobs/sha256/…` (each blob re-hashed
/// as it is copied). Returns the writer.
fn write_archive<W: Write>(
    store: &Store,
    what: &str,
    index: &[u8],
    blobs: &[String],
    w: W,
    dest: &str,
) -> Result<W> {
    let mut t = tar::Builder::new(w);
    let put = |t: &mut tar::Builder<W>, path: &str, size: u64, r: &mut dyn Read| {
        let mut h = tar::Header::new_ustar();
        let dir = path.ends_with('/');
        h.set_size(size);
        h.set_mode(if dir { 0o755 } else { 0o644 });
        h.set_mtime(0);
        h.set_entry_type(if dir {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        });
        t.append_data(&mut h, path, r)
            .with_context(|| format!("export {what}: write {path} to {dest}"))
    };
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    put(&mut t, "oci-layout", layout.len() as u64, &mut &layout[..])?;
    put(&mut t, "index.json", index.len() as u64, &mut &index[..])?;
    put(&mut t, "blobs/", 0, &mut io::empty())?;
    put(&mut t, "blobs/sha256/", 0, &mut io::empty())?;
    for d in blobs {
        let p = store.blob_path(d)?;
        let f = File::open(&p)
            .with_context(|| format!("export {what}: blob {d} is not in the store"))?;
        let size = f.metadata()?.len();
        let mut r = Sha256Reader::new(f);
        put(&mut t, &format!("blobs/sha256/{}", &d[7..]), size, &mut r)?;
        if r.digest() != *d {
            bail!(
                "export {what}: blob {d} in the store is corrupt: its content is {}",
                r.digest()
            );
        }
    }
    t.into_inner()
        .with_context(|| format!("export {what}: finish the tar in {dest}"))
}

struct Sha256Reader<R> {
    inner: R,
    hasher: Sha256,
    n: u64,
}

impl<R> Sha256Reader<R> {
    fn new(inner: R) -> Self {
        Sha256Reader {
            inner,
            hasher: Sha256::new(),
            n: 0,
        }
    }

    fn digest(&self) -> String {
        format!("sha256:{}", store::hex(&self.hasher.clone().finalize()))
    }
}

impl<R: Read> Read for Sha256Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }
}

/// A regular file of the archive, staged: where, its sha256 and size.
struct Staged {
    path: PathBuf,
    digest: String,
    size: u64,
}

/// Removes the staging directory whatever happens.
struct StagingDir(PathBuf);

impl Drop for StagingDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An archive entry's name, cleaned: no leading `./` or `/`-only names, no empty, `.` or `..`
/// components. `None` for a name that is not acceptable.
pub(crate) fn clean_name(raw: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(raw).ok()?;
    if s.starts_with('/') {
        return None;
    }
    let mut parts = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => continue,
            ".." => return None,
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return None;
    }
    Some(parts.join("/"))
}

/// A link target in the archive: a symlink's relative to its entry's directory, a hardlink's
/// from the archive's top. `None` when it leaves the archive.
pub(crate) fn link_target(entry: &str, target: &[u8], symlink: bool) -> Option<String> {
    let t = std::str::from_utf8(target).ok()?;
    if t.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = if symlink {
        let mut p: Vec<&str> = entry.split('/').collect();
        p.pop();
        p
    } else {
        Vec::new()
    };
    for c in t.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// The archive's files, staged, and its links.
struct Contents {
    files: HashMap<String, Staged>,
    links: HashMap<String, String>,
    _dir: StagingDir,
}

impl Contents {
    fn get(&self, name: &str) -> Option<&Staged> {
        let mut n = name.to_string();
        for _ in 0..16 {
            if let Some(s) = self.files.get(&n) {
                return Some(s);
            }
            n = self.links.get(&n)?.clone();
        }
        None
    }

    fn read_json(&self, name: &str, what: &str) -> Result<Vec<u8>> {
        let s = self
            .get(name)
            .ok_or_else(|| anyhow::anyhow!("{what}: {name} is missing"))?;
        if s.size > MAX_JSON {
            bail!("{what}: {name} is {} bytes, more than {MAX_JSON}", s.size);
        }
        std::fs::read(&s.path).with_context(|| format!("{what}: read {name}"))
    }

    /// The staged blob `digest` (`blobs/sha256/<hex>`) of `size` bytes.
    fn blob(&self, digest: &str, size: u64, role: &str, what: &str) -> Result<&Staged> {
        registry::reference::check_digest(digest).map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
        let name = format!("blobs/sha256/{}", &digest[7..]);
        let s = self
            .get(&name)
            .ok_or_else(|| anyhow::anyhow!("{what}: {role} {digest} is missing ({name})"))?;
        if s.digest != digest {
            bail!(
                "{what}: {name}: digest mismatch: its content is {}",
                s.digest
            );
        }
        if s.size != size {
            bail!(
                "{what}: {role} {digest} is {} bytes, its descriptor says {size}",
                s.size
            );
        }
        Ok(s)
    }

    /// The manifest or index (`role`) blob `digest`, present with its descriptor's `size`, at
    /// most `registry::MAX_MANIFEST` bytes and parsed as `T` (an image manifest or index).
    fn manifest_blob<T: serde::de::DeserializeOwned>(
        &self,
        digest: &str,
        size: u64,
        role: &str,
        what: &str,
    ) -> Result<(T, &Staged)> {
        let s = self.blob(digest, size, role, what)?;
        if s.size > registry::MAX_MANIFEST {
            bail!(
                "{what}: {role} {digest} is larger than {}",
                registry::MAX_MANIFEST
            );
        }
        let v = serde_json::from_slice(&std::fs::read(&s.path)?)
            .with_context(|| format!("{what}: {role} {digest} is not an image {role}"))?;
        Ok((v, s))
    }
}

fn read_archive(
    store: &Store,
    file: &Path,
    what: &str,
    progress: &super::progress::Progress,
) -> Result<Contents> {
    let f: Box<dyn Read> = if file == Path::new("-") {
        Box::new(io::stdin().lock())
    } else {
        Box::new(File::open(file).with_context(|| format!("open {}", file.display()))?)
    };
    let mut r = BufReader::with_capacity(256 << 10, f);
    let magic = r
        .fill_buf()
        .with_context(|| format!("read {}", file.display()))?;
    let src: Box<dyn Read> = if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(GzDecoder::new(r))
    } else {
        Box::new(r)
    };
    let dir = StagingDir(store.staging_dir("import")?);
    let mut files: HashMap<String, Staged> = HashMap::new();
    let mut links: HashMap<String, String> = HashMap::new();
    let mut archive = tar::Archive::new(src);
    let entries = archive
        .entries()
        .with_context(|| format!("{what}: not a tar archive"))?;
    let mut seq = 0u64;
    let mut any = false;
    for e in entries {
        let mut e = e.with_context(|| format!("{what}: not a valid tar archive"))?;
        any = true;
        let kind = e.header().entry_type();
        if kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            continue;
        }
        let raw = e.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let name = clean_name(&raw).ok_or_else(|| {
            anyhow::anyhow!(
                "{what}: entry name {shown:?} is not allowed (absolute, empty, `..` or not UTF-8)"
            )
        })?;
        if files.contains_key(&name) || links.contains_key(&name) {
            bail!("{what}: entry {name:?} appears twice");
        }
        match kind {
            tar::EntryType::Directory => {}
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                seq += 1;
                let path = dir.0.join(seq.to_string());
                let mut out =
                    File::create(&path).with_context(|| format!("create {}", path.display()))?;
                let bar = progress.entry(&name, e.size());
                let mut h = Sha256Reader::new(bar.reader(&mut e));
                io::copy(&mut h, &mut out)
                    .with_context(|| format!("{what}: entry {name}: read or stage"))?;
                out.sync_all()?;
                let digest = h.digest();
                let size = h.n;
                bar.finish_staged(&digest);
                if let Some(hex) = name.strip_prefix("blobs/sha256/") {
                    if digest != format!("sha256:{hex}") {
                        bail!("{what}: {name}: digest mismatch: its content is {digest}");
                    }
                }
                files.insert(name, Staged { path, digest, size });
            }
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = e.link_name_bytes().unwrap_or_default().into_owned();
                let sym = kind == tar::EntryType::Symlink;
                let t = link_target(&name, &target, sym).ok_or_else(|| {
                    anyhow::anyhow!(
                        "{what}: link {name} -> {:?} leaves the archive",
                        String::from_utf8_lossy(&target)
                    )
                })?;
                links.insert(name, t);
            }
            other => bail!("{what}: entry {name}: type {other:?} has no place in an image archive"),
        }
    }
    if !any {
        bail!("{what}: empty, or not a tar archive");
    }
    Ok(Contents {
        files,
        links,
        _dir: dir,
    })
}

/// One image found in an archive, checked, ready to be stored.
struct Found {
    names: Vec<String>,
    manifest_digest: String,
    media_type: String,
    /// The manifest's bytes when husk wrote it (a docker save tarball has none).
    manifest_bytes: Option<Vec<u8>>,
    platform: Option<oci_spec::image::Platform>,
    /// (digest, size, staged file)
    blobs: Vec<(String, u64, PathBuf)>,
}

/// `husk image import FILE [REF]`: returns (name, manifest digest) per name stored. With
/// `all_platforms`, a multi-platform image is kept whole (its index is the store entry, every
/// platform's manifest and blobs stored); else its manifest for `platform` is. Each archive
/// entry being staged is shown as `progress` says (json: an `image` event per name at the end,
/// or an `error` event).
pub fn import(
    store: &Store,
    file: &Path,
    name: Option<&str>,
    platform: &super::PlatformSpec,
    all_platforms: bool,
    progress: super::progress::Mode,
) -> Result<Vec<(String, String)>> {
    let shown = super::progress::Progress::new(progress);
    let r = import_shown(store, file, name, platform, all_platforms, &shown);
    match &r {
        Ok(out) => {
            for (n, d) in out {
                shown.image_done("import", n, d);
            }
        }
        Err(e) => shown.failed(e),
    }
    r
}

fn import_shown(
    store: &Store,
    file: &Path,
    name: Option<&str>,
    platform: &super::PlatformSpec,
    all_platforms: bool,
    shown: &super::progress::Progress,
) -> Result<Vec<(String, String)>> {
    let what = if file == Path::new("-") {
        "import (standard input)".to_string()
    } else {
        format!("import {}", file.display())
    };
    let name = name
        .map(|n| Reference::parse(n).map(|r| r.to_string()))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let c = read_archive(store, file, &what, shown)?;
    let found = if c.get("index.json").is_some() {
        oci_images(&c, &what, name.as_deref(), platform, all_platforms)?
    } else if c.get("manifest.json").is_some() {
        docker_images(&c, &what, name.as_deref())?
    } else {
        bail!(
            "{what}: neither an OCI archive (no index.json) nor a docker save tarball \
             (no manifest.json)"
        );
    };
    // everything checked: blobs in, then the names
    let mut out = Vec::new();
    let mut descs = Vec::new();
    for f in &found {
        for (d, size, path) in &f.blobs {
            store.adopt_blob(d, *size, path)?;
        }
        if let Some(b) = &f.manifest_bytes {
            store.put_bytes(&f.manifest_digest, b, &format!("{what}: manifest"))?;
        }
        let mut desc = Descriptor::new(
            MediaType::from(f.media_type.as_str()),
            store.blob_path(&f.manifest_digest)?.metadata()?.len(),
            f.manifest_digest
                .parse::<oci_spec::image::Digest>()
                .context("manifest digest")?,
        );
        desc.set_platform(f.platform.clone());
        for n in &f.names {
            let mut d = desc.clone();
            d.set_annotations(Some(HashMap::from([(REF_NAME.to_string(), n.clone())])));
            descs.push(d);
            out.push((n.clone(), f.manifest_digest.clone()));
        }
    }
    store.update_index(|m| {
        for d in descs {
            m.retain(|x| ref_name(x) != ref_name(&d));
            m.push(d);
        }
        Ok(())
    })?;
    Ok(out)
}

/// The config (checked to be an image config whose diff_ids match the layers) as a platform.
fn check_config(
    c: &Contents,
    m: &ImageManifest,
    what: &str,
) -> Result<(ImageConfiguration, PathBuf)> {
    let cd = m.config().digest().to_string();
    let s = c.blob(&cd, m.config().size(), "config", what)?;
    if s.size > MAX_CONFIG {
        bail!(
            "{what}: config {cd} is {} bytes, more than {MAX_CONFIG}",
            s.size
        );
    }
    let bytes = std::fs::read(&s.path)?;
    let cfg: ImageConfiguration = serde_json::from_slice(&bytes)
        .with_context(|| format!("{what}: config {cd} is not an image config"))?;
    if cfg.rootfs().diff_ids().len() != m.layers().len() {
        bail!(
            "{what}: config {cd} lists {} diff_ids, the manifest {} layers",
            cfg.rootfs().diff_ids().len(),
            m.layers().len()
        );
    }
    Ok((cfg, s.path.clone()))
}

fn platform_of(cfg: &ImageConfiguration) -> Option<oci_spec::image::Platform> {
    oci_spec::image::PlatformBuilder::default()
        .os(cfg.os().clone())
        .architecture(cfg.architecture().clone())
        .build()
        .ok()
}

/// A name from an index entry's annotations: containerd's full name, else `ref.name` when it
/// is more than a bare tag (`latest`, as skopeo and umoci write, names no repository).
fn annotated_name(d: &Descriptor) -> Option<String> {
    let a = d.annotations().as_ref()?;
    if let Some(n) = a.get(CONTAINERD_NAME) {
        return Reference::parse(n).ok().map(|r| r.to_string());
    }
    let n = a.get(REF_NAME)?;
    if !n.contains('/') && !n.contains(':') {
        return None;
    }
    Reference::parse(n).ok().map(|r| r.to_string())
}

fn oci_images(
    c: &Contents,
    what: &str,
    name: Option<&str>,
    platform: &super::PlatformSpec,
    all_platforms: bool,
) -> Result<Vec<Found>> {
    if c.get("oci-layout").is_some() {
        let v: serde_json::Value = serde_json::from_slice(&c.read_json("oci-layout", what)?)
            .with_context(|| format!("{what}: oci-layout is not JSON"))?;
        if v["imageLayoutVersion"] != "1.0.0" {
            bail!(
                "{what}: oci-layout: imageLayoutVersion {} is not 1.0.0",
                v["imageLayoutVersion"]
            );
        }
    }
    let index: ImageIndex = serde_json::from_slice(&c.read_json("index.json", what)?)
        .with_context(|| format!("{what}: index.json is not an OCI image index"))?;
    let entries = index.manifests();
    check_count(what, "index.json", entries.len(), name)?;
    let mut out = Vec::new();
    for outer in entries {
        let omt = outer.media_type().to_string();
        let keep_index = all_platforms && store::is_index_type(&omt);
        let (digest, mt, platform, blobs) = if keep_index {
            // the whole multi-platform image: the index, and every platform's image
            let digest = outer.digest().to_string();
            let (index, s): (ImageIndex, _) =
                c.manifest_blob(&digest, outer.size(), "index", what)?;
            if index.manifests().is_empty() {
                bail!("{what}: index {digest} lists no manifest");
            }
            let mut blobs = vec![(digest.clone(), s.size, s.path.clone())];
            for d in index.manifests() {
                let blobs_of = if super::is_attestation(d) {
                    attestation_blobs(c, d, what)?
                } else {
                    check_image(c, d, what)?.1
                };
                for b in blobs_of {
                    if !blobs.iter().any(|x| x.0 == b.0) {
                        blobs.push(b);
                    }
                }
            }
            (digest, omt, None, blobs)
        } else {
            let d = &platform_manifest(c, outer, what, platform)?;
            let (cfg, blobs) = check_image(c, d, what)?;
            let p = d.platform().clone().or_else(|| platform_of(&cfg));
            (d.digest().to_string(), d.media_type().to_string(), p, blobs)
        };
        let names = match name.map(String::from).or_else(|| annotated_name(outer)) {
            Some(n) => vec![n],
            None => {
                let tag = outer
                    .annotations()
                    .as_ref()
                    .and_then(|a| a.get(REF_NAME))
                    .map(|t| format!(" (its ref.name {t:?} is a tag only)"))
                    .unwrap_or_default();
                bail!(
                    "{what}: image {digest} has no name{tag}: give one, \
                     husk image import FILE NAME"
                );
            }
        };
        out.push(Found {
            names,
            manifest_digest: digest,
            media_type: mt,
            manifest_bytes: None,
            platform,
            blobs,
        });
    }
    Ok(out)
}

/// A build attestation of a multi-platform image (see [`super::is_attestation`]): its
/// manifest and blobs must be there with their descriptors' sizes; it is never unpacked, so
/// its media types are not checked.
fn attestation_blobs(
    c: &Contents,
    d: &Descriptor,
    what: &str,
) -> Result<Vec<(String, u64, PathBuf)>> {
    let digest = d.digest().to_string();
    let (m, s): (ImageManifest, _) = c.manifest_blob(&digest, d.size(), "manifest", what)?;
    let mut blobs = vec![(digest, s.size, s.path.clone())];
    for b in std::iter::once(m.config()).chain(m.layers().iter()) {
        let bd = b.digest().to_string();
        let s = c.blob(&bd, b.size(), "blob", what)?;
        blobs.push((bd, s.size, s.path.clone()));
    }
    Ok(blobs)
}

/// One image manifest of the archive (`d`), checked: its media type, size, layer types, config
/// and every blob present with its descriptor's size. Returns the config and the staged blobs
/// (the manifest first).
#[allow(clippy::type_complexity)]
fn check_image(
    c: &Contents,
    d: &Descriptor,
    what: &str,
) -> Result<(ImageConfiguration, Vec<(String, u64, PathBuf)>)> {
    let digest = d.digest().to_string();
    let mt = d.media_type().to_string();
    if mt != registry::MEDIA_OCI_MANIFEST && mt != registry::MEDIA_DOCKER_MANIFEST {
        bail!(
            "{what}: manifest {digest} has media type {mt:?}; expected an OCI or Docker \
             image manifest"
        );
    }
    let (m, s): (ImageManifest, _) = c.manifest_blob(&digest, d.size(), "manifest", what)?;
    check_layer_types(&m, &format!("{what}: manifest {digest}"))?;
    let (cfg, cfg_path) = check_config(c, &m, what)?;
    let mut blobs = vec![(digest.clone(), s.size, s.path.clone())];
    blobs.push((m.config().digest().to_string(), m.config().size(), cfg_path));
    for l in m.layers() {
        let ld = l.digest().to_string();
        let s = c.blob(&ld, l.size(), "layer", what)?;
        blobs.push((ld, s.size, s.path.clone()));
    }
    Ok((cfg, blobs))
}

/// An index.json entry that is itself an index (a multi-platform image, as `skopeo copy --all`
/// or Docker's containerd store write): its manifest for `host` (`--platform`, by default the
/// host's), whose blobs the archive must hold. Any other entry as it is.
fn platform_manifest(
    c: &Contents,
    d: &Descriptor,
    what: &str,
    host: &super::PlatformSpec,
) -> Result<Descriptor> {
    let mt = d.media_type().to_string();
    if mt != registry::MEDIA_OCI_INDEX && mt != registry::MEDIA_DOCKER_LIST {
        return Ok(d.clone());
    }
    let digest = d.digest().to_string();
    let (index, _): (ImageIndex, _) = c.manifest_blob(&digest, d.size(), "index", what)?;
    index
        .manifests()
        .iter()
        .find(|m| m.platform().as_ref().is_some_and(|p| host.matches(p)))
        .cloned()
        .ok_or_else(|| {
            let have: Vec<String> = index
                .manifests()
                .iter()
                .filter_map(|m| m.platform().as_ref())
                .map(|p| format!("{}/{}", p.os(), p.architecture()))
                .collect();
            anyhow::anyhow!(
                "{what}: index {digest} has no manifest for the platform {host} (it has: {})",
                have.join(", ")
            )
        })
}

#[derive(serde::Deserialize)]
struct DockerItem {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// The compression of a staged layer, from its first bytes.
fn sniff(path: &Path) -> Result<Compression> {
    let mut b = [0u8; 4];
    let mut f = File::open(path)?;
    let n = f.read(&mut b)?;
    Ok(match &b[..n] {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd] => Compression::Zstd,
        _ => Compression::None,
    })
}

/// An archive whose `list` (index.json, manifest.json) names `n` images: at least one, and
/// only one when the import gives it a name.
fn check_count(what: &str, list: &str, n: usize, name: Option<&str>) -> Result<()> {
    if n == 0 {
        bail!("{what}: {list} lists no image");
    }
    if name.is_some() && n > 1 {
        bail!("{what}: the archive holds {n} images; a name fits only one");
    }
    Ok(())
}

fn docker_images(c: &Contents, what: &str, name: Option<&str>) -> Result<Vec<Found>> {
    let items: Vec<DockerItem> = serde_json::from_slice(&c.read_json("manifest.json", what)?)
        .with_context(|| format!("{what}: manifest.json is not a docker save manifest"))?;
    check_count(what, "manifest.json", items.len(), name)?;
    let mut out = Vec::new();
    for it in items {
        let cname = clean_name(it.config.as_bytes())
            .ok_or_else(|| anyhow::anyhow!("{what}: config name {:?} is not allowed", it.config))?;
        let cs = c
            .get(&cname)
            .ok_or_else(|| anyhow::anyhow!("{what}: config {cname} is missing"))?;
        if cs.size > MAX_CONFIG {
            bail!(
                "{what}: config {cname} is {} bytes, more than {MAX_CONFIG}",
                cs.size
            );
        }
        // docker names the config by its digest: `<hex>.json` or `blobs/sha256/<hex>`
        let stem = cname
            .rsplit('/')
            .next()
            .unwrap_or("")
            .trim_end_matches(".json");
        let named = stem.len() == 64 && stem.bytes().all(|b| b.is_ascii_hexdigit());
        if named && cs.digest != format!("sha256:{stem}") {
            bail!(
                "{what}: config {cname}: digest mismatch: its content is {}",
                cs.digest
            );
        }
        let cfg: ImageConfiguration = serde_json::from_slice(&std::fs::read(&cs.path)?)
            .with_context(|| format!("{what}: config {cname} is not an image config"))?;
        let diff_ids = cfg.rootfs().diff_ids();
        if diff_ids.len() != it.layers.len() {
            bail!(
                "{what}: config {cname} lists {} diff_ids, manifest.json {} layers",
                diff_ids.len(),
                it.layers.len()
            );
        }
        let mut blobs = vec![(cs.digest.clone(), cs.size, cs.path.clone())];
        let mut layers = Vec::new();
        for (l, diff_id) in it.layers.iter().zip(diff_ids) {
            let ln = clean_name(l.as_bytes())
                .ok_or_else(|| anyhow::anyhow!("{what}: layer name {l:?} is not allowed"))?;
            let s = c
                .get(&ln)
                .ok_or_else(|| anyhow::anyhow!("{what}: layer {ln} is missing"))?;
            let mt = match sniff(&s.path)? {
                Compression::None => {
                    if s.digest != *diff_id {
                        bail!(
                            "{what}: layer {ln}: digest mismatch: its content is {}, \
                             the config's diff_id is {diff_id}",
                            s.digest
                        );
                    }
                    "application/vnd.oci.image.layer.v1.tar"
                }
                Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
                Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
            };
            layers.push(serde_json::json!({"mediaType": mt, "digest": s.digest, "size": s.size}));
            blobs.push((s.digest.clone(), s.size, s.path.clone()));
        }
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": registry::MEDIA_OCI_MANIFEST,
            "config": {
                "mediaType": MediaType::ImageConfig.to_string(),
                "digest": cs.digest,
                "size": cs.size,
            },
            "layers": layers,
        }))?;
        let names: Vec<String> = match name {
            Some(n) => vec![n.to_string()],
            None => it
                .repo_tags
                .unwrap_or_default()
                .iter()
                .map(|t| {
                    Reference::parse(t)
                        .map(|r| r.to_string())
                        .map_err(|e| anyhow::anyhow!("{what}: RepoTags: {e}"))
                })
                .collect::<Result<_>>()?,
        };
        if names.is_empty() {
            bail!(
                "{what}: image {cname} has no RepoTags: give a name, husk image import FILE NAME"
            );
        }
        out.push(Found {
            names,
            manifest_digest: store::sha256_digest(&manifest),
            media_type: registry::MEDIA_OCI_MANIFEST.to_string(),
            manifest_bytes: Some(manifest),
            platform: platform_of(&cfg),
            blobs,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names() {
        assert_eq!(clean_name(b"./blobs/sha256/ab").unwrap(), "blobs/sha256/ab");
        assert_eq!(clean_name(b"a//b/./c/").unwrap(), "a/b/c");
        for bad in [
            &b"../x"[..],
            b"a/../../x",
            b"/etc/passwd",
            b"",
            b"./",
            b"a/\xff",
        ] {
            assert!(clean_name(bad).is_none(), "{bad:?}");
        }
        // a/.. is refused too: no name in an image archive needs it
        assert!(clean_name(b"a/../b").is_none());
    }

    #[test]
    fn link_targets() {
        assert_eq!(
            link_target("b/layer.tar", b"../a/layer.tar", true).unwrap(),
            "a/layer.tar"
        );
        assert_eq!(
            link_target("b/layer.tar", b"a/layer.tar", false).unwrap(),
            "a/layer.tar"
        );
        assert!(link_target("b/layer.tar", b"../../etc/passwd", true).is_none());
        assert!(link_target("b/layer.tar", b"/etc/passwd", true).is_none());
        assert!(link_target("x", b"..", false).is_none());
    }
}
