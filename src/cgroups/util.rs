//! File helpers, /proc/self/mountinfo and /proc/self/cgroup parsing, path resolution.
//!
//! Everything that turns text into structure is a pure function over `&str` so it can be unit
//! tested without a cgroup filesystem.

use std::fs;
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};
use std::thread::sleep;
use std::time::Duration;

use anyhow::{anyhow, Result};

/// The error text the kernel's errno means, without Rust's " (os error N)" suffix, so messages
/// read like runc's: `... memory.limit_in_bytes: Device or resource busy`.
pub fn errstr(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
        None => e.to_string(),
    }
}

/// Write `value` to `dir/file` in a single write(2). `field` is the spec field the value came
/// from (e.g. `linux.resources.memory.limit`) and leads the error message.
pub fn write_file(dir: &Path, file: &str, value: &str, field: &str) -> Result<()> {
    let p = dir.join(file);
    write_path(&p, value).map_err(|e| {
        anyhow!(
            "{field}: writing {value:?} to {}: {}",
            p.display(),
            errstr(&e)
        )
    })
}

/// The raw write, for callers that look at the errno (EBUSY, ENOENT, EINVAL...).
pub fn write_path(p: &Path, value: &str) -> io::Result<()> {
    let mut f = fs::OpenOptions::new().write(true).open(p)?;
    f.write_all(value.as_bytes())
}

/// Read `dir/file` as text; errors name the path.
/// Write `value` to `path` if the kernel has that file (optional knobs such as hugetlb
/// reservation limits); any other failure is an error naming `field`.
pub fn write_if_present(path: &Path, value: &str, field: &str) -> Result<()> {
    match write_path(path, value) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(anyhow!(
            "{field}: writing {value:?} to {}: {}",
            path.display(),
            errstr(&e)
        )),
        _ => Ok(()),
    }
}

pub fn read_file(dir: &Path, file: &str) -> Result<String> {
    let p = dir.join(file);
    fs::read_to_string(&p).map_err(|e| anyhow!("reading {}: {}", p.display(), errstr(&e)))
}

/// Read `dir/file`; Ok(None) when it does not exist.
pub fn read_opt(dir: &Path, file: &str) -> Result<Option<String>> {
    let p = dir.join(file);
    match fs::read_to_string(&p) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow!("reading {}: {}", p.display(), errstr(&e))),
    }
}

/// Parse a single unsigned value as cgroup files print it; "max" reads as u64::MAX.
pub fn parse_u64(s: &str) -> Option<u64> {
    let s = s.trim();
    if s == "max" {
        return Some(u64::MAX);
    }
    s.parse().ok()
}

/// `mkdir -p` of `path` (mode 0755), returning the directories it created, top-down.
/// On error the ones created so far are removed again.
///
/// Optimistic: mkdir the leaf first and only walk up on ENOENT, so the usual case (the parent
/// exists) costs a single mkdir(2).
pub fn mkdir_all(path: &Path) -> Result<Vec<PathBuf>> {
    let mut created = Vec::new();
    if let Err(e) = mkdir_rec(path, &mut created) {
        for c in created.iter().rev() {
            let _ = fs::remove_dir(c);
        }
        return Err(e);
    }
    Ok(created)
}

fn mkdir_rec(path: &Path, created: &mut Vec<PathBuf>) -> Result<()> {
    match fs::create_dir(path) {
        Ok(()) => {
            created.push(path.to_path_buf());
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            if path.is_dir() {
                Ok(())
            } else {
                Err(anyhow!("{} exists and is not a directory", path.display()))
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let parent = path.parent().ok_or_else(|| mkdir_error(path, e))?;
            mkdir_rec(parent, created)?;
            match fs::create_dir(path) {
                Ok(()) => {
                    created.push(path.to_path_buf());
                    Ok(())
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
                Err(e) => Err(mkdir_error(path, e)),
            }
        }
        Err(e) => Err(mkdir_error(path, e)),
    }
}

/// "creating cgroup PATH: ERRNO: <strerror>", keeping the errno in the error chain (rootless
/// mode tells permission errors apart by it).
fn mkdir_error(path: &Path, e: io::Error) -> anyhow::Error {
    let msg = format!("creating cgroup {}", path.display());
    match e.raw_os_error() {
        Some(code) => anyhow::Error::new(nix::errno::Errno::from_raw(code)).context(msg),
        None => anyhow::Error::new(e).context(msg),
    }
}

/// Write each line with its own write(2) on one open file description (v1 devices.allow takes
/// one rule per write).
pub fn write_lines(dir: &Path, file: &str, lines: &[String], field: &str) -> Result<()> {
    let p = dir.join(file);
    let err = |v: &str, e: io::Error| {
        anyhow!("{field}: writing {v:?} to {}: {}", p.display(), errstr(&e))
    };
    let mut f = match fs::OpenOptions::new().write(true).open(&p) {
        Ok(f) => f,
        Err(e) => return Err(err(lines.first().map_or("", |s| s.as_str()), e)),
    };
    for l in lines {
        f.write_all(l.as_bytes()).map_err(|e| err(l, e))?;
    }
    Ok(())
}

/// rmdir `dir` and every cgroup below it (children first), retrying on EBUSY with an exponential
/// backoff for about a second in total (processes take a moment to leave after being killed).
/// A directory that is already gone is fine.
pub fn remove_cgroup_tree(dir: &Path) -> Result<()> {
    // the common case, no child cgroups and no processes left, is a single rmdir(2); only a
    // busy directory is listed for children
    match fs::remove_dir(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
        Err(e) => return Err(anyhow!("removing cgroup {}: {}", dir.display(), errstr(&e))),
    }
    if let Ok(rd) = fs::read_dir(dir) {
        for ent in rd.flatten() {
            if ent.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_cgroup_tree(&ent.path())?;
            }
        }
    }
    rmdir_retry(dir)
}

/// Whether `d` may be one of the ancestors a container's create made for its cgroup directory
/// `leaf` (which is `rel` below its hierarchy's mount point): strictly between the mount point
/// and `leaf`. What state.json lists is checked with this before delete removes anything.
pub fn created_ancestor(leaf: &Path, rel: &str, d: &Path) -> bool {
    let depth = Path::new(rel)
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count();
    let Some(mount) = leaf.ancestors().nth(depth) else {
        return false;
    };
    d != leaf && d != mount && leaf.starts_with(d) && d.starts_with(mount)
}

/// rmdir of an ancestor this process created: one attempt, and "still in use" (another
/// container's cgroup below it, EBUSY/ENOTEMPTY) or already gone is not an error.
pub fn rmdir_ancestor(dir: &Path) -> Result<()> {
    match fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e)
            if e.kind() == io::ErrorKind::NotFound
                || matches!(e.raw_os_error(), Some(libc::EBUSY) | Some(libc::ENOTEMPTY)) =>
        {
            Ok(())
        }
        Err(e) => Err(anyhow!("removing cgroup {}: {}", dir.display(), errstr(&e))),
    }
}

/// rmdir with the EBUSY backoff of [`remove_cgroup_tree`]; ENOENT is success.
pub fn rmdir_retry(dir: &Path) -> Result<()> {
    let mut delay = Duration::from_millis(5);
    let mut waited = Duration::ZERO;
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && waited < Duration::from_secs(1) => {
                sleep(delay);
                waited += delay;
                delay = (delay * 2).min(Duration::from_millis(200));
            }
            Err(e) => return Err(anyhow!("removing cgroup {}: {}", dir.display(), errstr(&e))),
        }
    }
}

/// Read every pid of `cgroup.procs` in `dir` and all cgroups below it. The top directory must
/// exist; a child cgroup that disappears while walking is skipped.
pub fn pids_recursive(dir: &Path, out: &mut Vec<i32>) -> Result<()> {
    pids_walk(dir, out, true)
}

fn pids_walk(dir: &Path, out: &mut Vec<i32>, top: bool) -> Result<()> {
    let p = dir.join("cgroup.procs");
    match fs::read_to_string(&p) {
        Ok(s) => out.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok())),
        Err(e) if e.kind() == io::ErrorKind::NotFound && !top => return Ok(()),
        Err(e) => return Err(anyhow!("reading {}: {}", p.display(), errstr(&e))),
    }
    if let Ok(rd) = fs::read_dir(dir) {
        for ent in rd.flatten() {
            if ent.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                pids_walk(&ent.path(), out, false)?;
            }
        }
    }
    Ok(())
}

/// Write a pid to `dir/cgroup.procs`, retrying EINVAL a few times as runc does (a task still
/// in TASK_NEW cannot be moved yet).
pub fn write_pid(dir: &Path, pid: i32) -> Result<()> {
    let p = dir.join("cgroup.procs");
    let v = pid.to_string();
    let mut tries = 0;
    loop {
        match write_path(&p, &v) {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && tries < 5 => {
                tries += 1;
                sleep(Duration::from_millis(30));
            }
            Err(e) => {
                return Err(anyhow!(
                    "adding pid {pid} to {}: {}",
                    p.display(),
                    errstr(&e)
                ))
            }
        }
    }
}

/// runc's `utils.CleanPath`: lexically clean `p`; a relative path cannot climb out with "..".
/// Returns "" for "".
pub fn clean_path(p: &str) -> String {
    if p.is_empty() {
        return String::new();
    }
    let abs = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for c in Path::new(p).components() {
        match c {
            Component::Normal(s) => parts.push(s.to_str().unwrap_or("")),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    let joined = parts.join("/");
    if abs {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".to_string()
    } else {
        joined
    }
}

/// Join a cgroup path (absolute or relative) below `base`: "/a/b" under "/x" is "/x/a/b".
pub fn join_under(base: &Path, p: &str) -> PathBuf {
    let rel = p.trim_start_matches('/');
    if rel.is_empty() || rel == "." {
        base.to_path_buf()
    } else {
        base.join(rel)
    }
}

/// One cgroup mount from /proc/self/mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    pub mountpoint: PathBuf,
    /// The mount's root inside its hierarchy (field 4), "/" on the host.
    pub root: String,
    /// true for cgroup2.
    pub v2: bool,
    /// v1 controllers from the super options, e.g. ["cpu", "cpuacct"] or ["name=systemd"].
    pub controllers: Vec<String>,
}

/// The cgroup and cgroup2 mounts in a mountinfo text. v1 controllers are taken from the super
/// options, which list the controllers ("rw,cpu,cpuacct") or the name ("rw,name=systemd").
///
/// A mount that something else was later mounted over (same mount point) is hidden and left
/// out.
pub fn parse_mountinfo(text: &str) -> Vec<CgroupMount> {
    let all = crate::sys::procfmt::mountinfo(text);
    let last: std::collections::HashMap<&Path, usize> = all
        .iter()
        .enumerate()
        .map(|(i, m)| (m.mount_point.as_path(), i))
        .collect();
    let mut out = Vec::new();
    for (i, m) in all.iter().enumerate() {
        if last.get(m.mount_point.as_path()) != Some(&i) {
            continue;
        }
        let v2 = match m.fstype.as_str() {
            "cgroup2" => true,
            "cgroup" => false,
            _ => continue,
        };
        let controllers = if v2 {
            Vec::new()
        } else {
            m.super_options
                .split(',')
                .filter(|o| is_v1_controller(o))
                .map(str::to_string)
                .collect()
        };
        out.push(CgroupMount {
            mountpoint: m.mount_point.clone(),
            root: m.root.clone(),
            v2,
            controllers,
        });
    }
    out
}

/// The cgroup mounts of this process's mount namespace ([`parse_mountinfo`] of
/// `/proc/self/mountinfo`), read once and reused while the namespace's mount table is
/// unchanged, as runc keeps its cgroup mount points: one command builds the manager of a
/// container's cgroup several times (`delete` asks the freezer, sweeps, then removes), and on a
/// node with many containers the table is long. The file stays open; the kernel marks it
/// (POLLERR|POLLPRI) at any mount or unmount in its namespace since it was opened or last
/// polled (proc(5)), so a zero-timeout poll says whether the parse still holds. The cache is
/// the process's own (a forked child reads afresh) and of one namespace (a `setns` or
/// `unshare` reads afresh).
pub fn cgroup_mounts() -> io::Result<std::sync::Arc<Vec<CgroupMount>>> {
    use std::io::{Read, Seek};
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    use std::sync::{Arc, Mutex};
    struct Cached {
        pid: u32,
        ns: u64,
        file: fs::File,
        mounts: Arc<Vec<CgroupMount>>,
    }
    static CACHE: Mutex<Option<Cached>> = Mutex::new(None);
    let pid = std::process::id();
    let ns = fs::metadata("/proc/self/ns/mnt").map_or(0, |m| m.ino());
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(c) = cache
        .as_ref()
        .filter(|c| c.pid == pid && c.ns == ns && ns != 0)
    {
        let mut fds = [nix::poll::PollFd::new(
            c.file.as_fd(),
            nix::poll::PollFlags::POLLPRI,
        )];
        if nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO) == Ok(0) {
            return Ok(c.mounts.clone());
        }
    }
    // (a change after the open is seen by the next poll: the parse is never kept too long)
    let mut file = match cache.take() {
        Some(c) if c.pid == pid && c.ns == ns => c.file,
        _ => fs::File::open("/proc/self/mountinfo")?,
    };
    file.rewind()?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    let mounts = Arc::new(parse_mountinfo(&text));
    *cache = Some(Cached {
        pid,
        ns,
        file,
        mounts: mounts.clone(),
    });
    Ok(mounts)
}

fn is_v1_controller(o: &str) -> bool {
    const KNOWN: &[&str] = &[
        "cpu",
        "cpuacct",
        "cpuset",
        "memory",
        "devices",
        "freezer",
        "net_cls",
        "net_prio",
        "blkio",
        "perf_event",
        "hugetlb",
        "pids",
        "rdma",
        "misc",
    ];
    o.starts_with("name=") || KNOWN.contains(&o)
}

/// The kernel's list of the files a cgroup v2 delegatee may write (/sys/kernel/cgroup/delegate).
pub const DELEGATE_LIST: &str = "/sys/kernel/cgroup/delegate";

/// The files of a cgroup v2 directory whose owner changes on delegation, from the text of
/// [`DELEGATE_LIST`] (one name per line), or, when the kernel has no such file (before 4.15),
/// the runtime-spec's fallback list. Names that are not a single path component are skipped.
pub fn delegate_files(list: Option<&str>) -> Vec<String> {
    match list {
        Some(t) => t
            .lines()
            .map(str::trim)
            .filter(|n| !n.is_empty() && *n != "." && *n != ".." && !n.contains('/'))
            .map(str::to_string)
            .collect(),
        None => ["cgroup.procs", "cgroup.subtree_control", "cgroup.threads"]
            .map(str::to_string)
            .to_vec(),
    }
}

/// cgroup v2 delegation (runtime-spec config-linux.md "Cgroup ownership"): give `dir` and the
/// delegatable files in it to `uid`/`gid` (None leaves that id alone). A listed file that this
/// cgroup lacks is skipped (the spec: "MUST NOT fail"); no other file changes owner.
pub fn delegate(dir: &Path, uid: Option<u32>, gid: Option<u32>) -> Result<()> {
    let list = match fs::read_to_string(DELEGATE_LIST) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(anyhow!("reading {DELEGATE_LIST}: {}", errstr(&e))),
    };
    let err = |p: &Path, e: io::Error| {
        anyhow!(
            "cgroup ownership: chown {} to {}:{}: {}",
            p.display(),
            uid.map_or("-".to_string(), |u| u.to_string()),
            gid.map_or("-".to_string(), |g| g.to_string()),
            errstr(&e)
        )
    };
    std::os::unix::fs::chown(dir, uid, gid).map_err(|e| err(dir, e))?;
    for f in delegate_files(list.as_deref()) {
        let p = dir.join(&f);
        // lchown: never follow a link out of the cgroup (cgroupfs has none anyway)
        match std::os::unix::fs::lchown(&p, uid, gid) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(&p, e)),
        }
    }
    Ok(())
}

/// Which cgroup layout the host has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// cgroup2 mounted at /sys/fs/cgroup.
    Unified,
    /// v1 controllers under /sys/fs/cgroup (maybe with a cgroup2 at /sys/fs/cgroup/unified).
    Legacy,
}

pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// statfs(/sys/fs/cgroup): CGROUP2_SUPER_MAGIC means pure v2; anything else (tmpfs with v1
/// mounts below) is v1 or hybrid.
pub fn detect_mode() -> Result<Mode> {
    let st = nix::sys::statfs::statfs(CGROUP_ROOT)
        .map_err(|e| anyhow!("statfs {CGROUP_ROOT}: {}", e.desc()))?;
    if st.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC {
        Ok(Mode::Unified)
    } else {
        Ok(Mode::Legacy)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn created_ancestors_stay_between_mount_and_leaf() {
        let leaf = Path::new("/sys/fs/cgroup/pids/a/b/c");
        let ok = |d: &str| super::created_ancestor(leaf, "/a/b/c", Path::new(d));
        assert!(ok("/sys/fs/cgroup/pids/a"));
        assert!(ok("/sys/fs/cgroup/pids/a/b"));
        for bad in [
            "/sys/fs/cgroup/pids/a/b/c",
            "/sys/fs/cgroup/pids",
            "/sys/fs/cgroup",
            "/etc",
            "/sys/fs/cgroup/pids/x",
            "/sys/fs/cgroup/pids/a/../x",
            "/sys/fs/cgroup/memory/a",
        ] {
            assert!(!ok(bad), "{bad}");
        }
    }

    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
50 31 0:39 /docker/abc /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
60 23 0:40 / /mnt/with\\040space rw - cgroup cgroup rw,freezer
70 23 0:41 / /proc rw - proc proc rw
";

    #[test]
    fn mountinfo_hybrid() {
        let m = parse_mountinfo(HYBRID);
        assert_eq!(m.len(), 6);
        assert_eq!(m[0].mountpoint, PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(m[0].controllers, vec!["cpu", "cpuacct"]);
        assert!(!m[0].v2);
        assert_eq!(m[2].controllers, vec!["name=systemd"]);
        assert!(m[3].v2);
        assert!(m[3].controllers.is_empty());
        assert_eq!(m[4].root, "/docker/abc");
        assert_eq!(m[5].mountpoint, PathBuf::from("/mnt/with space"));
        assert_eq!(m[5].controllers, vec!["freezer"]);
    }

    #[test]
    fn overmounted_hierarchy_is_hidden() {
        let text =
            format!("{HYBRID}99 30 0:99 / /sys/fs/cgroup/unified rw - tmpfs hide rw,size=1024k\n");
        assert!(parse_mountinfo(&text).iter().all(|m| !m.v2));
        assert!(parse_mountinfo(HYBRID).iter().any(|m| m.v2));
    }

    #[test]
    fn clean_paths() {
        assert_eq!(clean_path(""), "");
        assert_eq!(clean_path("/a/b/"), "/a/b");
        assert_eq!(clean_path("/a/../../b"), "/b");
        assert_eq!(clean_path("../../x/y"), "x/y");
        assert_eq!(clean_path("a/./b//c"), "a/b/c");
        assert_eq!(clean_path(".."), ".");
        assert_eq!(join_under(Path::new("/r"), "/a/b"), PathBuf::from("/r/a/b"));
        assert_eq!(join_under(Path::new("/r"), "a"), PathBuf::from("/r/a"));
        assert_eq!(join_under(Path::new("/r"), "/"), PathBuf::from("/r"));
    }

    #[test]
    fn mkdir_all_reports_what_it_created() {
        let t = tempfile::tempdir().unwrap();
        let leaf = t.path().join("a/b/c");
        let created = mkdir_all(&leaf).unwrap();
        assert_eq!(
            created,
            vec![t.path().join("a"), t.path().join("a/b"), leaf.clone()]
        );
        assert!(mkdir_all(&leaf).unwrap().is_empty());
        let created = mkdir_all(&t.path().join("a/b/d")).unwrap();
        assert_eq!(created, vec![t.path().join("a/b/d")]);
        std::fs::write(t.path().join("f"), "").unwrap();
        assert!(mkdir_all(&t.path().join("f")).is_err());
        assert!(mkdir_all(&t.path().join("f/x")).is_err());
        // nothing half-made is left behind on error
        assert!(!t.path().join("f/x").exists());
    }

    #[test]
    fn remove_tree_of_plain_dirs() {
        // on a normal filesystem a non-empty directory fails with ENOTEMPTY, not EBUSY: the
        // error must surface rather than be retried
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("x");
        std::fs::create_dir_all(d.join("y")).unwrap();
        assert!(remove_cgroup_tree(&d).is_err());
        std::fs::remove_dir(d.join("y")).unwrap();
        remove_cgroup_tree(&d).unwrap();
        assert!(!d.exists());
        remove_cgroup_tree(&d).unwrap(); // ENOENT is fine
    }

    #[test]
    fn delegate_file_list() {
        assert_eq!(
            delegate_files(None),
            vec!["cgroup.procs", "cgroup.subtree_control", "cgroup.threads"]
        );
        let k = "cgroup.procs\ncgroup.threads\ncgroup.subtree_control\nmemory.reclaim\n\n../x\n";
        assert_eq!(
            delegate_files(Some(k)),
            vec![
                "cgroup.procs",
                "cgroup.threads",
                "cgroup.subtree_control",
                "memory.reclaim"
            ]
        );
    }

    #[test]
    fn values() {
        assert_eq!(parse_u64("max\n"), Some(u64::MAX));
        assert_eq!(parse_u64("123\n"), Some(123));
        assert_eq!(parse_u64("x"), None);
        let e = io::Error::from_raw_os_error(libc::EBUSY);
        assert_eq!(errstr(&e), "Device or resource busy");
    }
}
