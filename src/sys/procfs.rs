//! Hardened procfs access for writes the runtime makes on the container's behalf (LSM exec
//! labels, sysctls, oom_score_adj, ...).
//!
//! A container controls its own mount table, so `/proc/...` paths can be redirected with bind
//! mounts or symlinks (CVE-2019-16884, CVE-2023-27561/28642, CVE-2025-52881). Defences:
//!
//! 1. The root is a PRIVATE procfs instance: fsopen("proc") + fsconfig(CREATE) + fsmount gives a
//!    detached mount that exists only behind our fd; nothing in the container can mount over it.
//!    If that is refused (old kernel, or a user namespace where a fresh proc mount is "too
//!    revealing" because the visible /proc has masked paths), we fall back to `/proc`, checked to
//!    be the root of a procfs (statfs magic + root inode).
//! 2. Paths are resolved with openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV):
//!    no escaping the root, no /proc/*/fd-style magic links, and no crossing any mount point,
//!    so a bind mount over a proc file (even one of procfs origin) is refused with EXDEV.
//! 3. The opened file must be on procfs (fstatfs == PROC_SUPER_MAGIC) before we read or write.
//!
//! `self/...` is resolved by procfs itself (the `self` symlink names the caller's tgid in that
//! instance's pid namespace), which stays right even if the cached root was opened from an
//! ancestor pid namespace; getpid() would not be.
//!
//! The root is opened once per process, at its first use, and cached (fd is O_CLOEXEC); a
//! process without CAP_SYS_ADMIN by then gets the verified `/proc` instead of a private
//! instance.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};

const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const PROC_ROOT_INO: u64 = 1;

/// `struct open_how` (libc's is non-exhaustive).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// A verified handle on the root of a procfs instance.
#[derive(Debug)]
pub struct ProcRoot {
    fd: OwnedFd,
    #[cfg(test)]
    private: bool,
}

fn cvt(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

// f_type/st_ino types differ between architectures: keep the casts.
#[allow(clippy::unnecessary_cast)]
fn fstatfs_magic(fd: RawFd) -> io::Result<i64> {
    let mut st = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: `st` is a valid out buffer of the right type for fstatfs.
    cvt(unsafe { libc::fstatfs(fd, st.as_mut_ptr()) } as libc::c_long)?;
    // SAFETY: fstatfs succeeded and filled the struct.
    Ok(unsafe { st.assume_init() }.f_type as i64)
}

#[allow(clippy::unnecessary_cast)]
fn is_proc(fd: RawFd) -> io::Result<bool> {
    Ok(fstatfs_magic(fd)? == libc::PROC_SUPER_MAGIC as i64)
}

impl ProcRoot {
    /// A new private procfs instance (detached mount), nosuid/nodev/noexec.
    pub fn private() -> io::Result<ProcRoot> {
        // SAFETY: fsopen takes a NUL-terminated fs name and flags; returns a new fd or -1.
        let fsfd = cvt(unsafe {
            libc::syscall(libc::SYS_fsopen, c"proc".as_ptr(), libc::FSOPEN_CLOEXEC)
        })?;
        // SAFETY: fsfd is a fresh fd we own.
        let fsfd = unsafe { OwnedFd::from_raw_fd(fsfd as RawFd) };
        // SAFETY: FSCONFIG_CMD_CREATE takes no key/value; fsfd is a valid fs context.
        cvt(unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fsfd.as_raw_fd(),
                FSCONFIG_CMD_CREATE,
                std::ptr::null::<libc::c_char>(),
                std::ptr::null::<libc::c_void>(),
                0,
            )
        })?;
        let attrs = libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV | libc::MOUNT_ATTR_NOEXEC;
        // SAFETY: fsfd is a created fs context; flags/attrs are plain integers.
        let mfd = cvt(unsafe {
            libc::syscall(
                libc::SYS_fsmount,
                fsfd.as_raw_fd(),
                libc::FSMOUNT_CLOEXEC,
                attrs as libc::c_uint,
            )
        })?;
        // SAFETY: mfd is a fresh fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(mfd as RawFd) };
        Ok(ProcRoot {
            fd,
            #[cfg(test)]
            private: true,
        })
    }

    /// The procfs mounted at `path` (normally `/proc`), verified to be the root of a procfs.
    #[allow(clippy::unnecessary_cast)]
    pub fn at(path: &str) -> io::Result<ProcRoot> {
        let c = std::ffi::CString::new(path).map_err(|_| io::ErrorKind::InvalidInput)?;
        // SAFETY: c is NUL-terminated; the flags make a close-on-exec O_PATH directory fd.
        let fd = cvt(unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            )
        } as libc::c_long)?;
        // SAFETY: fd is a fresh fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
        // SAFETY: st is a valid out buffer for fstat.
        cvt(unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) } as libc::c_long)?;
        // SAFETY: fstat succeeded.
        let ino = unsafe { st.assume_init() }.st_ino as u64;
        if !is_proc(fd.as_raw_fd())? || ino != PROC_ROOT_INO {
            return Err(io::Error::other(format!(
                "{path} is not the root of a procfs mount"
            )));
        }
        Ok(ProcRoot {
            fd,
            #[cfg(test)]
            private: false,
        })
    }

    /// Private instance if possible, else `/proc`.
    pub fn open() -> io::Result<ProcRoot> {
        ProcRoot::private().or_else(|_| ProcRoot::at("/proc"))
    }

    /// Whether this is a private (detached) procfs instance.
    #[cfg(test)]
    pub fn is_private(&self) -> bool {
        self.private
    }

    /// Open `rel` (relative to the procfs root, e.g. `sys/net/ipv4/ip_forward`,
    /// `self/attr/exec`) with `flags` (O_CLOEXEC is always added).
    pub fn open_file(&self, rel: &str, flags: libc::c_int) -> Result<OwnedFd> {
        let rel = rel.trim_start_matches('/');
        if rel.is_empty() || rel.split('/').any(|c| c == "..") {
            bail!("invalid procfs path {rel:?}");
        }
        let c = std::ffi::CString::new(rel).context("procfs path contains NUL")?;
        let flags = flags | libc::O_CLOEXEC | libc::O_NOCTTY;
        let how = OpenHow {
            flags: flags as u64,
            mode: 0,
            resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS | libc::RESOLVE_NO_XDEV,
        };
        // SAFETY: `how` is a valid open_how of the size passed; `c` is NUL-terminated.
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                self.fd.as_raw_fd(),
                c.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        let fd = match cvt(r) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                // Kernel < 5.6: plain openat. Still beneath a verified procfs root, and for a
                // private instance nobody else can have mounted anything inside it.
                // SAFETY: `c` is NUL-terminated; dirfd is valid.
                cvt(unsafe { libc::openat(self.fd.as_raw_fd(), c.as_ptr(), flags) } as libc::c_long)
                    .with_context(|| format!("opening /proc/{rel}"))?
            }
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                return Err(e).with_context(|| {
                    format!(
                        "opening /proc/{rel}: path crosses a mount point (something is mounted \
                         over procfs); refusing"
                    )
                })
            }
            Err(e) => return Err(e).with_context(|| format!("opening /proc/{rel}")),
        };
        // SAFETY: fd is a fresh fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        if !is_proc(fd.as_raw_fd()).with_context(|| format!("fstatfs /proc/{rel}"))? {
            bail!("/proc/{rel} is not on procfs (something is mounted over it); refusing");
        }
        Ok(fd)
    }

    /// Write `data` to `rel` in one write(2) (procfs attribute files need a single write).
    pub fn write(&self, rel: &str, data: &[u8]) -> Result<()> {
        let fd = self.open_file(rel, libc::O_WRONLY)?;
        // SAFETY: data is a valid buffer of data.len() bytes; fd is open for writing.
        let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error()).with_context(|| format!("writing /proc/{rel}"));
        }
        if n as usize != data.len() {
            bail!(
                "writing /proc/{rel}: short write ({n} of {} bytes)",
                data.len()
            );
        }
        Ok(())
    }

    /// Read all of `rel`.
    pub fn read(&self, rel: &str) -> Result<Vec<u8>> {
        use std::io::Read;
        let fd = self.open_file(rel, libc::O_RDONLY)?;
        let mut f = std::fs::File::from(fd);
        let mut v = Vec::with_capacity(256);
        f.read_to_end(&mut v)
            .with_context(|| format!("reading /proc/{rel}"))?;
        Ok(v)
    }
}

/// The cached root and the pid of the process that opened it.
static ROOT: Mutex<Option<(u32, ProcRoot)>> = Mutex::new(None);

/// Run `f` with the process-wide procfs root (opened on first use; see the module docs).
///
/// A root inherited across fork/clone is replaced: the child may live in another pid namespace,
/// where `<pid>/...` paths of the parent's instance would name a different process.
pub fn with_root<T>(f: impl FnOnce(&ProcRoot) -> Result<T>) -> Result<T> {
    let mut g = ROOT.lock().unwrap_or_else(|e| e.into_inner());
    let pid = std::process::id();
    if !matches!(g.as_ref(), Some((p, _)) if *p == pid) {
        *g = None; // close an inherited root first
        *g = Some((pid, ProcRoot::open().context("opening a procfs root")?));
    }
    match g.as_ref() {
        Some((_, root)) => f(root),
        None => unreachable!("set above"),
    }
}

/// Write `data` to `/proc/<rel>` through the hardened procfs root.
pub fn write_proc_file(rel: &str, data: &[u8]) -> Result<()> {
    with_root(|r| r.write(rel, data))
}

/// Read `/proc/<rel>` through the hardened procfs root.
pub fn read_proc_file(rel: &str) -> Result<Vec<u8>> {
    with_root(|r| r.read(rel))
}

/// The procfs path of a `linux.sysctl` key: `net.ipv4.ip_forward` -> `sys/net/ipv4/ip_forward`.
/// As in sysctl(8), `.` and `/` swap roles, so `net.ipv4.conf.eth0/1.rp_filter` names the
/// interface `eth0.1`.
pub fn sysctl_path(key: &str) -> String {
    let mut p = String::with_capacity(4 + key.len());
    p.push_str("sys/");
    p.extend(key.chars().map(|c| match c {
        '.' => '/',
        '/' => '.',
        c => c,
    }));
    p
}

/// Write a `linux.sysctl` entry through the hardened procfs root.
pub fn write_sysctl(key: &str, value: &str) -> Result<()> {
    write_proc_file(&sysctl_path(key), value.as_bytes())
        .with_context(|| format!("linux.sysctl[{key:?}]"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::test_support::{in_child, is_root};

    #[test]
    fn read_self_status() {
        let s = read_proc_file("self/status").unwrap();
        let s = String::from_utf8(s).unwrap();
        assert!(
            s.contains(&format!("Pid:\t{}\n", std::process::id())),
            "{s}"
        );
        let r = ProcRoot::at("/proc").unwrap();
        assert!(!r.is_private());
        assert!(r
            .read("self/stat")
            .unwrap()
            .starts_with(std::process::id().to_string().as_bytes()));
    }

    #[test]
    fn sysctl_paths() {
        assert_eq!(
            sysctl_path("net.ipv4.ip_forward"),
            "sys/net/ipv4/ip_forward"
        );
        assert_eq!(
            sysctl_path("net.ipv4.conf.eth0/1.rp_filter"),
            "sys/net/ipv4/conf/eth0.1/rp_filter"
        );
        let v = read_proc_file(&sysctl_path("kernel.ostype")).unwrap();
        assert_eq!(v, b"Linux\n");
        // ".." cannot be smuggled in through a key ("//" becomes "..").
        assert_eq!(sysctl_path("kernel.//.ostype"), "sys/kernel/../ostype");
        let e = write_sysctl("kernel.//.ostype", "x").unwrap_err();
        assert!(format!("{e:#}").contains("invalid procfs path"), "{e:#}");
    }

    #[test]
    fn rejects_escapes_and_non_proc_roots() {
        let r = ProcRoot::at("/proc").unwrap();
        assert!(r.open_file("../etc/passwd", libc::O_RDONLY).is_err());
        // A magic link (resolves outside procfs) is refused.
        assert!(r.open_file("self/cwd/Cargo.toml", libc::O_RDONLY).is_err());
        assert!(r.open_file("self/root/etc/passwd", libc::O_RDONLY).is_err());
        assert!(ProcRoot::at("/").is_err());
        assert!(
            ProcRoot::at("/proc/self").is_err(),
            "a subdirectory is not the root"
        );
    }

    #[test]
    fn cached_root_is_reopened_after_fork() {
        with_root(|_| Ok(())).unwrap();
        in_child(
            concat!(module_path!(), "::cached_root_is_reopened_after_fork"),
            || {
                // The re-executed test process prepared its root before forking this child.
                let pid = std::process::id();
                let inherited = ROOT.lock().unwrap().as_ref().map(|(p, _)| *p);
                anyhow::ensure!(inherited.is_some_and(|p| p != pid), "no inherited root");
                let stat = read_proc_file("self/stat")?;
                let cached = ROOT.lock().unwrap().as_ref().map(|(p, _)| *p);
                anyhow::ensure!(cached == Some(pid), "cache not re-keyed to the child");
                anyhow::ensure!(stat.starts_with(format!("{pid} ").as_bytes()));
                Ok(())
            },
        );
    }

    #[test]
    fn write_comm_in_child() {
        in_child(concat!(module_path!(), "::write_comm_in_child"), || {
            write_proc_file("self/comm", b"husk-test")?;
            let got = read_proc_file("self/comm")?;
            anyhow::ensure!(got == b"husk-test\n", "comm is {got:?}");
            Ok(())
        });
    }

    /// A bind mount over a proc file (a regular file, or another procfs file) in the visible
    /// /proc is refused, and the private instance is not affected by it at all.
    #[test]
    fn overmounted_proc_file_is_refused() {
        if !is_root() {
            eprintln!("skipping overmounted_proc_file_is_refused: needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let decoy = dir.path().join("decoy");
        std::fs::write(&decoy, b"").unwrap();
        in_child(
            concat!(module_path!(), "::overmounted_proc_file_is_refused"),
            || {
                use nix::mount::{mount, MsFlags};
                use nix::sched::{unshare, CloneFlags};
                unshare(CloneFlags::CLONE_NEWNS)?;
                mount(
                    None::<&str>,
                    "/",
                    None::<&str>,
                    MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                    None::<&str>,
                )?;
                let pid = std::process::id();
                let target = format!("/proc/{pid}/comm");
                // A private root made before anything is mounted (as the init would do).
                let private = match ProcRoot::private() {
                    Ok(p) => Some(p),
                    Err(e) => {
                        eprintln!("no private procfs instance here ({e}); testing /proc only");
                        None
                    }
                };
                // 1. A regular file over /proc/<pid>/comm.
                mount(
                    Some(&decoy),
                    target.as_str(),
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )?;
                let visible = ProcRoot::at("/proc")?;
                let e = visible.write("self/comm", b"evil").unwrap_err();
                anyhow::ensure!(
                    format!("{e:#}").contains("refusing"),
                    "unexpected error: {e:#}"
                );
                anyhow::ensure!(std::fs::read(&decoy)?.is_empty(), "decoy was written");
                if let Some(p) = &private {
                    p.write("self/comm", b"through-private")?;
                    anyhow::ensure!(p.read("self/comm")? == b"through-private\n");
                    eprintln!("private procfs instance unaffected by the overmount");
                }
                nix::mount::umount(target.as_str())?;
                // 2. Another procfs file over it: same filesystem type, caught by RESOLVE_NO_XDEV.
                let other = format!("/proc/{pid}/environ");
                mount(
                    Some(other.as_str()),
                    target.as_str(),
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )?;
                let e = visible.write("self/comm", b"evil").unwrap_err();
                anyhow::ensure!(
                    format!("{e:#}").contains("refusing"),
                    "unexpected error: {e:#}"
                );
                Ok(())
            },
        );
    }
}
