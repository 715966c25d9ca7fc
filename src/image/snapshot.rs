//! Layer snapshots for overlayfs, as containerd's overlayfs snapshotter keeps them: each layer
//! of an image extracted once, alone, into `STORE/snapshots/<chain id hex>/` with its whiteouts
//! in overlayfs's form, and a container's rootfs an overlay mount of its image's snapshots with
//! an upper and a work directory of its own in its bundle (`BUNDLE/overlay/{upper,work}`; the
//! snapshots it stacks are listed in `BUNDLE/overlay/lower`, which keeps them from garbage
//! collection while the bundle exists). `husk up` uses them, so a container costs a mount
//! instead of a copy of its image; `husk image unpack` still writes a plain copy the user owns.
//!
//! A snapshot is made in `STORE/tmp/` and renamed into place whole, so a killed extraction
//! leaves only a temp dir (garbage collection removes it) and two makers of one snapshot both
//! end with the same one.

use super::{apply_layer, layer, store::Store};
use anyhow::{bail, Context, Result};
use oci_spec::image::ImageManifest;
use sha2::{Digest as _, Sha256};
use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// The directory in a bundle that holds the overlay's own parts.
const OVERLAY_DIR: &str = "overlay";
/// The file in it naming the snapshots the rootfs stacks, one chain id hex per line.
const LOWER_FILE: &str = "lower";
/// The file in it holding the id maps of an id-mapped rootfs ([`IdMap`], JSON).
const IDMAP_FILE: &str = "idmap";

/// The id mapping of a rootfs for a container with a user namespace of its own: each snapshot
/// is stacked through an id-mapped mount (`uid_map`/`gid_map` texts, "inside outside count"
/// lines), so a file owned by 0 on disk shows as owned by `root_uid` (the container's root on
/// the host), and the upper directory belongs to that root.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IdMap {
    pub uid_map: String,
    pub gid_map: String,
    pub root_uid: u32,
    pub root_gid: u32,
}

/// The image spec's chain ids of a layer stack: the first layer's is its diff_id, each next
/// one `sha256(parent chain id + " " + diff_id)`.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(parent) => format!(
                "sha256:{}",
                super::store::hex(&Sha256::digest(format!("{parent} {d}").as_bytes()))
            ),
        };
        out.push(next);
    }
    out
}

fn hex_of(chain: &str) -> Result<&str> {
    let h = chain.strip_prefix("sha256:").unwrap_or(chain);
    if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("chain id {chain:?}: expected sha256:<64 hex digits>");
    }
    Ok(h)
}

fn snapshots_dir(store: &Store) -> PathBuf {
    store.root().join("snapshots")
}

/// The snapshot directories of an image's layers, bottom to top, each made where missing.
pub fn ensure(
    store: &Store,
    name: &str,
    manifest: &ImageManifest,
    diff_ids: &[String],
) -> Result<Vec<PathBuf>> {
    if diff_ids.len() != manifest.layers().len() {
        bail!(
            "unpack {name}: config lists {} diff_ids, the manifest {} layers",
            diff_ids.len(),
            manifest.layers().len()
        );
    }
    let dir = snapshots_dir(store);
    fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let opts = layer::ApplyOptions {
        overlay: true,
        ..Default::default()
    };
    let mut out = Vec::with_capacity(diff_ids.len());
    for ((l, diff_id), chain) in manifest
        .layers()
        .iter()
        .zip(diff_ids)
        .zip(chain_ids(diff_ids))
    {
        let snap = dir.join(hex_of(&chain)?);
        if !snap.exists() {
            make(store, &snap, |root| {
                apply_layer(store, name, l, diff_id, root, opts)
            })?;
        }
        out.push(snap);
    }
    Ok(out)
}

/// Make the snapshot `snap` by `apply` into a new directory in `tmp/`, renamed into place
/// whole once `apply` succeeds (removed when it fails).
fn make(
    store: &Store,
    snap: &Path,
    apply: impl FnOnce(std::os::fd::BorrowedFd<'_>) -> Result<()>,
) -> Result<()> {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let tmp = store.root().join("tmp").join(format!(
        "snapshot-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    fs::create_dir(&tmp).with_context(|| format!("create {}", tmp.display()))?;
    let made = crate::rootfs::resolve::open_root(&tmp)
        .with_context(|| format!("open {}", tmp.display()))
        .and_then(|root| apply(std::os::fd::AsFd::as_fd(&root)));
    if let Err(e) = made {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    // another husk may have made it meanwhile: then its copy stays and ours goes
    if let Err(e) = fs::rename(&tmp, snap) {
        let _ = fs::remove_dir_all(&tmp);
        if !snap.exists() {
            return Err(e).with_context(|| format!("rename into {}", snap.display()));
        }
    }
    Ok(())
}

/// During a pull (`husk up`'s, as root): the snapshot of layer `l` (chain id `chain`) made from
/// `blob`, the layer's download as it is written ([`super::follow`]), unless it exists. Kept
/// only when the whole blob was verified and its content is `diff_id`; otherwise nothing is
/// left and the error is returned ([`ensure`] makes it from the store later, or says why not).
pub(crate) fn make_while_pulled(
    store: &Store,
    name: &str,
    l: &oci_spec::image::Descriptor,
    diff_id: &str,
    chain: &str,
    blob: impl std::io::Read + Send,
) -> Result<()> {
    let dir = snapshots_dir(store);
    fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let snap = dir.join(hex_of(chain)?);
    if snap.exists() {
        return Ok(());
    }
    let opts = layer::ApplyOptions {
        overlay: true,
        ..Default::default()
    };
    make(store, &snap, |root| {
        super::apply_layer_from(name, l, diff_id, blob, root, opts)
    })
}

/// The highest uid or gid the layers `lowers` use: their files' owners and the ids their
/// `etc/passwd` and `etc/group` name (what a user namespace for the image must map, as podman
/// estimates the size of `--userns=auto`).
pub fn highest_id(lowers: &[PathBuf]) -> Result<u32> {
    use std::os::unix::fs::MetadataExt;
    let mut high = 0u32;
    for l in lowers {
        let mut stack = vec![l.clone()];
        while let Some(p) = stack.pop() {
            let md = fs::symlink_metadata(&p).with_context(|| format!("stat {}", p.display()))?;
            high = high.max(md.uid()).max(md.gid());
            if md.is_dir() {
                for e in fs::read_dir(&p).with_context(|| format!("read {}", p.display()))? {
                    stack.push(e?.path());
                }
            }
        }
        for (file, fields) in [("etc/passwd", &[2usize, 3][..]), ("etc/group", &[2][..])] {
            let path = l.join(file);
            if !fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
                continue;
            }
            let text = fs::read(&path).with_context(|| format!("read {}", path.display()))?;
            for line in String::from_utf8_lossy(&text).lines() {
                let f: Vec<&str> = line.split(':').collect();
                for i in fields {
                    if let Some(n) = f.get(*i).and_then(|v| v.trim().parse::<u32>().ok()) {
                        high = high.max(n);
                    }
                }
            }
        }
    }
    Ok(high)
}

/// Mount the overlay of `lowers` (bottom to top) at `BUNDLE/rootfs`, with the upper and work
/// directories in `BUNDLE/overlay`; with `idmap`, each lower through an id-mapped mount. On
/// error nothing of it is left.
pub fn mount(lowers: &[PathBuf], bundle: &Path, idmap: Option<&IdMap>) -> Result<()> {
    if lowers.is_empty() {
        bail!("an image without layers has nothing to mount");
    }
    let ov = bundle.join(OVERLAY_DIR);
    let rootfs = bundle.join("rootfs");
    let made = (|| {
        for d in [&ov.join("upper"), &ov.join("work"), &rootfs] {
            fs::create_dir_all(d).with_context(|| format!("create {}", d.display()))?;
        }
        let names: Vec<&str> = lowers
            .iter()
            .rev()
            .map(|p| p.file_name().and_then(|n| n.to_str()).unwrap_or_default())
            .collect();
        fs::write(ov.join(LOWER_FILE), names.join("\n") + "\n")
            .with_context(|| format!("write {}", ov.join(LOWER_FILE).display()))?;
        if let Some(m) = idmap {
            let upper = ov.join("upper");
            std::os::unix::fs::chown(&upper, Some(m.root_uid), Some(m.root_gid))
                .with_context(|| format!("chown {}", upper.display()))?;
            fs::write(ov.join(IDMAP_FILE), serde_json::to_vec(m)?)
                .with_context(|| format!("write {}", ov.join(IDMAP_FILE).display()))?;
        }
        mount_overlay(lowers, bundle, idmap)
    })();
    if made.is_err() {
        let _ = fs::remove_dir_all(&ov);
        let _ = fs::remove_dir(&rootfs);
    }
    made
}

fn mount_overlay(lowers: &[PathBuf], bundle: &Path, idmap: Option<&IdMap>) -> Result<()> {
    use std::os::fd::{AsFd, AsRawFd};
    let ov = bundle.join(OVERLAY_DIR);
    let rootfs = bundle.join("rootfs");
    // with an id map each lower is an id-mapped clone of its snapshot, never attached: overlayfs
    // takes it by its fd's /proc/self/fd path (it stacks private clones of its layers' mounts,
    // so the fds can close once it is mounted)
    let mut trees = Vec::new();
    if let Some(m) = idmap {
        let userns = crate::rootfs::idmap::userns_with_maps(&m.uid_map, &m.gid_map)?;
        for l in lowers {
            trees.push(crate::rootfs::idmap::mapped_clone(l, userns.as_fd())?);
        }
    }
    let lower_paths: Vec<PathBuf> = if trees.is_empty() {
        lowers.to_vec()
    } else {
        trees
            .iter()
            .map(|t| PathBuf::from(format!("/proc/self/fd/{}", t.as_raw_fd())))
            .collect()
    };
    let paths: Vec<String> = lower_paths
        .iter()
        .rev()
        .cloned()
        .chain([ov.join("upper"), ov.join("work")])
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    // overlayfs splits its options at ',' and lowerdir at ':'
    if let Some(p) = paths.iter().find(|p| p.contains([',', ':', '\\'])) {
        bail!("overlay: the path {p:?} holds a character overlayfs options cannot carry");
    }
    let (top, uw) = paths.split_at(paths.len() - 2);
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        top.join(":"),
        uw[0],
        uw[1]
    );
    nix::mount::mount(
        Some("overlay"),
        &rootfs,
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(data.as_str()),
    )
    .with_context(|| {
        format!(
            "mount overlay at {}{}",
            rootfs.display(),
            if idmap.is_some() {
                " (of id-mapped layers)"
            } else {
                ""
            }
        )
    })
}

/// Mount a kept bundle's overlay rootfs again where it is not mounted (after a reboot, or an
/// unmount by hand), from the snapshots its `lower` file names; nothing for a copied rootfs.
/// The bundle is `STORE/containers/ID`.
pub fn remount(bundle: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let ov = bundle.join(OVERLAY_DIR);
    let Ok(names) = fs::read_to_string(ov.join(LOWER_FILE)) else {
        return Ok(());
    };
    let rootfs = bundle.join("rootfs");
    let dev = |p: &Path| fs::metadata(p).map(|m| m.dev());
    if dev(&rootfs)? != dev(bundle)? {
        return Ok(()); // mounted
    }
    let store = bundle
        .parent()
        .and_then(Path::parent)
        .context("a bundle outside a store's containers dir")?;
    let mut lowers = Vec::new();
    for n in names.lines().rev() {
        let snap = store.join("snapshots").join(hex_of(n)?);
        if !snap.is_dir() {
            bail!(
                "the rootfs of {} stacks the snapshot {} that is gone",
                bundle.display(),
                snap.display()
            );
        }
        lowers.push(snap);
    }
    let idmap = match fs::read(ov.join(IDMAP_FILE)) {
        Ok(b) => Some(
            serde_json::from_slice::<IdMap>(&b)
                .with_context(|| format!("parse {}", ov.join(IDMAP_FILE).display()))?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("read {}", ov.join(IDMAP_FILE).display())),
    };
    mount_overlay(&lowers, bundle, idmap.as_ref())
}

/// Unmount a bundle's overlay rootfs, if it has one (a no-op for a copied rootfs, and for one
/// unmounted already).
pub fn release(bundle: &Path) -> Result<()> {
    if !bundle.join(OVERLAY_DIR).exists() {
        return Ok(());
    }
    let rootfs = bundle.join("rootfs");
    match nix::mount::umount2(&rootfs, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("unmount {}", rootfs.display())),
    }
}

/// Chain id hexes of the snapshots some bundle under `STORE/containers` stacks.
fn in_use(store: &Store) -> HashSet<String> {
    let mut out = HashSet::new();
    let Ok(rd) = fs::read_dir(store.root().join("containers")) else {
        return out;
    };
    for e in rd.flatten() {
        if let Ok(t) = fs::read_to_string(e.path().join(OVERLAY_DIR).join(LOWER_FILE)) {
            out.extend(t.lines().map(str::to_owned));
        }
    }
    out
}

/// Remove the snapshots that no image in the index and no bundle uses; returns how many went
/// and their bytes. Runs under the store's exclusive lock (see
/// [`Store::collect_garbage_report`]).
pub fn collect(store: &Store, images_diff_ids: &[Vec<String>]) -> Result<(usize, u64)> {
    let dir = snapshots_dir(store);
    let Ok(rd) = fs::read_dir(&dir) else {
        return Ok((0, 0));
    };
    let mut keep = in_use(store);
    for d in images_diff_ids {
        for c in chain_ids(d) {
            keep.insert(hex_of(&c).unwrap_or_default().to_owned());
        }
    }
    let (mut n, mut bytes) = (0, 0);
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !keep.contains(&name) {
            let size = super::store::tree_size(&e.path());
            fs::remove_dir_all(e.path())
                .with_context(|| format!("remove snapshot {}", e.path().display()))?;
            n += 1;
            bytes += size;
        }
    }
    Ok((n, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_image_spec() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let c = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(c[0], a);
        let want = format!(
            "sha256:{}",
            super::super::store::hex(&Sha256::digest(format!("{a} {b}").as_bytes()))
        );
        assert_eq!(c[1], want);
        assert!(hex_of("sha256:xyz").is_err());
    }
}
