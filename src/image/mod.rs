//! Images: pull from a registry into the content-addressed store, list, inspect, tag, remove,
//! and unpack to a runnable bundle (rootfs + config.json).
//!
//! A companion module: it uses the runtime library (the in-root resolver, `husk spec`'s
//! default), never the other way round; nothing on the create/start/exec path calls it.

pub mod archive;
pub mod config;
pub mod follow;
pub mod layer;
pub mod progress;
pub mod push;
pub mod snapshot;
pub mod store;
pub mod userns;

use crate::registry::{self, reference::Reference, Client};
use anyhow::{bail, Context, Result};
use flate2::read::GzDecoder;
use oci_spec::image::{
    Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType, Platform,
};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use store::{ref_name, Store, REF_NAME};

const MEDIA_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const MEDIA_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Layers fetched at once by one pull.
pub(crate) const PARALLEL_FETCHES: usize = 3;
/// Config blobs larger than this are refused.
pub(crate) const MAX_CONFIG: u64 = 8 << 20;

/// `os/arch[/variant]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlatformSpec {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl PlatformSpec {
    pub fn host() -> PlatformSpec {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        PlatformSpec {
            os: "linux".into(),
            arch: arch.into(),
            variant: None,
        }
    }

    /// `--platform`: the value given, else the host's.
    pub fn of_flag(flag: Option<&str>) -> Result<PlatformSpec> {
        flag.map_or_else(|| Ok(PlatformSpec::host()), PlatformSpec::parse)
    }

    pub fn parse(s: &str) -> Result<PlatformSpec> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(PlatformSpec {
                os: os.to_string(),
                arch: arch.to_string(),
                variant: None,
            }),
            [os, arch, v] if !os.is_empty() && !arch.is_empty() && !v.is_empty() => {
                Ok(PlatformSpec {
                    os: os.to_string(),
                    arch: arch.to_string(),
                    variant: Some(v.to_string()),
                })
            }
            _ => bail!("--platform {s:?}: expected OS/ARCH[/VARIANT], e.g. linux/amd64"),
        }
    }

    pub(crate) fn matches(&self, p: &Platform) -> bool {
        p.os().to_string() == self.os
            && p.architecture().to_string() == self.arch
            && match &self.variant {
                None => true,
                Some(v) => p.variant().as_deref() == Some(v.as_str()),
            }
    }
}

impl std::fmt::Display for PlatformSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

pub struct PullOptions {
    pub registry: registry::Options,
    pub platform: PlatformSpec,
    /// How progress is shown (`--progress`, `--quiet`).
    pub progress: progress::Mode,
    /// Keep a multi-platform image whole: every platform's manifest and blobs, the index as
    /// the store entry (`--all-platforms`).
    pub all_platforms: bool,
    /// Also unpack the image into this bundle directory, as [`unpack`] does (`--unpack DIR`):
    /// as root each layer is applied while it downloads (see [`follow`]).
    pub unpack: Option<std::path::PathBuf>,
    /// As root, also make the layers' overlayfs snapshots ([`snapshot`]) while they download,
    /// for `husk up`, which stacks them next.
    pub snapshots: bool,
}

/// The layer compressions husk reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
}

pub(crate) fn layer_compression(media_type: &str) -> Option<Compression> {
    match media_type {
        "application/vnd.oci.image.layer.v1.tar"
        | "application/vnd.docker.image.rootfs.diff.tar" => Some(Compression::None),
        "application/vnd.oci.image.layer.v1.tar+gzip" | MEDIA_DOCKER_LAYER_GZIP => {
            Some(Compression::Gzip)
        }
        "application/vnd.oci.image.layer.v1.tar+zstd" => Some(Compression::Zstd),
        _ => None,
    }
}

pub(crate) fn check_layer_types(m: &ImageManifest, what: &str) -> Result<()> {
    let ct = m.config().media_type().to_string();
    if ct != MediaType::ImageConfig.to_string() && ct != MEDIA_DOCKER_CONFIG {
        bail!("{what}: config has media type {ct:?}, not an image config (this is not a container image)");
    }
    for l in m.layers() {
        let t = l.media_type().to_string();
        if layer_compression(&t).is_none() {
            bail!(
                "{what}: layer {} has media type {t:?}, which husk cannot unpack (supported: tar, tar+gzip, tar+zstd)",
                l.digest()
            );
        }
    }
    Ok(())
}

/// `f` on every item, [`PARALLEL_FETCHES`] at a time; after the first failure no new item
/// starts, and the error of the earliest failed item is returned.
pub(crate) fn each_in_parallel<T: Sync>(
    items: &[T],
    f: impl Fn(&T) -> Result<()> + Sync,
) -> Result<()> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let errors: Mutex<Vec<(usize, anyhow::Error)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..PARALLEL_FETCHES.min(items.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= items.len() || failed.load(Ordering::Relaxed) {
                    break;
                }
                if let Err(e) = f(&items[i]) {
                    failed.store(true, Ordering::Relaxed);
                    if let Ok(mut errs) = errors.lock() {
                        errs.push((i, e));
                    }
                }
            });
        }
    });
    let mut errors = errors.into_inner().unwrap_or_default();
    errors.sort_by_key(|(i, _)| *i);
    match errors.into_iter().next() {
        Some((_, e)) => Err(e),
        None => Ok(()),
    }
}

/// Pull `reference` into `store`: manifest (through an index if needed), config and layers,
/// each verified; the index entry is written last. Returns the manifest digest.
pub fn pull(store: &Store, text: &str, opts: &PullOptions) -> Result<String> {
    let shown = progress::Progress::new(opts.progress);
    let r = (|| {
        if let Some(bundle) = &opts.unpack {
            check_bundle(&format!("pull {text}: unpack"), bundle)?;
        }
        let (digest, unpacked) = pull_shown(store, text, opts, &shown)?;
        if let (Some(bundle), false) = (&opts.unpack, unpacked) {
            // the two passes: a user's unpack maps ids in a child process of its own
            unpack(store, text, bundle)?;
        }
        Ok(digest)
    })();
    if let Err(e) = &r {
        shown.failed(e);
    }
    r
}

/// The pull; also true when it unpacked the image into `opts.unpack` as it went.
fn pull_shown(
    store: &Store,
    text: &str,
    opts: &PullOptions,
    shown: &progress::Progress,
) -> Result<(String, bool)> {
    let r = Reference::parse(text).map_err(anyhow::Error::msg)?;
    let what = r.to_string();
    let client = Client::new(&r, &opts.registry)?;
    let top = client
        .manifest(r.manifest_ref())
        .with_context(|| format!("pull {what}: fetch manifest"))?;
    if let Some(d) = &r.digest {
        if &top.digest != d {
            bail!(
                "pull {what}: the registry answered with a manifest whose digest is {}",
                top.digest
            );
        }
    }
    let (manifest_bytes, manifest_type, manifest_digest, platform) = match top.media_type.as_str()
    {
        registry::MEDIA_OCI_INDEX | registry::MEDIA_DOCKER_LIST if opts.all_platforms => {
            return pull_all(store, &what, &client, top, shown).map(|d| (d, false));
        }
        registry::MEDIA_OCI_INDEX | registry::MEDIA_DOCKER_LIST => {
            let index: ImageIndex = serde_json::from_slice(&top.bytes)
                .with_context(|| format!("pull {what}: parse index {}", top.digest))?;
            let chosen = index
                .manifests()
                .iter()
                .find(|d| d.platform().as_ref().is_some_and(|p| opts.platform.matches(p)))
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "pull {what}: index {} has no manifest for platform {} (it has: {})",
                        top.digest,
                        opts.platform,
                        platforms_of(&index)
                    )
                })?
                .clone();
            let m = listed_manifest(&client, &what, &chosen)?;
            (m.bytes, m.media_type, m.digest, chosen.platform().clone())
        }
        registry::MEDIA_OCI_MANIFEST | registry::MEDIA_DOCKER_MANIFEST => {
            (top.bytes, top.media_type, top.digest, None)
        }
        other => bail!(
            "pull {what}: manifest {} has media type {other:?}; expected an OCI or Docker schema 2 manifest or index",
            top.digest
        ),
    };
    if manifest_type != registry::MEDIA_OCI_MANIFEST
        && manifest_type != registry::MEDIA_DOCKER_MANIFEST
    {
        bail!(
            "pull {what}: manifest {manifest_digest} has media type {manifest_type:?}; expected an OCI or Docker schema 2 manifest"
        );
    }
    let manifest: ImageManifest = serde_json::from_slice(&manifest_bytes)
        .with_context(|| format!("pull {what}: parse manifest {manifest_digest}"))?;
    check_layer_types(
        &manifest,
        &format!("pull {what}: manifest {manifest_digest}"),
    )?;

    // the config first (small), then the layers, PARALLEL_FETCHES at a time
    let fetch = |d: &Descriptor, role: &'static str, follow: Option<&follow::Follow>| {
        fetch_blob(store, &what, &client, d, role, shown, follow)
    };
    fetch(manifest.config(), "config", None)?;
    let cfg = check_config(store, &what, &manifest)?;
    // as root, a bundle to unpack into gets each layer as it arrives; a user's unpack runs in
    // a user namespace of its own and comes after the pull
    let pipelined = opts
        .unpack
        .as_deref()
        .filter(|_| nix::unistd::geteuid().is_root());
    let snapshots = opts.snapshots && pipelined.is_none() && nix::unistd::geteuid().is_root();
    // a reader of each layer as it downloads, and the layers numbered
    let followed = || -> (Vec<follow::Follow>, Vec<(usize, &Descriptor)>) {
        let layers = manifest.layers();
        (
            layers.iter().map(|_| follow::Follow::new()).collect(),
            layers.iter().enumerate().collect(),
        )
    };
    let unpacked = match pipelined {
        None if snapshots => {
            // each layer's snapshot made from its download (in parallel: each is alone)
            let (follows, items) = followed();
            let diff_ids = cfg.rootfs().diff_ids();
            let chains = snapshot::chain_ids(diff_ids);
            std::thread::scope(|s| {
                s.spawn(|| {
                    each_in_parallel(&items, |(i, l)| {
                        let made = snapshot::make_while_pulled(
                            store,
                            &what,
                            l,
                            &diff_ids[*i],
                            &chains[*i],
                            follows[*i].reader(),
                        );
                        // not fatal: made from the store later, or a copy instead
                        if let Err(e) = made {
                            crate::log_debug!(
                                "pull {what}: no snapshot of {} yet: {e:#}",
                                l.digest()
                            );
                        }
                        Ok(())
                    })
                });
                let fetched =
                    each_in_parallel(&items, |(i, l)| fetch(l, "layer", Some(&follows[*i])));
                for f in &follows {
                    f.fail("the pull stopped before this layer was fetched");
                }
                fetched
            })?;
            None
        }
        None => {
            each_in_parallel(manifest.layers(), |l| fetch(l, "layer", None))?;
            None
        }
        Some(bundle) => {
            let (follows, items) = followed();
            let prepared = prepare_bundle(&format!("pull {what}: unpack"), bundle)?;
            let (fetched, applied) = std::thread::scope(|s| {
                let unpacking = s.spawn(|| {
                    unpack_into(
                        store,
                        &what,
                        &manifest,
                        &cfg,
                        &prepared,
                        None,
                        Some(&follows),
                        None,
                    )
                });
                let fetched =
                    each_in_parallel(&items, |(i, l)| fetch(l, "layer", Some(&follows[*i])));
                // layers never started (a failure stopped the rest) end their readers
                for f in &follows {
                    f.fail("the pull stopped before this layer was fetched");
                }
                let applied = unpacking
                    .join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("pull {what}: the unpack panicked")));
                (fetched, applied)
            });
            if let Err(e) = fetched {
                prepared.undo();
                return Err(e);
            }
            // a layer whose transfer started over was read in part from the first transfer:
            // the bundle is made again from the stored (verified) blobs
            let applied = match applied {
                Err(_) if follows.iter().any(follow::Follow::restarted) => {
                    prepared.clear();
                    unpack_into(store, &what, &manifest, &cfg, &prepared, None, None, None)
                }
                r => r,
            };
            if applied.is_err() {
                prepared.undo();
            }
            Some((applied, prepared))
        }
    };
    if let Err(e) = store.put_bytes(
        &manifest_digest,
        &manifest_bytes,
        &format!("pull {what}: manifest"),
    ) {
        if let Some((_, prepared)) = &unpacked {
            prepared.undo();
        }
        return Err(e);
    }
    let mut desc = Descriptor::new(
        MediaType::from(manifest_type.as_str()),
        manifest_bytes.len() as u64,
        manifest_digest
            .parse::<oci_spec::image::Digest>()
            .context("manifest digest")?,
    );
    desc.set_platform(platform.or_else(|| {
        oci_spec::image::PlatformBuilder::default()
            .os(cfg.os().clone())
            .architecture(cfg.architecture().clone())
            .build()
            .ok()
    }));
    let name = what.clone();
    desc.set_annotations(Some(HashMap::from([(REF_NAME.to_string(), name.clone())])));
    let indexed = store.update_index(|m| {
        m.retain(|d| ref_name(d) != Some(name.as_str()));
        m.push(desc);
        Ok(())
    });
    // the image is stored whether or not its unpack worked, as after `pull` and `unpack`
    if let Some((applied, prepared)) = unpacked {
        if let Err(e) = indexed.and(applied) {
            prepared.undo();
            return Err(e);
        }
    } else {
        indexed?;
    }
    shown.image_done("pull", &what, &manifest_digest);
    Ok((manifest_digest, pipelined.is_some()))
}

/// The manifest `d` of an index names, fetched by its digest and checked against it: the
/// content's digest and its size.
fn listed_manifest(client: &Client, what: &str, d: &Descriptor) -> Result<registry::Manifest> {
    let digest = d.digest().to_string();
    let m = client
        .manifest(&digest)
        .with_context(|| format!("pull {what}: fetch manifest {digest}"))?;
    if m.digest != digest {
        bail!(
            "pull {what}: digest mismatch for manifest: expected {digest}, content is {}",
            m.digest
        );
    }
    if m.bytes.len() as u64 != d.size() {
        bail!(
            "pull {what}: manifest {digest} is {} bytes, the index says {}",
            m.bytes.len(),
            d.size()
        );
    }
    Ok(m)
}

/// `pull --all-platforms` of an index: every platform's manifest (each checked against the
/// index), then all their blobs ([`PARALLEL_FETCHES`] at a time, each once), then the
/// manifests and the index as blobs, and only then the index as the store entry.
fn pull_all(
    store: &Store,
    what: &str,
    client: &Client,
    top: registry::Manifest,
    shown: &progress::Progress,
) -> Result<String> {
    let index: ImageIndex = serde_json::from_slice(&top.bytes)
        .with_context(|| format!("pull {what}: parse index {}", top.digest))?;
    if index.manifests().is_empty() {
        bail!("pull {what}: index {} lists no manifest", top.digest);
    }
    let mut manifests = Vec::new();
    for d in index.manifests() {
        let digest = d.digest().to_string();
        let mt = d.media_type().to_string();
        if mt != registry::MEDIA_OCI_MANIFEST && mt != registry::MEDIA_DOCKER_MANIFEST {
            bail!(
                "pull {what}: index {} lists {digest} of media type {mt:?}; expected OCI or \
                 Docker schema 2 image manifests",
                top.digest
            );
        }
        let m = listed_manifest(client, what, d)?;
        let parsed: ImageManifest = serde_json::from_slice(&m.bytes)
            .with_context(|| format!("pull {what}: parse manifest {digest}"))?;
        // an image husk may unpack; an attestation (build provenance) is kept as it is
        let image = !is_attestation(d);
        if image {
            check_layer_types(&parsed, &format!("pull {what}: manifest {digest}"))?;
        }
        manifests.push((digest, m.bytes, parsed, image));
    }
    let mut blobs: Vec<(&Descriptor, &'static str)> = Vec::new();
    for (_, _, m, _) in &manifests {
        let all =
            std::iter::once((m.config(), "config")).chain(m.layers().iter().map(|l| (l, "layer")));
        for (d, role) in all {
            if !blobs.iter().any(|(b, _)| b.digest() == d.digest()) {
                blobs.push((d, role));
            }
        }
    }
    each_in_parallel(&blobs, |(d, role)| {
        fetch_blob(store, what, client, d, role, shown, None)
    })?;
    for (digest, bytes, m, image) in &manifests {
        if *image {
            check_config(store, what, m)?;
        }
        store.put_bytes(digest, bytes, &format!("pull {what}: manifest"))?;
    }
    store.put_bytes(&top.digest, &top.bytes, &format!("pull {what}: index"))?;
    let mut desc = Descriptor::new(
        MediaType::from(top.media_type.as_str()),
        top.bytes.len() as u64,
        top.digest
            .parse::<oci_spec::image::Digest>()
            .context("index digest")?,
    );
    desc.set_annotations(Some(HashMap::from([(
        REF_NAME.to_string(),
        what.to_string(),
    )])));
    store.update_index(|m| {
        m.retain(|d| ref_name(d) != Some(what));
        m.push(desc);
        Ok(())
    })?;
    shown.image_done("pull", what, &top.digest);
    Ok(top.digest)
}

/// The config of a pulled image, now in the store, checked to be an image config with a
/// diff_id for each layer.
fn check_config(store: &Store, what: &str, manifest: &ImageManifest) -> Result<ImageConfiguration> {
    let cfg = store.read_blob(manifest.config().digest().as_ref(), MAX_CONFIG)?;
    let cfg: ImageConfiguration = serde_json::from_slice(&cfg)
        .with_context(|| format!("pull {what}: parse config {}", manifest.config().digest()))?;
    if cfg.rootfs().diff_ids().len() != manifest.layers().len() {
        bail!(
            "pull {what}: config lists {} layer diff_ids, the manifest {} layers",
            cfg.rootfs().diff_ids().len(),
            manifest.layers().len()
        );
    }
    Ok(cfg)
}

/// An index entry that is a build attestation, not an image (BuildKit's
/// `vnd.docker.reference.type: attestation-manifest`, platform unknown/unknown): kept with its
/// blobs by `--all-platforms`, never unpacked, so its layer types are not checked.
pub(crate) fn is_attestation(d: &Descriptor) -> bool {
    d.annotations()
        .as_ref()
        .and_then(|a| a.get("vnd.docker.reference.type"))
        .is_some_and(|t| t == "attestation-manifest")
}

/// One blob of a pull into the store (resumed where its stream breaks), its progress shown.
fn fetch_blob(
    store: &Store,
    what: &str,
    client: &Client,
    d: &Descriptor,
    role: &'static str,
    shown: &progress::Progress,
    follow: Option<&follow::Follow>,
) -> Result<()> {
    let digest = d.digest().to_string();
    let blob = shown.blob(role, &digest, d.size());
    let label = format!("pull {what}: {role}");
    let fetched = store.put_blob_followed(&digest, d.size(), &label, follow, |at| {
        let (reader, from) = client
            .blob_from(&digest, at)
            .with_context(|| format!("pull {what}: fetch {role} {digest}"))?;
        blob.set(from);
        Ok(store::Fetched {
            reader: Box::new(blob.reader(reader)),
            from,
        })
    })?;
    blob.finish(if fetched { "fetched" } else { "present" });
    Ok(())
}

/// The image manifest for `text` (see [`lookup_entry`]): the index entry itself, or for a
/// multi-platform entry (an image index) its manifest for the host's platform.
pub fn lookup(store: &Store, text: &str) -> Result<(String, Descriptor)> {
    let (name, d) = lookup_entry(store, text)?;
    if !store::is_index_type(d.media_type().as_ref()) {
        return Ok((name, d));
    }
    let host = PlatformSpec::host();
    let index = store.read_image_index(d.digest().as_ref())?;
    match index
        .manifests()
        .iter()
        .find(|m| m.platform().as_ref().is_some_and(|p| host.matches(p)))
    {
        Some(m) => Ok((name, m.clone())),
        None => bail!(
            "image {} is a multi-platform index without a manifest for the host's platform \
             {host} (it has: {})",
            if name.is_empty() {
                d.digest().to_string()
            } else {
                name
            },
            platforms_of(&index)
        ),
    }
}

/// The platforms an index lists, `os/arch[/variant]`, comma-separated.
pub(crate) fn platforms_of(index: &ImageIndex) -> String {
    let have: Vec<String> = index
        .manifests()
        .iter()
        .filter_map(|d| d.platform().as_ref())
        .map(|p| {
            let mut s = format!("{}/{}", p.os(), p.architecture());
            if let Some(v) = p.variant() {
                s.push('/');
                s.push_str(v);
            }
            s
        })
        .collect();
    have.join(", ")
}

/// The `index.json` entry for `text`: a reference (normalised) or a manifest or index digest
/// (full, or a unique prefix of at least 12 hex digits). A multi-platform image is its index.
pub fn lookup_entry(store: &Store, text: &str) -> Result<(String, Descriptor)> {
    let idx = store.index()?;
    let hexish = text.strip_prefix("sha256:").unwrap_or(text);
    if hexish.len() >= 12 && hexish.bytes().all(|b| b.is_ascii_hexdigit()) {
        let hits: Vec<&Descriptor> = idx
            .manifests()
            .iter()
            .filter(|d| d.digest().digest().starts_with(hexish))
            .collect();
        if let Some(d) = hits.first() {
            let name = ref_name(d).unwrap_or("").to_string();
            return Ok((name, (*d).clone()));
        }
    }
    let r = Reference::parse(text).map_err(anyhow::Error::msg)?;
    let name = r.to_string();
    match idx
        .manifests()
        .iter()
        .find(|d| ref_name(d) == Some(name.as_str()))
    {
        Some(d) => Ok((name, d.clone())),
        None => bail!(
            "image {name} is not in the store {} (pull it first)",
            store.root().display()
        ),
    }
}

/// `husk image ls`.
/// `store` None: there is no store yet, an empty list.
pub fn list(store: Option<&Store>, format: &str, quiet: bool) -> Result<()> {
    let mut rows = Vec::new();
    let listed = match store {
        Some(s) => Some((s, s.index()?)),
        None => None,
    };
    for (store, d) in listed
        .iter()
        .flat_map(|(s, i)| i.manifests().iter().map(|d| (*s, d)))
    {
        let name = ref_name(d).unwrap_or("<none>").to_string();
        let (size, created) = match store.manifests_of(d) {
            Ok(ms) if !ms.is_empty() => {
                // a multi-platform image: every platform's blobs (each once), the host's
                // creation time
                let mut seen = std::collections::HashSet::new();
                let size: u64 = ms
                    .iter()
                    .flat_map(|(_, m)| std::iter::once(m.config()).chain(m.layers().iter()))
                    .filter(|b| seen.insert(b.digest().to_string()))
                    .map(|b| b.size())
                    .sum();
                let host = PlatformSpec::host();
                let m = &ms
                    .iter()
                    .find(|(md, _)| md.platform().as_ref().is_some_and(|p| host.matches(p)))
                    .unwrap_or(&ms[0])
                    .1;
                let created = store
                    .read_blob(m.config().digest().as_ref(), MAX_CONFIG)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<ImageConfiguration>(&b).ok())
                    .and_then(|c| c.created().clone())
                    .unwrap_or_default();
                (size, created)
            }
            _ => (0, String::new()),
        };
        rows.push((name, d.digest().to_string(), size, created));
    }
    let mut out = io::stdout().lock();
    if quiet {
        for r in &rows {
            writeln!(out, "{}", r.0)?;
        }
        return Ok(());
    }
    match format {
        "json" => {
            let v: Vec<serde_json::Value> = rows
                .iter()
                .map(|(n, d, s, c)| serde_json::json!({"name": n, "digest": d, "size": s, "created": c}))
                .collect();
            writeln!(out, "{}", serde_json::to_string(&v)?)?;
        }
        "table" => {
            let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(9);
            writeln!(
                out,
                "{:<w$}   {:<19}   {:>12}   CREATED",
                "REFERENCE", "DIGEST", "SIZE"
            )?;
            for (n, d, s, c) in &rows {
                let short = &d[..d.len().min(19)];
                writeln!(out, "{n:<w$}   {short:<19}   {s:>12}   {c}")?;
            }
        }
        other => bail!("--format {other:?}: expected table or json"),
    }
    Ok(())
}

/// `husk image inspect`: the index entry, manifest, config and layer list as one JSON document.
pub fn inspect(store: &Store, text: &str) -> Result<serde_json::Value> {
    let (_, entry) = lookup_entry(store, text)?;
    // a multi-platform image: its index and platforms, then the host's manifest as for any image
    let index = if store::is_index_type(entry.media_type().as_ref()) {
        let i = store.read_image_index(entry.digest().as_ref())?;
        Some(serde_json::json!({
            "digest": entry.digest().to_string(),
            "mediaType": entry.media_type().to_string(),
            "manifests": i.manifests(),
        }))
    } else {
        None
    };
    let (name, d) = lookup(store, text)?;
    let digest = d.digest().to_string();
    let m = store.read_manifest(&digest)?;
    let cfg_bytes = store.read_blob(m.config().digest().as_ref(), MAX_CONFIG)?;
    let cfg: serde_json::Value = serde_json::from_slice(&cfg_bytes).context("parse config")?;
    let layers: Vec<serde_json::Value> = m
        .layers()
        .iter()
        .map(|l| serde_json::json!({"digest": l.digest().to_string(), "size": l.size(), "mediaType": l.media_type().to_string()}))
        .collect();
    let size: u64 = m.config().size() + m.layers().iter().map(|l| l.size()).sum::<u64>();
    Ok(serde_json::json!({
        "name": name,
        "digest": digest,
        "mediaType": d.media_type().to_string(),
        "platform": d.platform(),
        "size": size,
        "manifest": m,
        "config": cfg,
        "layers": layers,
        "index": index,
    }))
}

/// `husk image tag SRC DST`.
pub fn tag(store: &Store, src: &str, dst: &str) -> Result<String> {
    let (_, d) = lookup_entry(store, src)?;
    let name = Reference::parse(dst)
        .map_err(anyhow::Error::msg)?
        .to_string();
    let mut d = d.clone();
    d.set_annotations(Some(HashMap::from([(REF_NAME.to_string(), name.clone())])));
    store.update_index(|m| {
        m.retain(|x| ref_name(x) != Some(name.as_str()));
        m.push(d);
        Ok(())
    })?;
    Ok(name)
}

/// `husk image rm`: drop the names, then collect the blobs no name reaches any more. `store`
/// must be open exclusively.
pub fn remove(store: &Store, refs: &[String]) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for r in refs {
        let (name, d) = lookup_entry(store, r)?;
        names.push((name, d.digest().to_string()));
    }
    store.update_index(|m| {
        m.retain(|d| {
            !names.iter().any(|(n, dg)| {
                ref_name(d) == Some(n.as_str()) || (n.is_empty() && d.digest().to_string() == *dg)
            })
        });
        Ok(())
    })?;
    collect_garbage(store)?;
    Ok(names
        .into_iter()
        .map(|(n, d)| if n.is_empty() { d } else { n })
        .collect())
}

/// A reader that hashes what passes through it (for a layer's diff_id).
struct Hashing<R> {
    inner: R,
    /// None: the bytes are hashed elsewhere (by the decompressing thread)
    hasher: Option<Sha256>,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// Decompressed chunks in flight between a layer's decompressing thread and its extraction:
/// at most this many buffers of [`CHUNK`] bytes, reused.
const CHUNKS: usize = 4;
const CHUNK: usize = 256 << 10;

/// A buffer and how many of its bytes are data (or the error that ended the stream).
type Chunk = io::Result<(Vec<u8>, usize)>;

/// The decompressing thread: `plain` read into buffers (new ones up to [`CHUNKS`], then the
/// ones handed back on `empty`) sent on `full`, until its end, an error (sent), or the reader
/// gone; each buffer hashed into `hasher` first when one is given (returned at the end).
fn decompress_into(
    mut plain: impl Read,
    full: &std::sync::mpsc::SyncSender<Chunk>,
    empty: &std::sync::mpsc::Receiver<Vec<u8>>,
    mut hasher: Option<Sha256>,
) -> Option<Sha256> {
    let mut made = 0;
    loop {
        let mut buf = if made < CHUNKS {
            made += 1;
            vec![0u8; CHUNK]
        } else {
            match empty.recv() {
                Ok(b) => b,
                Err(_) => return hasher,
            }
        };
        let n = loop {
            match plain.read(&mut buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => break r,
            }
        };
        match n {
            Ok(0) => return hasher,
            Ok(n) => {
                if let Some(h) = &mut hasher {
                    h.update(&buf[..n]);
                }
                if full.send(Ok((buf, n))).is_err() {
                    return hasher;
                }
            }
            Err(e) => {
                let _ = full.send(Err(e));
                return hasher;
            }
        }
    }
}

/// The extraction's side of [`decompress_into`]: reads the chunks in order, handing each
/// buffer back once read.
struct Chunks {
    full: std::sync::mpsc::Receiver<Chunk>,
    empty: std::sync::mpsc::SyncSender<Vec<u8>>,
    cur: (Vec<u8>, usize),
    at: usize,
}

impl Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.cur.1 {
            match self.full.recv() {
                Ok(Ok(next)) => {
                    let old = std::mem::replace(&mut self.cur, next);
                    self.at = 0;
                    if !old.0.is_empty() {
                        // never blocks: the channel holds as many as there are buffers
                        let _ = self.empty.try_send(old.0);
                    }
                }
                Ok(Err(e)) => return Err(e),
                // the decompressing thread is done
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.1 - self.at);
        buf[..n].copy_from_slice(&self.cur.0[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Ends a tar stream that stops right after its last entry's data (no padding to 512 bytes,
/// no end-of-archive blocks, as umoci 0.4's `insert` writes them) with the zeros it lacks: at
/// most 511 + 1024 bytes, so an entry cut short further than its padding still fails to parse.
/// The diff_id is hashed before this, over the bytes the layer really has.
struct PadAtEof<R> {
    inner: R,
    seen: u64,
    pad: Option<u64>,
}

impl<R> PadAtEof<R> {
    fn new(inner: R) -> Self {
        PadAtEof {
            inner,
            seen: 0,
            pad: None,
        }
    }
}

impl<R: Read> Read for PadAtEof<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pad.is_none() {
            let n = self.inner.read(buf)?;
            if n > 0 || buf.is_empty() {
                self.seen += n as u64;
                return Ok(n);
            }
            self.pad = Some((512 - self.seen % 512) % 512 + 1024);
        }
        let left = self.pad.as_mut().expect("set above");
        let n = (*left).min(buf.len() as u64) as usize;
        buf[..n].fill(0);
        *left -= n as u64;
        Ok(n)
    }
}

/// What a container's creator changes in the image's config before the runtime spec is made
/// from it, as `docker run`'s flags do.
#[derive(Debug, Clone, Default)]
pub struct ConfigOverrides {
    /// Replaces the image's Entrypoint (an empty list clears it) and drops its Cmd.
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's Cmd.
    pub cmd: Option<Vec<String>>,
    /// KEY=VALUE entries added to the image's Env, replacing the same keys.
    pub env: Vec<String>,
    /// Replaces WorkingDir.
    pub working_dir: Option<String>,
    /// Replaces User (`user[:group]`, names or ids, resolved in the image).
    pub user: Option<String>,
}

impl ConfigOverrides {
    fn apply(&self, cfg: &mut ImageConfiguration) {
        let mut c = cfg.config().clone().unwrap_or_default();
        if let Some(e) = &self.entrypoint {
            c.set_entrypoint(Some(e.clone()));
            c.set_cmd(None);
        }
        if let Some(cmd) = &self.cmd {
            c.set_cmd(Some(cmd.clone()));
        }
        if !self.env.is_empty() {
            let mut env = c.env().clone().unwrap_or_default();
            for e in &self.env {
                let key = e.split('=').next().unwrap_or("");
                env.retain(|old| old.split('=').next() != Some(key));
                env.push(e.clone());
            }
            c.set_env(Some(env));
        }
        if let Some(w) = &self.working_dir {
            c.set_working_dir(Some(w.clone()));
        }
        if let Some(u) = &self.user {
            c.set_user(Some(u.clone()));
        }
        cfg.set_config(Some(c));
    }
}

/// `husk image unpack REF DIR`: DIR/rootfs (every layer applied in order, each checked against
/// its diff_id) and DIR/config.json. A full copy per bundle; on failure what was made is removed.
/// Run by a user other than root with `/etc/subuid` and `/etc/subgid` ranges (and newuidmap),
/// the image's owners are kept, shifted by those ranges ([`userns`]), and config.json maps them
/// back; without, a plain copy owned by the user, after a warning that says why.
pub fn unpack(store: &Store, text: &str, bundle: &Path) -> Result<()> {
    unpack_as(
        store,
        text,
        bundle,
        &ConfigOverrides::default(),
        Shift::Caller,
    )
}

/// [`unpack`] with the image config changed by `over` first; the rootfs of a caller that is
/// not root is a plain copy owned by it, its config a rootless one mapping the caller's own
/// ids to 0 (what `husk up` runs).
pub fn unpack_with(store: &Store, text: &str, bundle: &Path, over: &ConfigOverrides) -> Result<()> {
    unpack_as(store, text, bundle, over, Shift::No)
}

/// [`unpack_with`] for a caller that is not root, into a user namespace mapped as `layout`
/// says — the one the container will run in (`husk up --userns keep-id|nomap`): the image's
/// owners are kept as container ids (root's files are root's inside), config.json maps them,
/// and with `entry` the caller's `/etc/passwd` and `/etc/group` lines are added first (where
/// the image has none), so the user resolves to them. `bundle` (made by the caller, empty or
/// missing) keeps the caller's; its rootfs belongs to the container's root, and only a process
/// of the same ids removes it again ([`userns::run_mapped`], as `husk rm` does).
pub fn unpack_mapped(
    store: &Store,
    text: &str,
    bundle: &Path,
    over: &ConfigOverrides,
    layout: &userns::Layout,
    entry: Option<&config::CallerEntry>,
) -> Result<()> {
    unpack_as(store, text, bundle, over, Shift::Given(layout, entry))
}

/// Whose ids a user's unpack applies.
enum Shift<'a> {
    /// None: a plain copy owned by the caller.
    No,
    /// The caller's subordinate ids when it has them (with a warning when not).
    Caller,
    /// This layout, and the caller's user database entry to add.
    Given(&'a userns::Layout, Option<&'a config::CallerEntry>),
}

/// The image `text` names in `store`, as an unpack reads it: its name, its manifest (the layer
/// types checked) and its config.
fn unpack_source(store: &Store, text: &str) -> Result<(String, ImageManifest, ImageConfiguration)> {
    let (name, d) = lookup(store, text)?;
    let manifest = store.read_manifest(d.digest().as_ref())?;
    check_layer_types(&manifest, &format!("unpack {name}"))?;
    let cfg_bytes = store.read_blob(manifest.config().digest().as_ref(), MAX_CONFIG)?;
    let cfg = serde_json::from_slice(&cfg_bytes)
        .with_context(|| format!("unpack {name}: parse config"))?;
    Ok((name, manifest, cfg))
}

fn unpack_as(
    store: &Store,
    text: &str,
    bundle: &Path,
    over: &ConfigOverrides,
    shift: Shift<'_>,
) -> Result<()> {
    let (name, manifest, mut cfg) = unpack_source(store, text)?;
    over.apply(&mut cfg);
    check_bundle(&format!("unpack {name}"), bundle)?;
    let root = nix::unistd::geteuid().is_root();
    let (layout, entry) = match shift {
        _ if root => (None, None),
        Shift::No => (None, None),
        Shift::Given(l, e) => (Some(std::borrow::Cow::Borrowed(l)), e),
        Shift::Caller => match userns::layout_of_caller() {
            Ok(l) => (Some(std::borrow::Cow::Owned(l)), None),
            Err(why) => {
                crate::logging::warn(&format!(
                    "unpack {name}: {why}: the rootfs is a plain copy owned by you, the image's owners are not kept"
                ));
                (None, None)
            }
        },
    };
    let prepared = prepare_bundle(&format!("unpack {name}"), bundle)?;
    // a user's bundle is for a rootless run: its config maps the user (and the ranges) to 0..
    // (husk up's plain copy: the user alone)
    let rootless = (!root).then_some(layout.as_deref());
    let unpack = || {
        unpack_into(
            store, &name, &manifest, &cfg, &prepared, rootless, None, entry,
        )
    };
    let result = match layout.as_deref() {
        None => unpack(),
        // the files are the shifted ids' once made: only root of the namespace removes them
        Some(l) => userns::run_mapped(l, || {
            let r = prepared_in_namespace(&prepared, l).and_then(|()| unpack());
            match r {
                // config.json stays the caller's, who edits it (husk up does)
                Ok(()) => chown_to_caller(&prepared.config_path, l),
                Err(e) => {
                    prepared.clear();
                    Err(e)
                }
            }
        }),
    };
    if result.is_err() {
        // back to what was there: an empty rootfs the caller made stays, empty
        prepared.undo();
    }
    result
}

/// In the user namespace of a mapped unpack: the rootfs directory (the caller's) becomes the
/// container's root's, as a layer's `./` entry would make it; the layers may change it again.
fn prepared_in_namespace(p: &Prepared, l: &userns::Layout) -> Result<()> {
    if l.mapping == userns::Mapping::CallerAsRoot {
        return Ok(()); // the caller is root there already
    }
    std::os::unix::fs::lchown(&p.rootfs, Some(0), Some(0))
        .with_context(|| format!("chown {} to the container's root", p.rootfs.display()))
}

/// A file made in the namespace given back to the caller (at its ids there).
fn chown_to_caller(path: &Path, l: &userns::Layout) -> Result<()> {
    let (u, g) = l.ns_caller_at();
    std::os::unix::fs::lchown(path, Some(u), Some(g))
        .with_context(|| format!("chown {} to the caller", path.display()))
}

/// A bundle directory an unpack writes into, and what of it the unpack made (to undo).
struct Prepared {
    bundle: std::path::PathBuf,
    rootfs: std::path::PathBuf,
    config_path: std::path::PathBuf,
    made_bundle: bool,
    made_rootfs: bool,
}

impl Prepared {
    /// Remove what was unpacked (config.json and the rootfs's content); the directories stay.
    fn clear(&self) {
        let _ = std::fs::remove_file(&self.config_path);
        let _ = empty_dir(&self.rootfs);
    }

    /// Back to what was there before: an empty rootfs the caller made stays, empty.
    fn undo(&self) {
        self.clear();
        if self.made_rootfs {
            let _ = std::fs::remove_dir(&self.rootfs);
        }
        if self.made_bundle {
            let _ = std::fs::remove_dir(&self.bundle);
        }
    }
}

/// A bundle directory may take an unpack: no config.json, no rootfs or an empty one.
fn check_bundle(what: &str, bundle: &Path) -> Result<()> {
    let config_path = bundle.join("config.json");
    let rootfs = bundle.join("rootfs");
    if config_path.exists() {
        bail!("{what}: {} exists; remove it first", config_path.display());
    }
    if std::fs::read_dir(&rootfs).is_ok_and(|mut it| it.next().is_some()) {
        bail!("{what}: {} exists and is not empty", rootfs.display())
    }
    Ok(())
}

/// [`check_bundle`], then the bundle's rootfs directory made.
fn prepare_bundle(what: &str, bundle: &Path) -> Result<Prepared> {
    check_bundle(what, bundle)?;
    let rootfs = bundle.join("rootfs");
    let p = Prepared {
        bundle: bundle.to_path_buf(),
        config_path: bundle.join("config.json"),
        made_bundle: !bundle.exists(),
        made_rootfs: !rootfs.exists(),
        rootfs,
    };
    if let Err(e) = std::fs::create_dir_all(&p.rootfs) {
        p.undo();
        return Err(e).with_context(|| format!("create {}", p.rootfs.display()));
    }
    Ok(p)
}

/// [`unpack_with`] for a container that husk itself runs (`husk up`): the rootfs is an overlay
/// mount of the image's layer snapshots (see [`snapshot`]), made once per layer and shared,
/// where the host allows it (root, overlayfs, a store overlayfs takes as upper); else a copy, as
/// `unpack_with` makes. `bundle` must not exist. [`release_rootfs`] undoes the mount.
///
/// With `idmap` (a container with a user namespace of its own) the snapshots are stacked
/// through id-mapped mounts, so the image's files keep their ids inside the container; where
/// that cannot be done, the copy's ids are shifted by chown ([`shift_ids`]).
pub fn unpack_mounted(
    store: &Store,
    text: &str,
    bundle: &Path,
    over: &ConfigOverrides,
    idmap: Option<&snapshot::IdMap>,
) -> Result<()> {
    let copy = |why: &str| -> Result<()> {
        if !why.is_empty() {
            crate::log_debug!("unpack {text}: {why}; copying the layers");
        }
        unpack_with(store, text, bundle, over)?;
        if let Some(m) = idmap {
            let rootfs = bundle.join("rootfs");
            if let Err(e) = shift_ids(&rootfs, m) {
                let _ = std::fs::remove_dir_all(bundle);
                return Err(e);
            }
        }
        Ok(())
    };
    if !nix::unistd::geteuid().is_root() {
        return copy("");
    }
    let (name, manifest, mut cfg) = unpack_source(store, text)?;
    over.apply(&mut cfg);
    // (an empty directory is the caller's claim on the name: `husk up` makes it first)
    if std::fs::read_dir(bundle).is_ok_and(|mut d| d.next().is_some()) {
        bail!("unpack {name}: {} exists", bundle.display());
    }
    let claimed = bundle.exists();
    let lowers = match snapshot::ensure(store, &name, &manifest, cfg.rootfs().diff_ids()) {
        Ok(l) => l,
        Err(e) => return copy(&format!("no snapshots ({e:#})")),
    };
    std::fs::create_dir_all(bundle).with_context(|| format!("create {}", bundle.display()))?;
    if let Err(e) = snapshot::mount(&lowers, bundle, idmap) {
        if !claimed {
            let _ = std::fs::remove_dir(bundle);
        }
        return copy(&format!("no overlay ({e:#})"));
    }
    let rootfs = bundle.join("rootfs");
    let written = crate::rootfs::resolve::open_root(&rootfs)
        .with_context(|| format!("open {}", rootfs.display()))
        .and_then(|root| {
            use std::os::fd::AsFd;
            write_runtime_config(&name, &cfg, root.as_fd(), &bundle.join("config.json"), None)
        });
    if let Err(e) = written {
        let _ = release_rootfs(bundle);
        let _ = std::fs::remove_dir_all(bundle);
        return Err(e);
    }
    Ok(())
}

/// Shift the owners of a copied rootfs into a container's id range (podman's chown of the
/// layers where it has no id-mapped mounts): each entry's uid and gid `n` become `root_uid + n`
/// and `root_gid + n`, symlinks included, their own (not followed), a hard-linked file once;
/// set-id bits that chown clears are put back. An id the mapping's size does not cover is refused by name.
pub fn shift_ids(rootfs: &Path, m: &snapshot::IdMap) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let size = |map: &str| -> u32 {
        map.split_whitespace()
            .nth(2)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let (usize_, gsize) = (size(&m.uid_map), size(&m.gid_map));
    let mut stack = vec![rootfs.to_path_buf()];
    // a file of several hard links is shifted once
    let mut linked = std::collections::HashSet::new();
    while let Some(p) = stack.pop() {
        let md = std::fs::symlink_metadata(&p).with_context(|| format!("stat {}", p.display()))?;
        if !md.is_dir() && md.nlink() > 1 && !linked.insert((md.dev(), md.ino())) {
            continue;
        }
        let (uid, gid) = (md.uid(), md.gid());
        if uid >= usize_ || gid >= gsize {
            bail!(
                "{}: owner {uid}:{gid} is outside the container's {usize_} uids and {gsize} gids \
                 (ask for a larger --userns size)",
                p.display()
            );
        }
        std::os::unix::fs::lchown(&p, Some(m.root_uid + uid), Some(m.root_gid + gid))
            .with_context(|| format!("chown {}", p.display()))?;
        let ft = md.file_type();
        if !ft.is_symlink() && md.mode() & 0o6000 != 0 {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(md.mode() & 0o7777))
                .with_context(|| format!("chmod {}", p.display()))?;
        }
        if ft.is_dir() {
            for e in std::fs::read_dir(&p).with_context(|| format!("read {}", p.display()))? {
                stack.push(e?.path());
            }
        }
    }
    Ok(())
}

/// The highest uid or gid the image `text` uses (its files' owners, the ids of its
/// `/etc/passwd` and `/etc/group`), read from its layer snapshots (made where missing); `None`
/// where there are none (not root, or a layer that cannot be a snapshot).
pub fn highest_id(store: &Store, text: &str) -> Result<Option<u32>> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    let (name, manifest, cfg) = unpack_source(store, text)?;
    match snapshot::ensure(store, &name, &manifest, cfg.rootfs().diff_ids()) {
        Ok(lowers) => snapshot::highest_id(&lowers).map(Some),
        Err(_) => Ok(None),
    }
}

/// Mount a kept bundle's rootfs again if [`unpack_mounted`] made it and it is not mounted (after
/// a reboot): before the container runs again.
pub fn remount_rootfs(bundle: &Path) -> Result<()> {
    snapshot::remount(bundle)
}

/// Garbage collection of the whole store, under its exclusive lock: the blobs and temp files
/// of [`Store::collect_garbage_report`], and the layer snapshots no image of the index and no
/// bundle uses.
pub fn collect_garbage(store: &Store) -> Result<store::GcReport> {
    let mut r = store.collect_garbage_report()?;
    let mut diff_ids = Vec::new();
    for d in store.index()?.manifests() {
        for (_, m) in store.manifests_of(d).unwrap_or_default() {
            if let Some(c) = store
                .read_blob(m.config().digest().as_ref(), MAX_CONFIG)
                .ok()
                .and_then(|b| serde_json::from_slice::<ImageConfiguration>(&b).ok())
            {
                diff_ids.push(c.rootfs().diff_ids().clone());
            }
        }
    }
    (r.snapshots, r.snapshot_bytes) = snapshot::collect(store, &diff_ids)?;
    Ok(r)
}

/// Unmount a bundle's rootfs if [`unpack_mounted`] mounted it (nothing for a copy): before the
/// bundle is removed.
pub fn release_rootfs(bundle: &Path) -> Result<()> {
    snapshot::release(bundle)
}

/// Remove everything inside `dir` by fds (no symlink in it is followed).
fn empty_dir(dir: &Path) -> io::Result<()> {
    use std::os::fd::AsFd;
    let fd = nix::fcntl::open(
        dir,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(io::Error::from)?;
    for name in layer::children(&fd)? {
        layer::remove_all_at(fd.as_fd(), &name)?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn unpack_into(
    store: &Store,
    name: &str,
    manifest: &ImageManifest,
    cfg: &ImageConfiguration,
    bundle: &Prepared,
    rootless: Option<Option<&userns::Layout>>,
    follows: Option<&[follow::Follow]>,
    entry: Option<&config::CallerEntry>,
) -> Result<()> {
    use std::os::fd::AsFd;
    let (rootfs, config_path) = (&bundle.rootfs, &bundle.config_path);
    let root = crate::rootfs::resolve::open_root(rootfs)
        .with_context(|| format!("open {}", rootfs.display()))?;
    let diff_ids = cfg.rootfs().diff_ids();
    if diff_ids.len() != manifest.layers().len() {
        bail!(
            "unpack {name}: config lists {} diff_ids, the manifest {} layers",
            diff_ids.len(),
            manifest.layers().len()
        );
    }
    let mut opts = layer::ApplyOptions::default();
    if let Some(Some(l)) = rootless {
        opts.same_owner = true;
        opts.mapped = Some((l.uid_ids(), l.gid_ids()));
    }
    for (i, (l, diff_id)) in manifest.layers().iter().zip(diff_ids).enumerate() {
        match follows.and_then(|f| f.get(i)) {
            Some(f) => apply_layer_from(name, l, diff_id, f.reader(), root.as_fd(), opts)?,
            None => apply_layer(store, name, l, diff_id, root.as_fd(), opts)?,
        }
    }
    if let Some(e) = entry {
        config::add_caller_entry(root.as_fd(), e)
            .with_context(|| format!("unpack {name}: the user {}", e.name))?;
    }
    write_runtime_config(name, cfg, root.as_fd(), config_path, rootless)
}

/// The image config as a runtime spec (users and groups resolved in `root`), at `config_path`.
fn write_runtime_config(
    name: &str,
    cfg: &ImageConfiguration,
    root: std::os::fd::BorrowedFd<'_>,
    config_path: &Path,
    rootless: Option<Option<&userns::Layout>>,
) -> Result<()> {
    let spec = match rootless {
        Some(layout) => config::runtime_spec_rootless(cfg, root, layout),
        None => config::runtime_spec(cfg, root),
    }
    .with_context(|| format!("unpack {name}"))?;
    let text = serde_json::to_string_pretty(&spec)?;
    std::fs::write(config_path, text).with_context(|| format!("write {}", config_path.display()))
}

/// Apply one layer blob of the store to the directory `root`, checking its uncompressed
/// content against the config's `diff_id`.
fn apply_layer(
    store: &Store,
    name: &str,
    l: &oci_spec::image::Descriptor,
    diff_id: &str,
    root: std::os::fd::BorrowedFd<'_>,
    opts: layer::ApplyOptions,
) -> Result<()> {
    let digest = l.digest().to_string();
    let path = store.blob_path(&digest)?;
    let f = std::fs::File::open(&path)
        .with_context(|| format!("unpack {name}: layer {digest} is not in the store"))?;
    apply_layer_from(name, l, diff_id, f, root, opts)
}

/// [`apply_layer`] from the layer blob's bytes in `blob` (the stored file, or a [`follow`]er of
/// its download): applied only once `blob` has been read to its end — which a followed blob
/// reaches only when it is verified and stored — and its uncompressed content is `diff_id`.
fn apply_layer_from(
    name: &str,
    l: &oci_spec::image::Descriptor,
    diff_id: &str,
    blob: impl Read + Send,
    root: std::os::fd::BorrowedFd<'_>,
    opts: layer::ApplyOptions,
) -> Result<()> {
    let digest = l.digest().to_string();
    let mut f = io::BufReader::with_capacity(256 << 10, blob);
    let mt = l.media_type().to_string();
    let compression = layer_compression(&mt)
        .with_context(|| format!("unpack {name}: layer {digest}: unsupported media type {mt:?}"))?;
    // gzip and zstd decompress in a thread of their own, beside the extraction; the diff_id
    // hash goes with the lighter half: the extraction's for gzip (inflating is the slow part),
    // the decompressing thread's for zstd (whose decoding is quick). Plain tar is read, hashed
    // and applied in one.
    let hash_while_decompressing = matches!(compression, Compression::Zstd);
    let got = std::thread::scope(|s| -> Result<String> {
        let src = &mut f;
        let plain: Box<dyn Read + Send + '_> = match compression {
            Compression::Gzip => Box::new(GzDecoder::new(src)),
            Compression::Zstd => Box::new(
                zstd::stream::read::Decoder::with_buffer(src)
                    .with_context(|| format!("unpack {name}: layer {digest}: zstd"))?,
            ),
            Compression::None => Box::new(src),
        };
        let (inner, decompressing): (Box<dyn Read + '_>, _) = match compression {
            Compression::None => (plain, None),
            _ => {
                let (full_tx, full) = std::sync::mpsc::sync_channel(CHUNKS);
                let (empty, empty_rx) = std::sync::mpsc::sync_channel(CHUNKS);
                let hasher = hash_while_decompressing.then(Sha256::new);
                let t = s.spawn(move || decompress_into(plain, &full_tx, &empty_rx, hasher));
                let chunks = Chunks {
                    full,
                    empty,
                    cur: (Vec::new(), 0),
                    at: 0,
                };
                (Box::new(chunks), Some(t))
            }
        };
        let mut h = Hashing {
            inner,
            hasher: (!hash_while_decompressing).then(Sha256::new),
        };
        let applied = layer::apply(root, PadAtEof::new(&mut h), opts, &digest)
            .with_context(|| format!("unpack {name}"))
            // the tar end marker may be followed by padding: all of it is part of the diff_id
            .and_then(|()| {
                io::copy(&mut h, &mut io::sink())
                    .with_context(|| format!("unpack {name}: layer {digest}: decompress"))
            });
        // the decompressing thread ends when its channels do
        drop(h.inner);
        let theirs = match decompressing {
            Some(t) => t.join().map_err(|_| {
                anyhow::anyhow!("unpack {name}: layer {digest}: decompression panicked")
            })?,
            None => None,
        };
        applied?;
        let hash = h
            .hasher
            .or(theirs)
            .context("no hash of the layer's content")?
            .finalize();
        Ok(format!("sha256:{}", store::hex(&hash)))
    })?;
    if got != *diff_id {
        bail!("unpack {name}: layer {digest}: uncompressed content is {got}, the config's diff_id is {diff_id}");
    }
    // whatever follows the compressed stream: to the blob's end (a download's verification)
    io::copy(&mut f, &mut io::sink()).with_context(|| format!("unpack {name}: layer {digest}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The copied rootfs of a container with a user namespace: owners shifted into its range
    /// (symlinks their own, a hard-linked file once, set-id bits kept), an owner beyond the range
    /// refused by name.
    #[test]
    fn shift_ids_moves_owners_into_the_range() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped shift_ids_moves_owners_into_the_range: needs root (chown)");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("rootfs");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::write(root.join("bin/su"), "x").unwrap();
        // (chown clears the set-id bits: the owner first)
        std::os::unix::fs::lchown(root.join("bin/su"), Some(0), Some(5)).unwrap();
        std::fs::set_permissions(root.join("bin/su"), std::fs::Permissions::from_mode(0o4755))
            .unwrap();
        std::os::unix::fs::symlink("/nowhere", root.join("link")).unwrap();
        std::os::unix::fs::lchown(root.join("link"), Some(7), Some(7)).unwrap();
        std::fs::hard_link(root.join("bin/su"), root.join("bin/su2")).unwrap();
        let m = snapshot::IdMap {
            uid_map: "0 200000 1000\n".into(),
            gid_map: "0 300000 1000\n".into(),
            root_uid: 200000,
            root_gid: 300000,
        };
        shift_ids(&root, &m).unwrap();
        let md = |p: &str| std::fs::symlink_metadata(root.join(p)).unwrap();
        assert_eq!((md("").uid(), md("").gid()), (200000, 300000));
        assert_eq!((md("bin/su").uid(), md("bin/su").gid()), (200000, 300005));
        assert_eq!(md("bin/su").mode() & 0o7777, 0o4755);
        assert_eq!((md("link").uid(), md("link").gid()), (200007, 300007));
        let other = d.path().join("other");
        std::fs::create_dir(&other).unwrap();
        std::os::unix::fs::symlink("/nowhere", other.join("link")).unwrap();
        std::os::unix::fs::lchown(other.join("link"), Some(5000), Some(0)).unwrap();
        let err = format!("{:#}", shift_ids(&other, &m).unwrap_err());
        assert!(
            err.contains("link: owner 5000:0 is outside the container's 1000 uids"),
            "{err}"
        );
    }

    #[test]
    fn platforms() {
        if cfg!(target_arch = "x86_64") {
            assert_eq!(PlatformSpec::host().to_string(), "linux/amd64");
        }
        let p = PlatformSpec::parse("linux/arm/v7").unwrap();
        assert_eq!(p.variant.as_deref(), Some("v7"));
        assert!(PlatformSpec::parse("linux").is_err());
        assert!(PlatformSpec::parse("linux/").is_err());
        let plat: Platform =
            serde_json::from_str(r#"{"os":"linux","architecture":"arm","variant":"v7"}"#).unwrap();
        assert!(p.matches(&plat));
        assert!(PlatformSpec::parse("linux/arm").unwrap().matches(&plat));
        assert!(!PlatformSpec::parse("linux/arm/v6").unwrap().matches(&plat));
        assert!(!PlatformSpec::host().matches(&plat));
    }

    #[test]
    fn missing_tar_padding_is_supplied() {
        let mut out = Vec::new();
        PadAtEof::new(&[7u8; 600][..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out.len(), 1024 + 1024);
        assert!(out[600..].iter().all(|&b| b == 0));
        let mut out = Vec::new();
        PadAtEof::new(&[7u8; 512][..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out.len(), 512 + 1024);
    }

    #[test]
    fn layer_media_types() {
        assert_eq!(
            layer_compression(MEDIA_DOCKER_LAYER_GZIP),
            Some(Compression::Gzip)
        );
        assert_eq!(
            layer_compression("application/vnd.oci.image.layer.v1.tar"),
            Some(Compression::None)
        );
        assert_eq!(
            layer_compression("application/vnd.oci.image.layer.v1.tar+zstd"),
            Some(Compression::Zstd)
        );
        assert_eq!(
            layer_compression("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"),
            None
        );
    }
}
