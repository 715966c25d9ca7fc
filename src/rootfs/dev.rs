//! The container's /dev: device nodes (default and `linux.devices`), /dev/ptmx, the /dev/fd and
//! stdio symlinks. Nodes are made relative to the fd of their (in-root resolved) parent and never
//! through a symlink.

use super::mounts::bind_fd;
use super::resolve::{file_type, mkdir_all, split_last};
use crate::sys::mount_api::MountAttr;
use anyhow::{anyhow, bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag, AT_FDCWD};
use nix::sys::stat::{fstatat, mknodat, umask, Mode, SFlag};
use nix::unistd::{fchownat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

/// A device node to make.
pub struct Dev<'a> {
    pub path: &'a Path,
    pub kind: LinuxDeviceType,
    pub major: i64,
    pub minor: i64,
    pub mode: u32,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// runc's default devices: (name, major, minor).
pub const DEFAULT_DEVICES: [(&str, i64, i64); 6] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

impl<'a> Dev<'a> {
    pub fn from_spec(d: &'a LinuxDevice) -> Dev<'a> {
        Dev {
            path: d.path(),
            kind: d.typ(),
            major: d.major(),
            minor: d.minor(),
            mode: d.file_mode().unwrap_or(0o666),
            uid: d.uid(),
            gid: d.gid(),
        }
    }
}

fn sflag(kind: LinuxDeviceType) -> Result<SFlag> {
    Ok(match kind {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        LinuxDeviceType::A => bail!("type \"a\" is not a device node type (expected c, b, u or p)"),
    })
}

/// The parent directory of the last device, to save a lookup for the next one in the same dir.
type DirCache = Option<(std::path::PathBuf, OwnedFd)>;

/// Make one device node inside `root` (the caller has cleared the umask). An existing node of
/// the same type (and number) is kept; anything else in the way, a symlink included, is an
/// error. In a user namespace, where mknod is not allowed, character and block devices are
/// bind-mounted from the host's node of the same path onto an empty file (also when mknod fails
/// with EPERM, as runc does).
fn create_device_cached(
    root: BorrowedFd<'_>,
    cache: &mut DirCache,
    d: &Dev,
    in_userns: bool,
) -> Result<()> {
    let kind = sflag(d.kind)?;
    if !d.path.is_absolute() {
        bail!("the path must be absolute");
    }
    let (parent, name) = split_last(d.path);
    let name = name.ok_or_else(|| anyhow!("the path has no file name"))?;
    if cache.as_ref().is_none_or(|(p, _)| p != parent) {
        let fd = mkdir_all(root, parent, Mode::from_bits_truncate(0o755))
            .with_context(|| format!("creating {}", parent.display()))?;
        *cache = Some((parent.to_path_buf(), fd));
    }
    let dir = &cache.as_ref().expect("just set").1;
    let rdev = libc::makedev(d.major as u32, d.minor as u32);
    if !in_userns || kind == SFlag::S_IFIFO {
        let perm = Mode::from_bits_truncate(d.mode & 0o7777);
        match mknodat(dir.as_fd(), name, kind, perm, rdev) {
            Ok(()) => {
                if d.uid.is_some() || d.gid.is_some() {
                    let (u, g) = (d.uid.map(Uid::from_raw), d.gid.map(Gid::from_raw));
                    fchownat(dir.as_fd(), name, u, g, AtFlags::AT_SYMLINK_NOFOLLOW)
                        .context("chown")?;
                }
                return Ok(());
            }
            Err(Errno::EEXIST) => {
                if keep_existing(dir.as_fd(), name, d, kind, rdev, in_userns)? {
                    return Ok(());
                }
            }
            // not allowed to mknod (no CAP_MKNOD): bind the host's node instead, as runc does
            Err(Errno::EPERM) if kind != SFlag::S_IFIFO => {}
            Err(e) => return Err(e).context("mknod"),
        }
    } else if keep_existing(dir.as_fd(), name, d, kind, rdev, true)? {
        return Ok(());
    }
    bind_host_node(dir.as_fd(), name, d, kind, rdev)
}

/// Something exists at `name` already: Ok(true) to keep it (the same node), Ok(false) if it is
/// missing or the empty file a bind goes on, an error for anything else (a symlink included).
fn keep_existing(
    dir: BorrowedFd<'_>,
    name: &std::ffi::OsStr,
    d: &Dev,
    kind: SFlag,
    rdev: libc::dev_t,
    bind_ok: bool,
) -> Result<bool> {
    let st = match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::ENOENT) => return Ok(false),
        Err(e) => return Err(e).context("stat"),
    };
    let have = file_type(&st);
    if have == kind && (kind == SFlag::S_IFIFO || st.st_rdev == rdev) {
        return Ok(true);
    }
    if have == SFlag::S_IFLNK {
        bail!("it exists as a symlink; refusing to create a device node through it");
    }
    if bind_ok && have == SFlag::S_IFREG && st.st_size == 0 {
        return Ok(false);
    }
    bail!(
        "something else exists there already (mode {:o}, expected a {} device {}:{})",
        st.st_mode,
        d.kind.as_str(),
        d.major,
        d.minor
    )
}

/// Bind the host's node at the same path onto an (empty, created if missing) file.
fn bind_host_node(
    dir: BorrowedFd<'_>,
    name: &std::ffi::OsStr,
    d: &Dev,
    kind: SFlag,
    rdev: libc::dev_t,
) -> Result<()> {
    let target = openat(
        dir,
        name,
        OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o644),
    )
    .context("creating the file to bind the device onto")?;
    let src = openat(
        AT_FDCWD,
        d.path,
        OFlag::O_PATH | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("opening the host device {}", d.path.display()))?;
    let st = nix::sys::stat::fstat(&src)?;
    if file_type(&st) != kind || st.st_rdev != rdev {
        bail!(
            "the host's {} is not a {} device {}:{}",
            d.path.display(),
            d.kind.as_str(),
            d.major,
            d.minor
        );
    }
    let e = MountAttr::default();
    bind_fd(src.as_fd(), target.as_fd(), false, e, e, &[], None)
        .with_context(|| format!("bind-mounting the host's {}", d.path.display()))
}

/// The default devices plus `linux.devices` (an entry of the spec replaces the default of the
/// same path).
pub fn create_devices(
    root: BorrowedFd<'_>,
    spec_devs: &[LinuxDevice],
    in_userns: bool,
) -> Result<()> {
    let old = umask(Mode::empty());
    let r = create_all(root, spec_devs, in_userns);
    umask(old);
    r
}

fn create_all(root: BorrowedFd<'_>, spec_devs: &[LinuxDevice], in_userns: bool) -> Result<()> {
    let mut cache = None;
    for (path, major, minor) in DEFAULT_DEVICES {
        if spec_devs.iter().any(|d| d.path() == Path::new(path)) {
            continue;
        }
        // created by us, so already owned by the container's root: no chown needed
        let d = Dev {
            path: Path::new(path),
            kind: LinuxDeviceType::C,
            major,
            minor,
            mode: 0o666,
            uid: None,
            gid: None,
        };
        create_device_cached(root, &mut cache, &d, in_userns)
            .with_context(|| format!("default device {path}"))?;
    }
    for (i, d) in spec_devs.iter().enumerate() {
        create_device_cached(root, &mut cache, &Dev::from_spec(d), in_userns)
            .with_context(|| format!("linux.devices[{i}] (path {:?})", d.path()))?;
    }
    Ok(())
}

/// /dev/ptmx -> pts/ptmx, /dev/fd, stdin/stdout/stderr and (if the host has it) /dev/core.
pub fn dev_symlinks(root: BorrowedFd<'_>) -> Result<()> {
    let dev = mkdir_all(root, Path::new("/dev"), Mode::from_bits_truncate(0o755))
        .context("opening /dev")?;
    match unlinkat(dev.as_fd(), "ptmx", UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(e).context("removing /dev/ptmx"),
    }
    symlinkat("pts/ptmx", dev.as_fd(), "ptmx").context("symlink /dev/ptmx -> pts/ptmx")?;
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    for (target, name) in links {
        match symlinkat(target, dev.as_fd(), name) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(e).with_context(|| format!("symlink /dev/{name} -> {target}")),
        }
    }
    Ok(())
}
