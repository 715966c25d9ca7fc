//! `husk up --userns host|auto[:size=N]|keep-id[:uid=U,gid=G]|nomap`, as podman's `--userns`:
//! `host` (the default) is no user namespace of the container's own; `auto` (root) gives the
//! container a user namespace whose ids 0…size-1 are a range of host ids no other container of
//! the store holds, taken from the subordinate ids `/etc/subuid` and `/etc/subgid` give the user
//! `containers` (podman's `root_auto_ns_user`; `$HUSK_SUBID_USER` names another). `keep-id` and
//! `nomap` are podman's rootless modes (refused for root in its words): a user's container gets
//! the user's own subordinate ids with the user's own uid and gid kept as they are (or at
//! `uid=`/`gid=`), or left out; the rootfs is unpacked in a user namespace of that mapping
//! ([`rootless_layout`], `image::unpack_mapped`).
//!
//! The ranges handed out are recorded in `STORE/userns/ID.json` under the flock of
//! `STORE/userns/.lock`, so concurrent `husk up --userns=auto` never share ids. A record belongs
//! to the bundle `STORE/containers/ID` once that exists, and is removed with it (`husk rm`,
//! `--rm`, the monitor's `--rm`, a failed `husk up`); before that, to the `husk up` that made
//! it (its pid and start time): a record whose bundle is missing and whose maker is gone (a
//! `husk up` killed before its bundle was made) is released by the next allocation and by
//! `husk image prune`.

use crate::image::config::CallerEntry;
use crate::image::layer::MappedIds;
use crate::image::userns::Layout;
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};

/// The subordinate-id owner whose ranges `auto` hands out (podman's `root_auto_ns_user`).
pub const DEFAULT_SUBID_USER: &str = "containers";
/// The environment variable naming another owner.
pub const SUBID_USER_ENV: &str = "HUSK_SUBID_USER";
/// The size of an `auto` range without `size=` when the image's ids cannot be read (podman's
/// `auto_userns_max_size`).
pub const DEFAULT_SIZE: u32 = 65536;
/// The smallest `auto` range husk estimates (podman's `auto_userns_min_size`).
pub const MIN_SIZE: u32 = 1024;

/// The size of an `auto` range without `size=`, as podman estimates it: one more than the
/// image's highest id (`image::highest_id`), at least [`MIN_SIZE`]; an image that needs more
/// than [`DEFAULT_SIZE`] is refused (podman's `auto_userns_max_size`), `size=` can ask for more.
pub fn estimate(highest: Option<u32>, flag: &str) -> Result<u32> {
    let Some(h) = highest else {
        return Ok(DEFAULT_SIZE);
    };
    let need = (h as u64 + 1).max(MIN_SIZE as u64);
    if need > DEFAULT_SIZE as u64 {
        bail!(
            "{flag}: the image uses id {h}, so its user namespace needs {need} ids, more than \
             the {DEFAULT_SIZE} --userns=auto gives without size=N"
        );
    }
    Ok(need as u32)
}

/// What `--userns` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// No user namespace of its own (podman's and docker's default).
    #[default]
    Host,
    /// A user namespace mapping 0…size-1 onto a free range of the subordinate ids.
    Auto { size: Option<u32> },
    /// A caller without root: its own uid and gid kept (or at `uid=`/`gid=`), its subordinate
    /// ids around them.
    KeepId { uid: Option<u32>, gid: Option<u32> },
    /// A caller without root: its subordinate ids alone, its own ids not mapped.
    NoMap,
}

impl std::fmt::Display for Mode {
    /// The flag as it was asked for, for errors (`--userns keep-id:uid=1000`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mode::Host => write!(f, "--userns host"),
            Mode::Auto { size: None } => write!(f, "--userns auto"),
            Mode::Auto { size: Some(n) } => write!(f, "--userns auto:size={n}"),
            Mode::NoMap => write!(f, "--userns nomap"),
            Mode::KeepId { uid, gid } => {
                let opts: Vec<String> = [("uid", uid), ("gid", gid)]
                    .iter()
                    .filter_map(|(k, v)| v.map(|v| format!("{k}={v}")))
                    .collect();
                match opts.is_empty() {
                    true => write!(f, "--userns keep-id"),
                    false => write!(f, "--userns keep-id:{}", opts.join(",")),
                }
            }
        }
    }
}

/// Parse `--userns VALUE`; errors name the flag, the value and what was expected.
pub fn parse(s: &str) -> Result<Mode> {
    parse_as(s, nix::unistd::geteuid().is_root())
}

/// [`parse`] for a caller that is root (podman's rootful mode) or not.
fn parse_as(s: &str, root: bool) -> Result<Mode> {
    let (mode, opts) = match s.split_once(':') {
        Some((m, o)) => (m, Some(o)),
        None => (s, None),
    };
    match (mode, opts) {
        ("" | "host", None) => Ok(Mode::Host),
        ("auto", None) => Ok(Mode::Auto { size: None }),
        ("auto", Some(opts)) => {
            let mut size = None;
            for o in opts.split(',') {
                match o.split_once('=') {
                    Some(("size", n)) => {
                        let n: u32 = n.parse().ok().filter(|n| *n > 0).with_context(|| {
                            format!(
                                "--userns {s:?}: size={n:?} is not a number of ids from 1 to \
                                 4294967295"
                            )
                        })?;
                        size = Some(n);
                    }
                    Some(("uidmapping" | "gidmapping", _)) => bail!(
                        "--userns {s:?}: the auto option {o:?} is not supported by husk (only \
                         size=N)"
                    ),
                    _ => bail!("--userns {s:?}: unknown auto option {o:?} (expected size=N)"),
                }
            }
            Ok(Mode::Auto { size })
        }
        ("keep-id" | "nomap", _) if root => {
            bail!("--userns {s:?}: {mode} is only supported in rootless mode")
        }
        ("nomap", None) => Ok(Mode::NoMap),
        ("nomap", Some(_)) => bail!("--userns {s:?}: nomap takes no options"),
        ("keep-id", None) => Ok(Mode::KeepId {
            uid: None,
            gid: None,
        }),
        ("keep-id", Some(opts)) => {
            let (mut uid, mut gid) = (None, None);
            for o in opts.split(',') {
                let slot = match o.split_once('=') {
                    Some(("uid", n)) => (&mut uid, "uid", n),
                    Some(("gid", n)) => (&mut gid, "gid", n),
                    Some(("size", _)) => bail!(
                        "--userns {s:?}: the keep-id option {o:?} is not supported by husk \
                         (only uid=U and gid=G)"
                    ),
                    _ => bail!(
                        "--userns {s:?}: unknown keep-id option {o:?} (expected uid=U, gid=G)"
                    ),
                };
                let (dst, what, n) = slot;
                // (4294967295 is no id: a user namespace never maps it)
                let v: u32 = n.parse().ok().filter(|v| *v < u32::MAX).with_context(|| {
                    format!("--userns {s:?}: {what}={n:?} is not an id from 0 to 4294967294")
                })?;
                *dst = Some(v);
            }
            Ok(Mode::KeepId { uid, gid })
        }
        ("container" | "ns" | "private", _) => bail!(
            "--userns {s:?}: {mode} is not supported by husk (expected {})",
            expected(root)
        ),
        _ => bail!("--userns {s:?}: expected {}", expected(root)),
    }
}

/// The values `--userns` takes for root or for another caller.
fn expected(root: bool) -> &'static str {
    if root {
        "host or auto[:size=N]"
    } else {
        "host, keep-id[:uid=U,gid=G] or nomap (auto[:size=N] needs root)"
    }
}

/// A run of ids: host ids `start…start+size-1`, container ids from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    pub start: u32,
    pub size: u32,
}

impl Range {
    fn end(&self) -> u64 {
        self.start as u64 + self.size as u64
    }
}

/// The ranges of one container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    pub uid: Range,
    pub gid: Range,
}

impl Allocation {
    /// The `uid_map` text of the mapping (for an id-mapped mount's user namespace).
    pub fn uid_map(&self) -> String {
        format!("0 {} {}\n", self.uid.start, self.uid.size)
    }

    pub fn gid_map(&self) -> String {
        format!("0 {} {}\n", self.gid.start, self.gid.size)
    }
}

/// The record of a range handed out: the container, the ranges, who made it.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    container: String,
    #[serde(flatten)]
    ids: Allocation,
    pid: i32,
    pid_start_time: u64,
}

fn dir(store: &Path) -> PathBuf {
    store.join("userns")
}

fn bundle(store: &Path, id: &str) -> PathBuf {
    super::bundle_dir(store, id)
}

/// The flock of the records, held until dropped.
type Lock = nix::fcntl::Flock<fs::File>;

fn lock(store: &Path) -> Result<Lock> {
    crate::state::lock_dir(&dir(store), 0o777, true)
}

/// The records, each with its file; unreadable ones are an error (never skipped silently).
fn records(store: &Path) -> Result<Vec<(PathBuf, Record)>> {
    let d = dir(store);
    let mut out = Vec::new();
    let rd = match fs::read_dir(&d) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("read {}", d.display())),
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.extension().is_none_or(|x| x != "json")
            || e.file_name().to_string_lossy().starts_with('.')
        {
            continue;
        }
        let data = fs::read(&p).with_context(|| format!("read {}", p.display()))?;
        let r: Record = serde_json::from_slice(&data)
            .with_context(|| format!("malformed user namespace record {}", p.display()))?;
        out.push((p, r));
    }
    out.sort_by_key(|(_, r)| r.ids.uid.start);
    Ok(out)
}

/// Whether a record still holds its range: its bundle exists, or its maker still runs.
fn live(store: &Path, r: &Record) -> bool {
    bundle(store, &r.container).exists()
        || crate::state::process_start_time(r.pid) == Some(r.pid_start_time)
}

/// The ranges `/etc/subuid`-format text gives `user` (subuid(5) also names an owner by its uid,
/// `uid` when the user exists), with the parser of the rootless unpack.
pub fn subid_ranges(text: &str, user: &str, uid: Option<u32>) -> Vec<Range> {
    // (u32::MAX is no one's uid: without a user of that name only the name matches)
    crate::image::userns::ranges_in(text, user, uid.unwrap_or(u32::MAX))
        .into_iter()
        .map(|r| Range {
            start: r.start,
            size: r.count,
        })
        .collect()
}

/// The first run of `size` ids within `avail` that overlaps none of `used`.
pub fn first_fit(avail: &[Range], used: &[Range], size: u32) -> Option<u32> {
    for a in avail {
        let mut at = a.start as u64;
        loop {
            if at + size as u64 > a.end() {
                break;
            }
            let clash = used
                .iter()
                .filter(|u| (u.start as u64) < at + size as u64 && u.end() > at)
                .map(Range::end)
                .max();
            match clash {
                None => return Some(at as u32),
                Some(end) => at = end,
            }
        }
    }
    None
}

fn subid_user() -> String {
    std::env::var(SUBID_USER_ENV)
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| DEFAULT_SUBID_USER.to_string())
}

fn read_subids(file: &str, user: &str, flag: &str) -> Result<Vec<Range>> {
    let text = match fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("{flag}: read {file}")),
    };
    let uid = nix::unistd::User::from_name(user)
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw());
    let r = subid_ranges(&text, user, uid);
    if r.is_empty() {
        bail!(
            "{flag}: {file} has no range for the user {user:?} (add a line such as \
             {user}:2147483647:2147483648; ${SUBID_USER_ENV} names another user)"
        );
    }
    Ok(r)
}

/// Check what `auto` needs before anything is made: root, and ranges for the user.
pub fn check(mode: Mode, flag: &str) -> Result<()> {
    if !matches!(mode, Mode::Auto { .. }) {
        return Ok(());
    }
    if !nix::unistd::geteuid().is_root() || crate::rootless::in_user_namespace() {
        bail!("{flag}: a user namespace of husk up's own needs root in the initial user namespace");
    }
    let user = subid_user();
    read_subids("/etc/subuid", &user, flag)?;
    read_subids("/etc/subgid", &user, flag)?;
    Ok(())
}

/// The user namespace of `keep-id` and `nomap` (`None` for the other modes): the caller's ids
/// and its `/etc/subuid` and `/etc/subgid` ranges, placed as podman places them. Found before
/// anything is made: a caller without ranges, or without newuidmap/newgidmap, is refused naming
/// the flag, the user and the file (or the tool); a `uid=`/`gid=` beyond the ids the mapping
/// holds (0 to the number of subordinate ids, the caller's own among them) naming the value.
pub fn rootless_layout(mode: Mode) -> Result<Option<Layout>> {
    use crate::image::userns::layout_of_caller;
    let (asked_uid, asked_gid) = match mode {
        Mode::KeepId { uid, gid } => (uid, gid),
        Mode::NoMap => (None, None),
        Mode::Host | Mode::Auto { .. } => return Ok(None),
    };
    let what = if mode == Mode::NoMap {
        "nomap"
    } else {
        "keep-id"
    };
    let l = layout_of_caller().map_err(|why| {
        anyhow!(
            "{mode}: {why} ({what} maps the container's ids to your subordinate ids, which \
             /etc/subuid and /etc/subgid give and newuidmap and newgidmap map)"
        )
    })?;
    layout_for(mode, asked_uid, asked_gid, l).map(Some)
}

/// The caller's layout `l` placed as `mode` asks (its `uid=`/`gid=` values `asked_*`).
fn layout_for(
    mode: Mode,
    asked_uid: Option<u32>,
    asked_gid: Option<u32>,
    l: Layout,
) -> Result<Layout> {
    use crate::image::userns::{count, Mapping};
    if mode == Mode::NoMap {
        return Ok(l.with_mapping(Mapping::NoMap));
    }
    for (kind, asked, ranges, file) in [
        ("uid", asked_uid, &l.uids, "/etc/subuid"),
        ("gid", asked_gid, &l.gids, "/etc/subgid"),
    ] {
        let n = count(ranges);
        if let Some(v) = asked.filter(|v| u64::from(*v) > n) {
            bail!(
                "{mode}: {kind}={v} is beyond the {} {kind}s the container's user namespace \
                 maps (0 to {n}: the {n} subordinate {kind}s {file} gives {} and your own)",
                n + 1,
                l.user
            );
        }
    }
    let (uid, gid) = (asked_uid.unwrap_or(l.uid), asked_gid.unwrap_or(l.gid));
    Ok(l.with_mapping(Mapping::KeepId { uid, gid }))
}

/// The user `keep-id` runs the process as when `-u` does not say (podman's): the caller's ids
/// as the mapping places them.
pub fn keep_id_user(l: &Layout) -> Option<String> {
    match l.mapping {
        crate::image::userns::Mapping::KeepId { uid, gid } => Some(format!("{uid}:{gid}")),
        _ => None,
    }
}

/// The caller's `/etc/passwd` and `/etc/group` lines `keep-id` adds (podman's
/// `AddCurrentUserPasswdEntry`): its name, gecos and group from the host's user database, at
/// the container ids the mapping gives it; the home directory is the caller's own when one of
/// `mounts` (container paths) puts something there or above it, else the container's working
/// directory `workdir`, as podman writes it.
pub fn caller_entry(l: &Layout, workdir: &str, mounts: &[String]) -> Option<CallerEntry> {
    let crate::image::userns::Mapping::KeepId { uid, gid } = l.mapping else {
        return None;
    };
    let host = nix::unistd::User::from_uid(l.uid.into()).ok().flatten();
    let home = host
        .as_ref()
        .map(|u| u.dir.to_string_lossy().into_owned())
        .filter(|h| h.starts_with('/'))
        .filter(|h| home_is_mounted(h, mounts))
        .unwrap_or_else(|| workdir.to_string());
    let gecos = host
        .as_ref()
        .map(|u| u.gecos.to_string_lossy().into_owned())
        .unwrap_or_default();
    let group = nix::unistd::Group::from_gid(l.gid.into())
        .ok()
        .flatten()
        .map(|g| g.name);
    Some(CallerEntry {
        name: l.user.clone(),
        uid,
        gid,
        gecos,
        home,
        group,
    })
}

/// Whether one of `mounts` (container paths) is `home` or a directory above it other than `/`
/// (podman's `MountExists` walk up from the home directory).
fn home_is_mounted(home: &str, mounts: &[String]) -> bool {
    let clean = super::flags::clean_container_path;
    let mounts: Vec<String> = mounts.iter().map(|m| clean(m)).collect();
    let mut p = std::path::PathBuf::from(clean(home));
    while p != Path::new("/") {
        if mounts.iter().any(|m| Path::new(m) == p) {
            return true;
        }
        if !p.pop() {
            break;
        }
    }
    false
}

/// The process's user (`process.user`: uid, gid, additionalGids) must be ids the `keep-id` or
/// `nomap` namespace maps; `user` is what `-u` or the image asked for, for the error.
pub fn check_mapped_user(u: &Value, l: &Layout, mode: Mode, user: &str) -> Result<()> {
    check_ids(u, l.uid_ids(), l.gid_ids(), user, &|what, ids| {
        format!(
            "{mode} maps {what}s {}: your own and your subordinate ids",
            ids.describe()
        )
    })
}

/// The process's uid, gid and supplementary gids (`process.user`) must lie in `uids`/`gids`;
/// an error names `user`, the id, and `maps(kind, ids)` says what the namespace holds.
fn check_ids(
    u: &Value,
    uids: MappedIds,
    gids: MappedIds,
    user: &str,
    maps: &dyn Fn(&str, MappedIds) -> String,
) -> Result<()> {
    let extra = u["additionalGids"].as_array().cloned().unwrap_or_default();
    let mut all = vec![("uid", &u["uid"], uids), ("gid", &u["gid"], gids)];
    all.extend(extra.iter().map(|g| ("supplementary gid", g, gids)));
    for (what, v, ids) in all {
        let Some(n) = v.as_u64() else {
            continue;
        };
        if !u32::try_from(n).is_ok_and(|n| ids.has(n)) {
            bail!(
                "user {user:?}: {what} {n} is outside the container's user namespace ({})",
                maps(what, ids)
            );
        }
    }
    Ok(())
}

/// The bundle's record of its `keep-id`/`nomap` maps: a user-mode network's holder makes the
/// container's user namespace with them at each run (config.json then joins it by path and
/// drops its own mappings).
pub const MAPS: &str = "userns-maps.json";

/// The maps of a user namespace: (containerID, hostID, size) triples of uids and gids.
pub type Maps = (Vec<(u32, u32, u32)>, Vec<(u32, u32, u32)>);

#[derive(Serialize, Deserialize)]
struct MapsRecord {
    #[serde(rename = "uidMappings")]
    uid: Vec<(u32, u32, u32)>,
    #[serde(rename = "gidMappings")]
    gid: Vec<(u32, u32, u32)>,
}

/// Record `l`'s container maps in the bundle.
pub fn save_maps(bundle: &Path, l: &Layout) -> Result<()> {
    let rec = MapsRecord {
        uid: l.uid_triples(),
        gid: l.gid_triples(),
    };
    crate::state::write_atomic(&bundle.join(MAPS), &serde_json::to_vec_pretty(&rec)?, 0o600)
}

/// The maps the bundle recorded (`None`: none, a container of the caller's own ids alone).
pub fn load_maps(bundle: &Path) -> Result<Option<Maps>> {
    let p = bundle.join(MAPS);
    let data = match fs::read(&p) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("read {}", p.display())),
    };
    let r: MapsRecord = serde_json::from_slice(&data)
        .with_context(|| format!("malformed id maps {}", p.display()))?;
    Ok(Some((r.uid, r.gid)))
}

/// Hand container `id` of the store a range of `size` uids and gids no live record holds, and
/// record it. Stale records (no bundle, maker gone) are released first.
pub fn allocate(store: &Path, id: &str, size: u32, flag: &str) -> Result<Allocation> {
    let user = subid_user();
    let subuid = read_subids("/etc/subuid", &user, flag)?;
    let subgid = read_subids("/etc/subgid", &user, flag)?;
    let _lock = lock(store)?;
    let mut used = Vec::new();
    for (path, r) in records(store)? {
        if r.container == id {
            if live(store, &r) {
                bail!("{flag}: container {id} holds a user namespace range already");
            }
        } else if live(store, &r) {
            used.push(r.ids);
            continue;
        }
        fs::remove_file(&path).with_context(|| format!("remove {}", path.display()))?;
    }
    let pick = |avail: &[Range], used: Vec<Range>, what: &str| {
        first_fit(avail, &used, size).with_context(|| {
            format!(
                "{flag}: no free range of {size} {what} left in the ranges of {user:?} (other \
                 containers hold the rest)"
            )
        })
    };
    let uid = pick(&subuid, used.iter().map(|a| a.uid).collect(), "uids")?;
    let gid = pick(&subgid, used.iter().map(|a| a.gid).collect(), "gids")?;
    let me = std::process::id() as i32;
    let rec = Record {
        container: id.to_string(),
        ids: Allocation {
            uid: Range { start: uid, size },
            gid: Range { start: gid, size },
        },
        pid: me,
        pid_start_time: crate::state::process_start_time(me)
            .context("read husk's own start time")?,
    };
    let path = dir(store).join(format!("{id}.json"));
    crate::state::write_atomic(&path, &serde_json::to_vec_pretty(&rec)?, 0o600)?;
    Ok(rec.ids)
}

/// Give back container `id`'s range (nothing when it has none: one stat).
pub fn release(store: &Path, id: &str) -> Result<()> {
    let path = dir(store).join(format!("{id}.json"));
    if !path.exists() {
        return Ok(());
    }
    let _lock = lock(store)?;
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("remove {}", path.display())),
    }
}

/// Release the records no bundle and no running `husk up` holds; returns how many.
pub fn collect(store: &Path) -> Result<usize> {
    if !dir(store).exists() {
        return Ok(0);
    }
    let _lock = lock(store)?;
    let mut n = 0;
    for (path, r) in records(store)? {
        if !live(store, &r) {
            fs::remove_file(&path).with_context(|| format!("remove {}", path.display()))?;
            n += 1;
        }
    }
    Ok(n)
}

/// A volume made for this container belongs to its root, as podman gives a new volume to the
/// container and Docker's `userns-remap` to the remapped root: each of `new` (made by this
/// `husk up`) that still belongs to the host's root (not filled from the image, whose files
/// come with owners of the range) is chowned to the range's first ids. Existing volumes are
/// left as they are.
pub fn own_new_volumes(new: &[PathBuf], a: &Allocation) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    for d in new {
        let md = fs::symlink_metadata(d).with_context(|| format!("stat {}", d.display()))?;
        if md.is_dir() && md.uid() == 0 && md.gid() == 0 {
            std::os::unix::fs::lchown(d, Some(a.uid.start), Some(a.gid.start))
                .with_context(|| format!("chown the volume {}", d.display()))?;
        }
    }
    Ok(())
}

/// A volume made for a container of `keep-id` or `nomap` belongs to its process's user, as podman
/// gives it (`fixVolumePermissions`): each of `new` (made by this `husk up`) that is still the
/// caller's (not filled from the image) is chowned to `user` (container ids). Runs as root of
/// the container's ids ([`crate::image::userns::run_mapped`]).
pub fn own_new_volumes_mapped(new: &[PathBuf], l: &Layout, user: (u32, u32)) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let caller = l.ns_caller_at();
    for d in new {
        let md = fs::symlink_metadata(d).with_context(|| format!("stat {}", d.display()))?;
        if md.is_dir() && (md.uid(), md.gid()) == caller && (md.uid(), md.gid()) != user {
            std::os::unix::fs::lchown(d, Some(user.0), Some(user.1))
                .with_context(|| format!("chown the volume {}", d.display()))?;
        }
    }
    Ok(())
}

/// The process's user (`process.user` of the spec: uid, gid, additionalGids) must be ids of the
/// container's user namespace; `user` is what `-u` or the image asked for, for the error.
pub fn check_user(u: &Value, a: &Allocation, user: &str) -> Result<()> {
    let range = |r: Range| MappedIds {
        below: r.size.into(),
        also: None,
    };
    check_ids(u, range(a.uid), range(a.gid), user, &|_, ids| {
        format!(
            "ids 0 to {} of --userns auto; size=N asks for more",
            ids.below - 1
        )
    })
}

/// The container's spec gets a user namespace of its own with the allocation's mappings.
pub fn apply(spec: &mut Value, a: &Allocation) {
    if !spec["linux"]["namespaces"].is_array() {
        spec["linux"]["namespaces"] = json!([]);
    }
    if let Some(ns) = spec["linux"]["namespaces"].as_array_mut() {
        if !ns.iter().any(|n| n["type"] == "user") {
            ns.push(json!({"type": "user"}));
        }
    }
    spec["linux"]["uidMappings"] =
        json!([{"containerID": 0, "hostID": a.uid.start, "size": a.uid.size}]);
    spec["linux"]["gidMappings"] =
        json!([{"containerID": 0, "hostID": a.gid.start, "size": a.gid.size}]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        assert_eq!(parse("host").unwrap(), Mode::Host);
        assert_eq!(parse("").unwrap(), Mode::Host);
        assert_eq!(parse("auto").unwrap(), Mode::Auto { size: None });
        assert_eq!(
            parse("auto:size=8192").unwrap(),
            Mode::Auto { size: Some(8192) }
        );
        let err = |s: &str| format!("{:#}", parse_as(s, true).unwrap_err());
        assert!(err("auto:size=0").contains("--userns \"auto:size=0\""));
        assert!(err("auto:size=x").contains("size=\"x\""));
        assert!(err("auto:bogus").contains("unknown auto option"));
        assert!(err("bogus").contains("--userns \"bogus\": expected host or auto"));
        assert!(err("keep-id").contains("keep-id is only supported in rootless mode"));
        assert!(err("keep-id:uid=1").contains("keep-id is only supported in rootless mode"));
        assert!(err("nomap").contains("nomap is only supported in rootless mode"));
        assert!(err("host:x").contains("expected host"));
        assert!(err("auto:uidmapping=0:1:2").contains("not supported"));
    }

    #[test]
    fn rootless_values() {
        let user = |s: &str| parse_as(s, false);
        let user_err = |s: &str| format!("{:#}", parse_as(s, false).unwrap_err());
        assert_eq!(
            user("keep-id").unwrap(),
            Mode::KeepId {
                uid: None,
                gid: None
            }
        );
        assert_eq!(
            user("keep-id:uid=1000,gid=1001").unwrap(),
            Mode::KeepId {
                uid: Some(1000),
                gid: Some(1001)
            }
        );
        assert_eq!(
            user("keep-id:gid=0").unwrap(),
            Mode::KeepId {
                uid: None,
                gid: Some(0)
            }
        );
        assert_eq!(user("nomap").unwrap(), Mode::NoMap);
        assert_eq!(user("host").unwrap(), Mode::Host);
        // the flag as asked, for errors
        assert_eq!(
            user("keep-id:uid=1000,gid=1001").unwrap().to_string(),
            "--userns keep-id:uid=1000,gid=1001"
        );
        assert_eq!(user("keep-id").unwrap().to_string(), "--userns keep-id");
        assert_eq!(Mode::NoMap.to_string(), "--userns nomap");
        let e = user_err("keep-id:uid=x");
        assert!(
            e.contains("uid=\"x\" is not an id from 0 to 4294967294"),
            "{e}"
        );
        assert!(user_err("keep-id:uid=4294967295").contains("uid=\"4294967295\""));
        assert!(user_err("keep-id:uid=-1").contains("not an id"));
        assert!(user_err("keep-id:size=10").contains("not supported by husk"));
        assert!(user_err("keep-id:bogus").contains("unknown keep-id option \"bogus\""));
        assert!(user_err("keep-id:").contains("unknown keep-id option \"\""));
        assert!(user_err("nomap:uid=1").contains("nomap takes no options"));
        let e = user_err("bogus");
        assert!(
            e.contains("expected host, keep-id[:uid=U,gid=G] or nomap"),
            "{e}"
        );
    }

    #[test]
    fn keep_id_and_nomap_layouts() {
        use crate::image::userns::{Mapping, Range as R};
        let r = |start, count| R { start, count };
        // nobody with 200000 subordinate ids: podman's three lines
        let l = Layout::of(
            "nobody",
            65534,
            65534,
            vec![r(2000000, 200000)],
            vec![r(3000000, 200000)],
        );
        let keep = Mode::KeepId {
            uid: None,
            gid: None,
        };
        let k = layout_for(keep, None, None, l.clone()).unwrap();
        assert_eq!(
            k.mapping,
            Mapping::KeepId {
                uid: 65534,
                gid: 65534
            }
        );
        assert_eq!(
            k.uid_triples(),
            [
                (0, 2000000, 65534),
                (65534, 65534, 1),
                (65535, 2065534, 134466)
            ]
        );
        assert_eq!(keep_id_user(&k).as_deref(), Some("65534:65534"));
        // uid=, gid=: the caller at those ids; the process user follows
        let asked = Mode::KeepId {
            uid: Some(1000),
            gid: Some(1000),
        };
        let k = layout_for(asked, Some(1000), Some(1000), l.clone()).unwrap();
        assert_eq!(k.uid_triples()[1], (1000, 65534, 1));
        assert_eq!(keep_id_user(&k).as_deref(), Some("1000:1000"));
        // up to the count itself (the last id of 0..=count), not beyond
        assert!(layout_for(asked, Some(200000), None, l.clone()).is_ok());
        let e = format!(
            "{:#}",
            layout_for(asked, Some(200001), None, l.clone()).unwrap_err()
        );
        assert!(e.contains("uid=200001 is beyond the 200001 uids"), "{e}");
        assert!(e.contains("/etc/subuid gives nobody"), "{e}");
        let e = format!(
            "{:#}",
            layout_for(asked, None, Some(4000000), l.clone()).unwrap_err()
        );
        assert!(e.contains("gid=4000000"), "{e}");
        // a caller's own uid beyond the count: podman's gap, not an error
        let small = Layout::of(
            "nobody",
            65534,
            65534,
            vec![r(2000000, 1000)],
            vec![r(3000000, 1000)],
        );
        let k = layout_for(keep, None, None, small).unwrap();
        assert_eq!(k.uid_triples(), [(0, 2000000, 1000), (65534, 65534, 1)]);
        // nomap: the caller's ids nowhere, the process user checked against the ranges
        let n = layout_for(Mode::NoMap, None, None, l.clone()).unwrap();
        assert_eq!(n.uid_triples(), [(0, 2000000, 200000)]);
        assert_eq!(keep_id_user(&n), None);
        let user = |uid: u64, gid: u64| json!({"uid": uid, "gid": gid, "additionalGids": [gid]});
        assert!(check_mapped_user(&user(0, 0), &n, Mode::NoMap, "").is_ok());
        let e = format!(
            "{:#}",
            check_mapped_user(&user(200000, 0), &n, Mode::NoMap, "200000").unwrap_err()
        );
        assert!(e.contains("user \"200000\": uid 200000 is outside"), "{e}");
        assert!(e.contains("--userns nomap maps uids 0-199999"), "{e}");
        let k = layout_for(keep, None, None, l).unwrap();
        assert!(check_mapped_user(&user(65534, 65534), &k, keep, "").is_ok());
        assert!(check_mapped_user(&user(0, 200001), &k, keep, "").is_err());
    }

    #[test]
    fn caller_entry_home_as_podman() {
        let mounts = |m: &[&str]| m.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(home_is_mounted("/home/u", &mounts(&["/home/u"])));
        assert!(home_is_mounted("/home/u", &mounts(&["/home/"])));
        assert!(home_is_mounted("/home/u/", &mounts(&["/home/u"])));
        assert!(!home_is_mounted("/home/u", &mounts(&["/"])));
        assert!(!home_is_mounted(
            "/home/u",
            &mounts(&["/home/u/x", "/data"])
        ));
        assert!(!home_is_mounted("/home/u", &[]));
        // only keep-id adds one
        let l = Layout::of("nobody", 65534, 65534, vec![], vec![]);
        assert_eq!(caller_entry(&l, "/", &[]), None);
        let k = l.with_mapping(crate::image::userns::Mapping::KeepId { uid: 7, gid: 8 });
        let e = caller_entry(&k, "/work", &[]).unwrap();
        assert_eq!((e.name.as_str(), e.uid, e.gid), ("nobody", 7, 8));
        assert_eq!(e.home, "/work");
    }

    #[test]
    fn estimated_sizes() {
        assert_eq!(estimate(None, "f").unwrap(), 65536);
        assert_eq!(estimate(Some(0), "f").unwrap(), 1024);
        assert_eq!(estimate(Some(65534), "f").unwrap(), 65535);
        assert_eq!(estimate(Some(65535), "f").unwrap(), 65536);
        let e = format!("{:#}", estimate(Some(100000), "--userns auto").unwrap_err());
        assert!(e.contains("--userns auto: the image uses id 100000"), "{e}");
        assert!(estimate(Some(u32::MAX), "f").is_err());
    }

    #[test]
    fn users_outside_the_range_are_refused() {
        let a = Allocation {
            uid: Range {
                start: 1000,
                size: 1000,
            },
            gid: Range {
                start: 1000,
                size: 1000,
            },
        };
        let u = |uid: u64, gid: u64, extra: Value| json!({"uid": uid, "gid": gid, "additionalGids": extra});
        assert!(check_user(&u(999, 999, json!([999])), &a, "x").is_ok());
        let e = format!(
            "{:#}",
            check_user(&u(1000, 0, json!([])), &a, "1000").unwrap_err()
        );
        assert!(e.contains("user \"1000\": uid 1000 is outside"), "{e}");
        assert!(e.contains("ids 0 to 999"), "{e}");
        assert!(check_user(&u(0, 1000, json!([])), &a, "x").is_err());
        let e = format!(
            "{:#}",
            check_user(&u(0, 0, json!([0, 5000])), &a, "x").unwrap_err()
        );
        assert!(e.contains("supplementary gid 5000"), "{e}");
    }

    #[test]
    fn subid_lines() {
        let t = "alice:100000:65536\ncontainers:2147483647:2147483648\n# x\ncontainers:5:0\n\
                 containers:1:2:3\ncontainers:4294967295:2\n";
        assert_eq!(
            subid_ranges(t, "containers", None),
            vec![Range {
                start: 2147483647,
                size: 2147483648
            }]
        );
        assert_eq!(subid_ranges(t, "bob", None), vec![]);
        // by uid too
        let t = "1001:300000:1000\nbob:400000:10\n";
        assert_eq!(
            subid_ranges(t, "bob", Some(1001)),
            vec![
                Range {
                    start: 300000,
                    size: 1000
                },
                Range {
                    start: 400000,
                    size: 10
                }
            ]
        );
    }

    #[test]
    fn fits_around_used_ranges() {
        let r = |start, size| Range { start, size };
        let avail = [r(1000, 100), r(5000, 300)];
        assert_eq!(first_fit(&avail, &[], 100), Some(1000));
        assert_eq!(first_fit(&avail, &[r(1000, 10)], 100), Some(5000));
        assert_eq!(first_fit(&avail, &[r(1000, 10)], 90), Some(1010));
        assert_eq!(
            first_fit(&avail, &[r(1000, 100), r(5000, 100), r(5150, 10)], 100),
            Some(5160)
        );
        assert_eq!(
            first_fit(&avail, &[r(1050, 1), r(5000, 100), r(5100, 200)], 100),
            None
        );
        assert_eq!(first_fit(&[r(u32::MAX, 1)], &[], 1), Some(u32::MAX));
        assert_eq!(first_fit(&avail, &[], 301), None);
    }

    #[test]
    fn spec_gets_the_namespace_and_maps() {
        let mut v = json!({"linux": {"namespaces": [{"type": "pid"}]}});
        let a = Allocation {
            uid: Range {
                start: 200000,
                size: 65536,
            },
            gid: Range {
                start: 300000,
                size: 65536,
            },
        };
        apply(&mut v, &a);
        assert_eq!(
            v["linux"]["namespaces"],
            json!([{"type": "pid"}, {"type": "user"}])
        );
        assert_eq!(v["linux"]["uidMappings"][0]["hostID"], 200000);
        assert_eq!(v["linux"]["gidMappings"][0]["hostID"], 300000);
        assert_eq!(a.uid_map(), "0 200000 65536\n");
    }
}
