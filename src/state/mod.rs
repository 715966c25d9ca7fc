//! The container store under `--root`: one directory per container (0700) holding `state.json`
//! (0600, written atomically), a copy of config.json, and the exec socket while the container is
//! `created`. A flock on the container directory serialises commands on one container.

use crate::cgroups::CgroupState;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub use crate::sys::time::{now_rfc3339, rfc3339};

pub const STATE_FILE: &str = "state.json";
pub const CONFIG_FILE: &str = "config.json";
pub const EXEC_SOCKET: &str = "exec.sock";

/// Container status as callers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// What husk keeps on disk for a container. The OCI fields come first; the rest is husk's own.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerState {
    pub oci_version: String,
    pub id: String,
    /// Host pid of the container's init process.
    pub pid: i32,
    /// Start time of `pid` (field 22 of /proc/PID/stat), to detect pid reuse.
    pub pid_start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
    pub owner: String,
    /// Set by pause/resume.
    #[serde(default)]
    pub paused: bool,
    pub cgroup: CgroupState,
    /// The container has its own pid namespace (killing init kills everything).
    #[serde(default)]
    pub own_pid_ns: bool,
    #[serde(default)]
    pub systemd_cgroup: bool,
    /// Hooks later commands run (start, delete), kept so they need not re-read config.json.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub poststart: Vec<oci_spec::runtime::Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub poststop: Vec<oci_spec::runtime::Hook>,
    /// Without a mount namespace of its own: the id of the rootfs bind made in the runtime's
    /// mount namespace (`sys::mount_id`), unmounted with everything under it at delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_rootfs_mount: Option<u64>,
}

/// The output of `husk state` and the elements of `husk list --format json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState<'a> {
    pub oci_version: &'a str,
    pub id: &'a str,
    pub pid: i32,
    pub status: &'a str,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub created: &'a str,
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub annotations: &'a HashMap<String, String>,
    pub owner: &'a str,
}

impl ContainerState {
    pub fn oci<'a>(&'a self, status: Status) -> OciState<'a> {
        self.oci_with(status.as_str())
    }

    /// [`ContainerState::oci`] with the status as text.
    pub fn oci_with<'a>(&'a self, status: &'a str) -> OciState<'a> {
        OciState {
            oci_version: &self.oci_version,
            id: &self.id,
            pid: if status == Status::Stopped.as_str() {
                0
            } else {
                self.pid
            },
            status,
            bundle: &self.bundle,
            rootfs: &self.rootfs,
            created: &self.created,
            annotations: &self.annotations,
            owner: &self.owner,
        }
    }
}

/// runc's rule for container ids, plus a length bound: checked before anything touches the
/// filesystem, since the id becomes a path component.
pub fn validate_id(id: &str) -> Result<()> {
    if id.is_empty() {
        bail!("container id cannot be empty");
    }
    if id.len() > 1024 {
        bail!("invalid container id: longer than 1024 bytes");
    }
    if id == "." || id == ".." {
        bail!("invalid container id: {id:?}");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.'))
    {
        bail!("invalid container id: {id:?} (allowed: letters, digits, '_', '+', '-', '.')");
    }
    Ok(())
}

/// A container whose state file exists but cannot be read or parsed (see `Store::load_all`).
#[derive(Debug)]
pub struct Unreadable {
    pub id: String,
    pub reason: String,
}

/// The store at `--root`.
pub struct Store {
    pub root: PathBuf,
}

/// The name prefix of a new container's directory before it is renamed to its id ('@' is in
/// no id).
const NEW_DIR_PREFIX: &str = "@new.";

impl Store {
    pub fn new(root: &Path) -> Self {
        Store {
            root: root.to_path_buf(),
        }
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Create the directory of a new container, locked (see [`Store::lock`]); fails if the id
    /// is taken. It is made under a private name (one no id can have), locked, and renamed into
    /// place without replacing anything, so it never exists unlocked: a `delete --force` cannot
    /// take a create's directory for the remains of a killed one. Filesystems without
    /// RENAME_NOREPLACE get a plain mkdir and lock.
    pub fn create_dir(&self, id: &str) -> Result<(PathBuf, nix::fcntl::Flock<File>)> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .with_context(|| format!("create state root {}", self.root.display()))?;
        let dir = self.dir(id);
        let exists = || anyhow::anyhow!("container with id exists: {id}");
        if dir.exists() {
            return Err(exists());
        }
        let lock = |path: &Path| -> Result<nix::fcntl::Flock<File>> {
            let f = File::open(path).with_context(|| format!("open {}", path.display()))?;
            nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
                .map_err(|(_, e)| e)
                .with_context(|| format!("lock {}", path.display()))
        };
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let tmp = self.root.join(format!(
            "{NEW_DIR_PREFIX}{}.{}",
            std::process::id(),
            SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&tmp)
            .with_context(|| format!("create state dir {}", tmp.display()))?;
        let locked = match lock(&tmp) {
            Ok(l) => l,
            Err(e) => {
                let _ = fs::remove_dir(&tmp);
                return Err(e);
            }
        };
        crate::fault::step("create: private state dir made");
        use nix::fcntl::{renameat2, RenameFlags};
        let cwd = nix::fcntl::AT_FDCWD;
        match renameat2(cwd, &tmp, cwd, &dir, RenameFlags::RENAME_NOREPLACE) {
            Ok(()) => Ok((dir, locked)),
            Err(e) => {
                let _ = fs::remove_dir(&tmp);
                drop(locked);
                match e {
                    nix::errno::Errno::EEXIST => Err(exists()),
                    nix::errno::Errno::EINVAL | nix::errno::Errno::ENOSYS => {
                        match fs::DirBuilder::new().mode(0o700).create(&dir) {
                            Ok(()) => Ok((dir.clone(), lock(&dir)?)),
                            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                                Err(exists())
                            }
                            Err(e) => Err(e)
                                .with_context(|| format!("create state dir {}", dir.display())),
                        }
                    }
                    e => Err(e)
                        .with_context(|| format!("rename {} to {}", tmp.display(), dir.display())),
                }
            }
        }
    }

    /// Load a container's state; "does not exist" is the wording callers match on.
    pub fn load(&self, id: &str) -> Result<ContainerState> {
        validate_id(id)?;
        let path = self.dir(id).join(STATE_FILE);
        let data = match read_small(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!("container {id} does not exist")
            }
            Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
        };
        serde_json::from_slice(&data).with_context(|| format!("parse {}", path.display()))
    }

    /// Every container's state, by id order, for `list`: state files are opened relative to one
    /// open root directory (no path walk from / per container). A container without a state
    /// file (one being created right now, or whose create was killed) is left out; one whose
    /// state file cannot be read or parsed is returned as an `Err` with its id and the reason,
    /// so that `list` still shows it.
    pub fn load_all(&self) -> Result<Vec<std::result::Result<ContainerState, Unreadable>>> {
        let ids = self.ids()?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let root =
            File::open(&self.root).with_context(|| format!("open {}", self.root.display()))?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let bad = |reason: String| {
                Err(Unreadable {
                    id: id.clone(),
                    reason,
                })
            };
            let name = format!("{id}/{STATE_FILE}");
            let fd = match nix::fcntl::openat(
                &root,
                name.as_str(),
                nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            ) {
                Ok(fd) => fd,
                Err(nix::errno::Errno::ENOENT) => continue,
                Err(e) => {
                    out.push(bad(format!("open {STATE_FILE}: {}", e.desc())));
                    continue;
                }
            };
            let data = match read_all(File::from(fd)) {
                Ok(d) => d,
                Err(e) => {
                    out.push(bad(format!("read {STATE_FILE}: {e}")));
                    continue;
                }
            };
            out.push(match serde_json::from_slice::<ContainerState>(&data) {
                Ok(st) if st.id == id => Ok(st),
                Ok(st) => bad(format!(
                    "{STATE_FILE} names another container ({:?})",
                    st.id
                )),
                Err(e) => bad(format!("parse {STATE_FILE}: {e}")),
            });
        }
        Ok(out)
    }

    /// Write state.json atomically (temp file + rename), mode 0600.
    pub fn save(&self, st: &ContainerState) -> Result<()> {
        let dir = self.dir(&st.id);
        let data = serde_json::to_vec(st).context("serialise state")?;
        write_atomic(&dir.join(STATE_FILE), &data, 0o600)
    }

    /// Every container id in the store.
    pub fn ids(&self) -> Result<Vec<String>> {
        let rd = match fs::read_dir(&self.root) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("read {}", self.root.display())),
        };
        let mut ids: Vec<String> = rd
            .filter_map(|e| {
                let e = e.ok()?;
                if !e.file_type().ok()?.is_dir() {
                    return None;
                }
                let name = e.file_name().into_string().ok()?;
                if name.starts_with(NEW_DIR_PREFIX) {
                    self.sweep_new_dir(&name);
                    return None;
                }
                Some(name)
            })
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Remove the private directories (`@new.PID.SEQ`) of creates killed before they renamed
    /// theirs into place (they are empty: nothing is written before the rename).
    pub fn sweep_new_dirs(&self) {
        for e in fs::read_dir(&self.root).into_iter().flatten().flatten() {
            if let Some(name) = e.file_name().to_str() {
                if name.starts_with(NEW_DIR_PREFIX) {
                    self.sweep_new_dir(name);
                }
            }
        }
    }

    /// Remove `name` (an `@new.PID.SEQ` directory) when its creator is gone: that pid no longer
    /// runs and nobody holds the directory's lock. A live creator's directory (or one whose pid
    /// was reused) stays.
    fn sweep_new_dir(&self, name: &str) {
        let Some(pid) = name[NEW_DIR_PREFIX.len()..]
            .split('.')
            .next()
            .and_then(|p| p.parse::<i32>().ok())
            .filter(|&p| p > 0)
        else {
            return;
        };
        let dead = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
            == Err(nix::errno::Errno::ESRCH);
        if !dead {
            return;
        }
        let path = self.root.join(name);
        let Ok(f) = File::open(&path) else { return };
        if let Ok(_held) = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            let _ = fs::remove_dir(&path);
        }
    }

    /// Take the container's exclusive lock (released when the returned file is dropped): a
    /// flock on the container's state directory. A lock is only good while that directory is
    /// still the one at the id's path: a waiter whose directory was deleted (and maybe made again
    /// by a new create of the same id) while it waited takes the new one's lock instead, and a
    /// deleted container is "does not exist". `create` holds it from the directory's making to
    /// the saved state, so no other command acts on a container half made.
    pub fn lock(&self, id: &str) -> Result<nix::fcntl::Flock<File>> {
        self.lock_existing(id)?
            .with_context(|| format!("container {id} does not exist"))
    }

    /// [`Store::lock`], or None when there is no container of that id (also when it was
    /// deleted while this waited for its lock).
    pub fn lock_existing(&self, id: &str) -> Result<Option<nix::fcntl::Flock<File>>> {
        use std::os::unix::fs::MetadataExt;
        validate_id(id)?;
        let dir = self.dir(id);
        loop {
            let f = match File::open(&dir) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e).with_context(|| format!("open {}", dir.display())),
            };
            let locked = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
                .map_err(|(_, e)| e)
                .with_context(|| format!("lock {}", dir.display()))?;
            let held = locked.metadata().context("fstat the locked state dir")?;
            match fs::symlink_metadata(&dir) {
                Ok(m) if (m.dev(), m.ino()) == (held.dev(), held.ino()) => return Ok(Some(locked)),
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e).with_context(|| format!("stat {}", dir.display())),
            }
        }
    }
}

/// A flock on `dir/.lock`, exclusive or shared, held until dropped: the lock of a directory's
/// records (the network companion's config and run dirs, `husk up`'s user namespace records
/// and volumes). `dir` is made first when missing, with its parents (`mode` less the umask).
pub fn lock_dir(dir: &Path, mode: u32, exclusive: bool) -> Result<nix::fcntl::Flock<File>> {
    use nix::fcntl::{Flock, FlockArg};
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .with_context(|| format!("create {}", dir.display()))?;
    let p = dir.join(".lock");
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .with_context(|| format!("open {}", p.display()))?;
    let how = if exclusive {
        FlockArg::LockExclusive
    } else {
        FlockArg::LockShared
    };
    Flock::lock(f, how)
        .map_err(|(_, e)| e)
        .with_context(|| format!("lock {}", p.display()))
}

/// Write `data` to `path` through a temp file in the same directory and a rename.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.{}", std::process::id()));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .custom_flags(libc::O_CLOEXEC)
        .open(&tmp)
        .with_context(|| format!("create {}", tmp.display()))?;
    let res = f.write_all(data).and_then(|_| fs::rename(&tmp, path));
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("write {}", path.display()));
    }
    Ok(())
}

/// Read a small file (state.json, /proc/PID/stat) whole: open, read until end of file, close.
/// Unlike `fs::read` it asks for no size hint first (a statx per call), which `list` pays once
/// per container.
pub fn read_small(path: &Path) -> std::io::Result<Vec<u8>> {
    read_all(File::open(path)?)
}

fn read_all(mut f: File) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match f.read(&mut chunk) {
            Ok(0) => return Ok(buf),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Start time (clock ticks since boot) of a process, None if it is gone.
pub fn process_start_time(pid: i32) -> Option<u64> {
    // a pid that is gone answers ESRCH at once; a /proc lookup of it costs a dentry
    if nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
        == Err(nix::errno::Errno::ESRCH)
    {
        return None;
    }
    let stat = read_small(Path::new(&format!("/proc/{pid}/stat"))).ok()?;
    crate::sys::procfmt::stat_start_time(std::str::from_utf8(&stat).ok()?)
}

/// End a process a companion started and recorded by pid and start time (a helper, a proxy):
/// SIGTERM, then SIGKILL after 3 s, only while the pid is still that process (checked again
/// once its pidfd is held, from when the pid cannot be reused); reaped when it is a child of
/// this process.
pub fn end_recorded_process(pid: i32, start_time: u64) {
    use std::os::fd::AsFd;
    let same = || process_start_time(pid) == Some(start_time);
    if pid <= 0 || !same() {
        return;
    }
    let Ok(fd) = crate::sys::pidfd::open(pid) else {
        return;
    };
    if !same() {
        return;
    }
    let _ = crate::sys::pidfd::send_signal(fd.as_fd(), libc::SIGTERM);
    if !crate::sys::pidfd::wait_exit(fd.as_fd(), 3000).unwrap_or(false) {
        let _ = crate::sys::pidfd::send_signal(fd.as_fd(), libc::SIGKILL);
        let _ = crate::sys::pidfd::wait_exit(fd.as_fd(), 3000);
    }
    let _ = nix::sys::wait::waitpid(
        nix::unistd::Pid::from_raw(pid),
        Some(nix::sys::wait::WaitPidFlag::WNOHANG),
    );
}

/// The user name of a uid from the host's /etc/passwd, else the number.
pub fn owner_name(uid: u32) -> String {
    if let Ok(p) = fs::read_to_string("/etc/passwd") {
        for line in p.lines() {
            let mut f = line.split(':');
            let (Some(name), _, Some(u)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            if u.parse::<u32>().ok() == Some(uid) {
                return name.to_string();
            }
        }
    }
    uid.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for ok in ["a", "abc-DEF_1.2+3", "x".repeat(1024).as_str()] {
            validate_id(ok).unwrap();
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "../x",
            "a\0b",
            "a b",
            &"x".repeat(1025),
        ] {
            assert!(validate_id(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn own_start_time_is_found() {
        assert!(process_start_time(std::process::id() as i32).is_some());
    }

    #[test]
    fn new_dirs_of_dead_creators_are_swept() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::new(d.path());
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let me = std::process::id();
        let names = [
            format!("@new.{dead}.0"),
            format!("@new.{me}.0"),
            "@new.junk".to_string(),
        ];
        for n in &names {
            fs::create_dir(d.path().join(n)).unwrap();
        }
        // a dead creator's directory that is locked (by another holder) stays too
        fs::create_dir(d.path().join(format!("@new.{dead}.1"))).unwrap();
        let held = File::open(d.path().join(format!("@new.{dead}.1"))).unwrap();
        let held = nix::fcntl::Flock::lock(held, nix::fcntl::FlockArg::LockExclusive).unwrap();
        fs::create_dir(d.path().join("c1")).unwrap();
        assert_eq!(s.ids().unwrap(), ["c1"]);
        let left = |n: &str| d.path().join(n).exists();
        assert!(!left(&names[0]), "a dead creator's directory is removed");
        assert!(left(&names[1]), "a live creator's directory stays");
        assert!(left(&names[2]), "a name without a pid stays");
        assert!(left(&format!("@new.{dead}.1")), "a locked directory stays");
        drop(held);
        s.sweep_new_dirs();
        assert!(!left(&format!("@new.{dead}.1")));
    }

    #[test]
    fn store_roundtrip_and_exclusive_create() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::new(&d.path().join("root"));
        let (_, l) = s.create_dir("c1").unwrap();
        drop(l);
        assert!(s
            .create_dir("c1")
            .unwrap_err()
            .to_string()
            .contains("exists"));
        assert!(s
            .load("c1")
            .unwrap_err()
            .to_string()
            .contains("does not exist"));
        let st = ContainerState {
            oci_version: "1.2.0".into(),
            id: "c1".into(),
            pid: 1,
            pid_start_time: 2,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: now_rfc3339(),
            annotations: HashMap::new(),
            owner: "root".into(),
            paused: false,
            cgroup: CgroupState::default(),
            own_pid_ns: true,
            systemd_cgroup: false,
            poststart: vec![],
            poststop: vec![],
            host_rootfs_mount: None,
        };
        s.save(&st).unwrap();
        assert_eq!(s.load("c1").unwrap().pid_start_time, 2);
        assert_eq!(s.ids().unwrap(), vec!["c1".to_string()]);
        let _l = s.lock("c1").unwrap();
    }

    /// `lock_dir` makes the directory with its parents; shared locks go together, an exclusive
    /// one goes alone.
    #[test]
    fn lock_dir_shares_or_excludes() {
        use nix::fcntl::{Flock, FlockArg};
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("a/b");
        let try_lock = |how| {
            let f = File::open(d.join(".lock")).unwrap();
            Flock::lock(f, how).map(drop).map_err(|(_, e)| e)
        };
        let shared = lock_dir(&d, 0o700, false).unwrap();
        assert_eq!(
            fs::metadata(&d).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let shared2 = lock_dir(&d, 0o700, false).unwrap();
        assert_eq!(
            try_lock(FlockArg::LockExclusiveNonblock),
            Err(nix::errno::Errno::EWOULDBLOCK)
        );
        drop((shared, shared2));
        let excl = lock_dir(&d, 0o700, true).unwrap();
        assert_eq!(
            try_lock(FlockArg::LockSharedNonblock),
            Err(nix::errno::Errno::EWOULDBLOCK)
        );
        drop(excl);
        assert_eq!(try_lock(FlockArg::LockExclusiveNonblock), Ok(()));
    }
}
