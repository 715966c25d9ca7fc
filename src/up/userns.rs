//! `husk up --userns host|auto[:size=N]`, as podman's rootful `--userns`: `host` (the default)
//! is no user namespace; `auto` gives the container a user namespace whose ids 0…size-1 are a
//! range of host ids no other container of the store holds, taken from the subordinate ids
//! `/etc/subuid` and `/etc/subgid` give the user `containers` (podman's `root_auto_ns_user`;
//! `$HUSK_SUBID_USER` names another). `keep-id` and `nomap` are podman's rootless modes and are
//! refused in its words.
//!
//! The ranges handed out are recorded in `STORE/userns/ID.json` under the flock of
//! `STORE/userns/.lock`, so concurrent `husk up --userns=auto` never share ids. A record belongs
//! to the bundle `STORE/containers/ID` once that exists, and is removed with it (`husk rm`,
//! `--rm`, the monitor's `--rm`, a failed `husk up`); before that, to the `husk up` that made
//! it (its pid and start time): a record whose bundle is missing and whose maker is gone (a
//! `husk up` killed before its bundle was made) is released by the next allocation and by
//! `husk image prune`.

use anyhow::{bail, Context, Result};
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
        ("keep-id" | "nomap", _) => bail!(
            "--userns {s:?}: {mode} is not supported by husk (husk up has no rootless user \
             namespace modes; expected host or auto[:size=N] as root)"
        ),
        ("container" | "ns" | "private", _) => bail!(
            "--userns {s:?}: {mode} is not supported by husk (expected host or auto[:size=N])"
        ),
        _ => bail!("--userns {s:?}: expected host or auto[:size=N]"),
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
    if mode == Mode::Host {
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

/// The process's user (`process.user` of the spec: uid, gid, additionalGids) must be ids of the
/// container's user namespace; `user` is what `-u` or the image asked for, for the error.
pub fn check_user(u: &Value, a: &Allocation, user: &str) -> Result<()> {
    let ids = [
        ("uid", &u["uid"], a.uid.size),
        ("gid", &u["gid"], a.gid.size),
    ];
    let extra = u["additionalGids"].as_array().cloned().unwrap_or_default();
    let mut all: Vec<(&str, &Value, u32)> = ids.to_vec();
    all.extend(extra.iter().map(|g| ("supplementary gid", g, a.gid.size)));
    for (what, v, size) in all {
        if let Some(n) = v.as_u64() {
            if n >= size as u64 {
                bail!(
                    "user {user:?}: {what} {n} is outside the container's user namespace (ids 0 \
                     to {} of --userns auto; size=N asks for more)",
                    size - 1
                );
            }
        }
    }
    Ok(())
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
        let user_err = format!("{:#}", parse_as("keep-id", false).unwrap_err());
        assert!(
            user_err.contains("keep-id is not supported by husk"),
            "{user_err}"
        );
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
