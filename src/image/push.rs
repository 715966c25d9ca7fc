//! `husk image push SRC [DEST]`: an image of the store into a registry, as the distribution
//! spec's push does: each blob (the config and the layers, three at a time, as pulls fetch
//! them) is checked with HEAD and skipped when the registry has it, mounted from another
//! repository of the same registry when an image of the store came from there, or uploaded
//! (monolithic, or in chunks when larger than the chunk size); the manifest goes last, so the
//! registry never serves a manifest whose blobs are missing.

use super::lookup_entry;
use super::progress::{self, Progress};
use super::store::{is_index_type, ref_name, Store};
use crate::registry::{self, reference::Reference, Client, Pushed};
use anyhow::{bail, Context, Result};
use oci_spec::image::Descriptor;
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};

/// Blobs larger than this are uploaded in chunks of this size unless `--chunk-size` says
/// otherwise.
pub const DEFAULT_CHUNK: u64 = 16 << 20;

pub struct PushOptions {
    pub registry: registry::Options,
    /// Upload blobs larger than this in chunks of this size; 0: always monolithic.
    pub chunk_size: u64,
    /// How progress is shown (`--progress`, `--quiet`).
    pub progress: progress::Mode,
}

/// Push `src` (a name or digest in the store) as `dest` (default: `src`'s own name). Returns
/// the digest of what was pushed: the manifest, or for a multi-platform image its index, whose
/// every platform's blobs and manifest go first.
pub fn push(store: &Store, src: &str, dest: Option<&str>, opts: &PushOptions) -> Result<String> {
    let shown = Progress::new(opts.progress);
    let r = push_shown(store, src, dest, opts, &shown);
    if let Err(e) = &r {
        shown.failed(e);
    }
    r
}

fn push_shown(
    store: &Store,
    src: &str,
    dest: Option<&str>,
    opts: &PushOptions,
    shown: &Progress,
) -> Result<String> {
    let (name, desc) = lookup_entry(store, src)?;
    let dest_text = match dest {
        Some(d) => d.to_string(),
        None if !name.is_empty() => name.clone(),
        None => bail!("push {src}: the image has no name in the store; give a destination"),
    };
    let dest = Reference::parse(&dest_text).map_err(anyhow::Error::msg)?;
    let what = dest.to_string();
    let digest = desc.digest().to_string();
    if let Some(d) = &dest.digest {
        if *d != digest {
            bail!("push {what}: the digest in the destination is not the image's ({digest})");
        }
    }
    let bytes = store
        .read_blob(&digest, registry::MAX_MANIFEST)
        .with_context(|| format!("push {what}: manifest"))?;
    let media_type = desc.media_type().to_string();
    let multi = is_index_type(&media_type);
    // the image manifests: the one, or each platform's of an index
    let images = store
        .manifests_of(&desc)
        .with_context(|| format!("push {what}: {}", if multi { "index" } else { "manifest" }))?;

    let mut blobs: Vec<(Descriptor, &'static str)> = Vec::new();
    for (_, m) in &images {
        blobs.push((m.config().clone(), "config"));
        blobs.extend(m.layers().iter().map(|l| (l.clone(), "layer")));
    }
    for (b, role) in &blobs {
        if !store.has_blob(b.digest().as_ref(), b.size()) {
            bail!(
                "push {what}: {role} {} ({} bytes) is not in the store {}",
                b.digest(),
                b.size(),
                store.root().display()
            );
        }
    }

    // other images of the store from the same registry: their repositories hold their blobs
    let mut sources: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for d in store.index()?.manifests() {
        let Some(r) = ref_name(d).and_then(|n| Reference::parse(n).ok()) else {
            continue;
        };
        if r.registry != dest.registry || r.repository == dest.repository {
            continue;
        }
        for (_, m) in store.manifests_of(d).unwrap_or_default() {
            let ds = std::iter::once(m.config()).chain(m.layers().iter());
            for b in ds {
                let repos = sources.entry(b.digest().to_string()).or_default();
                if !repos.contains(&r.repository) {
                    repos.push(r.repository.clone());
                }
            }
        }
    }

    let mut ropts = opts.registry.clone();
    ropts.push = true;
    let client = Client::new(&dest, &ropts)?;
    let mut repos: Vec<String> = Vec::new();
    for (b, _) in &blobs {
        for r in sources.get(&b.digest().to_string()).into_iter().flatten() {
            if !repos.contains(r) {
                repos.push(r.clone());
            }
        }
    }
    client.set_mount_sources(repos);

    // each blob once (a layer may repeat, platforms may share), PARALLEL_FETCHES at a time;
    // the first failure stops the others from starting new blobs and is the one reported
    let mut unique: Vec<&(Descriptor, &'static str)> = Vec::new();
    for x in &blobs {
        if !unique.iter().any(|u| u.0.digest() == x.0.digest()) {
            unique.push(x);
        }
    }
    let push_one = |b: &Descriptor, role: &'static str| -> Result<()> {
        let d = b.digest().to_string();
        let path = store.blob_path(&d)?;
        let shown_blob = shown.blob(role, &d, b.size());
        let open = |offset: u64| -> std::io::Result<Box<dyn Read + Send>> {
            let mut f = std::fs::File::open(&path)?;
            f.seek(SeekFrom::Start(offset))?;
            shown_blob.set(offset);
            Ok(Box::new(
                shown_blob.reader(std::io::BufReader::with_capacity(256 << 10, f)),
            ))
        };
        let from = sources.get(&d).cloned().unwrap_or_default();
        let how = client
            .push_blob(&d, b.size(), &from, opts.chunk_size, &open)
            .with_context(|| format!("push {what}: {role} {d}"))?;
        let how = match how {
            Pushed::Present => "present".to_string(),
            Pushed::Mounted(r) => format!("mounted from {r}"),
            Pushed::Uploaded(1) => "uploaded".to_string(),
            Pushed::Uploaded(n) => format!("uploaded in {} chunks", n - 1),
        };
        shown_blob.finish(&how);
        Ok(())
    };
    super::each_in_parallel(&unique, |(d, b)| push_one(d, b))?;
    // a multi-platform image: each platform's manifest by its digest, before the index
    if multi {
        for (md, _) in &images {
            let d = md.digest().to_string();
            let mbytes = store
                .read_blob(&d, registry::MAX_MANIFEST)
                .with_context(|| format!("push {what}: manifest {d}"))?;
            let put = shown.blob("manifest", &d, mbytes.len() as u64);
            client
                .put_manifest(&d, md.media_type().as_ref(), &mbytes)
                .with_context(|| format!("push {what}: manifest {d}"))?;
            put.finish("pushed");
        }
    }
    let reference = dest.tag.as_deref().unwrap_or(&digest);
    let role = if multi { "index" } else { "manifest" };
    client
        .put_manifest(reference, &media_type, &bytes)
        .with_context(|| format!("push {what}: {role} {digest}"))?;
    shown.say(&format!("{role} {digest}: pushed as {what}"));
    shown.image_done("push", &what, &digest);
    Ok(digest)
}
