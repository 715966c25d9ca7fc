//! The container's root filesystem: mounts, safe in-root path resolution, /dev, pivot_root,
//! masked and read-only paths. Everything here runs inside the container's new mount namespace.
//!
//! Call order in the container init (single-threaded, after unshare(CLONE_NEWNS) and, if any,
//! after joining/creating the user namespace so that it owns the new mount namespace):
//!
//! 1. [`prepare`] — still on the host root, host /proc at /proc.
//! 2. (prestart / createRuntime hooks, if the caller runs them here)
//! 3. [`pivot`] — afterwards no host fd is held by this module.
//! 4. [`reopen_dev_null`] — optional, only when the default /dev was made (no bind on /dev).
//! 5. [`bind_console`] — with the slave of a pty opened from the *container's* devpts (after
//!    pivot): a pty of the host's devpts is on a detached mount by then and cannot be bound.
//! 6. [`finalize`] — needs no /proc in the container.
//!
//! Every path of config.json is resolved inside the rootfs (module [`mod@resolve`]), mounts are made onto
//! the resolved fds (detached open_tree/move_mount for binds, `/proc/self/fd/N` for mount(2)),
//! and each mount is re-checked to be under the rootfs afterwards.

pub mod dev;
pub mod idmap;
pub mod mounts;
pub mod options;
pub mod resolve;
#[cfg(test)]
mod root_tests;

use crate::sys::mount_api::{self as api, clone_tree, mount_setattr, move_mount_fd, MountAttr};
use anyhow::{bail, Context, Result};
use nix::fcntl::{open, OFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::{chdir, chroot, fchdir, pivot_root};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use resolve::{create_file, file_type, open_root, proc_fd_path, resolve, stat_fd};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

/// What `prepare` needs to know besides the spec.
pub struct RootfsOptions<'a> {
    pub spec: &'a Spec,
    /// Absolute, canonical host path of the rootfs.
    pub rootfs: &'a Path,
    /// Absolute bundle directory: relative mount sources resolve against it.
    pub bundle: &'a Path,
    /// The container has its own cgroup namespace.
    pub new_cgroupns: bool,
    /// The container runs in a new user namespace (device nodes must be bind-mounted).
    pub in_userns: bool,
    /// Detached id-mapped trees by index in `mounts` ([`idmap::detach_trees`], host side).
    pub idmapped: &'a [(usize, std::os::fd::OwnedFd)],
    /// The container's cgroup v2 directory on the host (what a cgroup mount binds when cgroup2
    /// cannot be mounted afresh, as runc), if known.
    pub cgroup2_dir: Option<&'a Path>,
}

const NONE: Option<&str> = None;

fn is_enoent(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR))
}

/// `linux.rootfsPropagation`, parsed, if set.
fn rootfs_propagation(spec: &Spec) -> Result<Option<MsFlags>> {
    match spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref())
    {
        None | Some("") => Ok(None),
        Some(v) => options::parse_propagation(v).map(Some),
    }
}

/// pivot_root(2) refuses a new root whose parent mount is shared, and a shared parent would also
/// propagate our rootfs bind to other namespaces: like runc, make the mount containing `path`
/// private, but only if it is shared. After a recursive non-shared propagation change of `/`
/// (the default rslave) nothing can be shared, so /proc/self/mountinfo is only read otherwise.
fn make_parent_mount_private(path: &Path, root_prop: MsFlags) -> Result<()> {
    if root_prop.contains(MsFlags::MS_REC) && !root_prop.contains(MsFlags::MS_SHARED) {
        return Ok(());
    }
    let mi = mounts::read_proc("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    if let Some((mp, shared)) = parent_mount(&mi, path) {
        if shared {
            mount(NONE, mp.as_path(), NONE, MsFlags::MS_PRIVATE, NONE).with_context(|| {
                format!(
                    "making the parent mount {} of the rootfs private",
                    mp.display()
                )
            })?;
        }
    }
    Ok(())
}

/// The mount point in `mountinfo` that contains `path` (the longest matching one, the last
/// mounted on ties) and whether it is shared.
fn parent_mount(mountinfo: &str, path: &Path) -> Option<(PathBuf, bool)> {
    let mut best: Option<(PathBuf, bool)> = None;
    for m in crate::sys::procfmt::mountinfo(mountinfo) {
        if !path.starts_with(&m.mount_point) {
            continue;
        }
        let shared = m.is_shared();
        let mp = m.mount_point;
        if best
            .as_ref()
            .is_none_or(|(b, _)| mp.components().count() >= b.components().count())
        {
            best = Some((mp, shared));
        }
    }
    best
}

/// The container has a mount namespace of its own (new, or joined by path). Without one
/// (runtime-spec: it inherits the runtime's) the rootfs is set up in the runtime's namespace,
/// under a private bind of the rootfs, and entered with chroot.
pub fn own_mount_ns(spec: &Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == LinuxNamespaceType::Mount))
}

/// Without a mount namespace of its own: bind the rootfs onto itself in the runtime's mount
/// namespace without changing the propagation of any mount that is not ours. The tree is
/// cloned detached and made private before it is attached, so it never joins the peer group of
/// the mount it comes from (a mount under it would otherwise show up there too). If the parent
/// mount is shared, attaching gives the tree a new peer group with the copies in the parent's
/// peers, and the unmount at delete (`unmount_host_rootfs`) propagates to them the same way.
fn bind_rootfs_in_host_ns(rootfs: &Path) -> Result<()> {
    let what = || {
        format!(
            "bind-mounting the rootfs {} onto itself (no mount namespace in linux.namespaces)",
            rootfs.display()
        )
    };
    let dflags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let src = open(rootfs, dflags, Mode::empty()).with_context(what)?;
    let tree = clone_tree(src.as_fd(), true).with_context(what)?;
    let private = MountAttr {
        set: 0,
        clr: 0,
        propagation: libc::MS_PRIVATE,
    };
    mount_setattr(tree.as_fd(), true, private).with_context(what)?;
    move_mount_fd(tree.as_fd(), src.as_fd()).with_context(what)?;
    Ok(())
}

/// Undo [`bind_rootfs_in_host_ns`]: lazily unmount the mount at `rootfs` with everything under
/// it, if it is still the one whose id is `ours` (never another mount that happens to be there
/// now). Host side (delete, or a failed create).
pub fn unmount_host_rootfs(rootfs: &Path, ours: u64) -> Result<()> {
    match crate::sys::mount_id(rootfs) {
        Ok(id) if id == ours => umount2(rootfs, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW)
            .with_context(|| format!("unmounting the container's rootfs {}", rootfs.display())),
        _ => Ok(()),
    }
}

/// chroot into `rootfs` (no mount namespace of our own: pivot_root would change the root of
/// every process of the runtime's namespace); leaves the cwd at the new `/`.
pub fn chroot_into(rootfs: &Path) -> Result<()> {
    chdir(rootfs).with_context(|| format!("chdir {}", rootfs.display()))?;
    chroot(".").context("chroot into the rootfs")?;
    chdir("/").context("chdir / after chroot")?;
    Ok(())
}

/// Does config.json bind something onto /dev itself (then no device nodes are made)?
fn dev_is_bound(spec: &Spec) -> bool {
    spec.mounts().iter().flatten().any(|m| {
        m.destination() == Path::new("/dev")
            && (m.typ().as_deref() == Some("bind")
                || m.options()
                    .iter()
                    .flatten()
                    .any(|o| o == "bind" || o == "rbind"))
    })
}

/// Before pivot_root: propagation of `/`, bind the rootfs onto itself, every mount of config.json
/// in order, the default /dev, `linux.devices`, /dev symlinks and ptmx.
///
/// Preconditions: called in the container's new mount namespace (and user namespace, if any),
/// still on the host root, with /proc of the host mounted at /proc, single-threaded.
#[cfg(test)]
pub fn prepare(opts: &RootfsOptions) -> Result<()> {
    prepare_with(opts, &mut || Ok(()))
}

/// [`prepare`], calling `before_cgroup` once, right before the first `cgroup` mount (or at the
/// end when there is none): the container's init joins its cgroup and cgroup namespace there, so
/// that the runtime's (slow, on cgroup v1) cgroup attach overlaps the mounts before it.
pub fn prepare_with(
    opts: &RootfsOptions,
    before_cgroup: &mut dyn FnMut() -> Result<()>,
) -> Result<()> {
    let spec = opts.spec;
    let rootfs = opts.rootfs;
    if !rootfs.is_absolute() {
        bail!("rootfs {} is not an absolute path", rootfs.display());
    }
    if own_mount_ns(spec) {
        // An unbindable / would refuse the rootfs self-bind below (EINVAL): it gets the
        // default here and is made unbindable by `finalize`, on the container's own root.
        let prop = match rootfs_propagation(spec)? {
            Some(p) if !p.contains(MsFlags::MS_UNBINDABLE) => p,
            _ => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        };
        mount(NONE, "/", NONE, prop, NONE)
            .context("setting the propagation of / in the new mount namespace")?;
        make_parent_mount_private(rootfs, prop)?;
        mount(
            Some(rootfs),
            rootfs,
            NONE,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            NONE,
        )
        .with_context(|| format!("bind-mounting the rootfs {} onto itself", rootfs.display()))?;
    } else {
        bind_rootfs_in_host_ns(rootfs)?;
    }
    // opened after the self-bind so that every mount lands on the new bind, not under it
    let root =
        open_root(rootfs).with_context(|| format!("opening the rootfs {}", rootfs.display()))?;
    let linux = spec.linux().as_ref();
    let has_netns = linux
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == LinuxNamespaceType::Network));
    let mut ctx = mounts::Ctx {
        root,
        rootfs,
        bundle: opts.bundle,
        new_cgroupns: opts.new_cgroupns,
        in_userns: opts.in_userns,
        has_netns,
        dev_ro_later: None,
        idmapped: opts.idmapped,
        cgroup2_dir: opts.cgroup2_dir,
    };
    let mut in_cgroup = false;
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if !in_cgroup && matches!(m.typ().as_deref(), Some("cgroup") | Some("cgroup2")) {
            before_cgroup()?;
            in_cgroup = true;
        }
        mounts::mount_entry(&mut ctx, i, m)?;
    }
    if !in_cgroup {
        before_cgroup()?;
    }
    if !dev_is_bound(spec) {
        let empty = Vec::new();
        let devs = linux.and_then(|l| l.devices().as_ref()).unwrap_or(&empty);
        dev::create_devices(ctx.root.as_fd(), devs, opts.in_userns)?;
        dev::dev_symlinks(ctx.root.as_fd())?;
    }
    if let Some(d) = &ctx.dev_ro_later {
        let terminal = spec
            .process()
            .as_ref()
            .is_some_and(|p| p.terminal().unwrap_or(false));
        if terminal && d == Path::new("/dev") {
            // the pty is bound onto /dev/console after pivot_root: its mount point must exist
            // before /dev turns read-only (runc makes /dev read-only after the console)
            let console = Path::new("/dev/console");
            match resolve(ctx.root.as_fd(), console, false) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    create_file(ctx.root.as_fd(), console, Mode::from_bits_truncate(0o666))
                        .context("creating /dev/console before /dev is made read-only")?;
                }
                Err(e) => return Err(e).context("resolving /dev/console"),
            }
        }
        let fd = resolve(ctx.root.as_fd(), d, true).with_context(|| format!("re-opening {d:?}"))?;
        mounts::make_read_only(fd.as_fd())
            .with_context(|| format!("making {d:?} read-only after creating the device nodes"))?;
    }
    Ok(())
}

/// pivot_root into `rootfs` and detach the old root (or MS_MOVE + chroot with `no_pivot`);
/// leaves the cwd at the new `/`. No fd of the host is left open on return.
pub fn pivot(rootfs: &Path, no_pivot: bool) -> Result<()> {
    if no_pivot {
        hide_host_proc_and_sys(rootfs)?;
        chdir(rootfs).with_context(|| format!("chdir {}", rootfs.display()))?;
        mount(Some(rootfs), "/", NONE, MsFlags::MS_MOVE, NONE)
            .with_context(|| format!("moving the mount {} onto /", rootfs.display()))?;
        chroot(".").context("chroot into the rootfs")?;
        chdir("/").context("chdir / after chroot")?;
        return Ok(());
    }
    let dflags = OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC;
    let old = open("/", dflags, Mode::empty()).context("opening the old root")?;
    let new = open(rootfs, dflags, Mode::empty())
        .with_context(|| format!("opening the rootfs {}", rootfs.display()))?;
    fchdir(&new).context("fchdir to the rootfs")?;
    // pivot_root(".", "."): the old root ends up stacked under the new one, at "/"
    pivot_root(".", ".").context("pivot_root")?;
    fchdir(&old).context("fchdir to the old root")?;
    // do not let the lazy unmount propagate to the host
    mount(NONE, ".", NONE, MsFlags::MS_SLAVE | MsFlags::MS_REC, NONE)
        .context("making the old root rslave")?;
    umount2(".", MntFlags::MNT_DETACH).context("detaching the old root")?;
    chdir("/").context("chdir / after pivot_root")?;
    Ok(())
}

/// The full (filesystem root mounted) proc and sysfs mounts of `mountinfo` that are not at or
/// below `rootfs`, in mountinfo order (parents before their submounts).
fn full_proc_sys_mounts_outside(mountinfo: &str, rootfs: &Path) -> Vec<PathBuf> {
    crate::sys::procfmt::mountinfo(mountinfo)
        .into_iter()
        .filter(|m| m.root == "/" && (m.fstype == "proc" || m.fstype == "sysfs"))
        .filter(|m| !m.mount_point.starts_with(rootfs))
        .map(|m| m.mount_point)
        .collect()
}

/// Without pivot_root the host's mounts stay in the container's mount namespace, below the
/// moved root: a full procfs or sysfs there satisfies the kernel's "mount would reveal more"
/// check, so a process of the container could mount a fresh, unmasked procfs from a new user
/// and pid namespace. As runc's msMoveRoot does: every full proc and sysfs mount outside the
/// rootfs is made rslave (nothing propagates to the host) and detached, or covered with a
/// tmpfs where it cannot be unmounted (a locked mount of a less privileged namespace).
fn hide_host_proc_and_sys(rootfs: &Path) -> Result<()> {
    let mi = mounts::read_proc("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    for mp in full_proc_sys_mounts_outside(&mi, rootfs) {
        match mount(
            NONE,
            mp.as_path(),
            NONE,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            NONE,
        ) {
            Ok(()) => {}
            // a parent was detached already, taking this one with it
            Err(nix::errno::Errno::ENOENT) => continue,
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("--no-pivot: making the host mount {} rslave", mp.display())
                })
            }
        }
        match umount2(mp.as_path(), MntFlags::MNT_DETACH) {
            Ok(()) => {}
            Err(nix::errno::Errno::EINVAL | nix::errno::Errno::EPERM) => mount(
                Some("tmpfs"),
                mp.as_path(),
                Some("tmpfs"),
                MsFlags::empty(),
                NONE,
            )
            .with_context(|| {
                format!(
                    "--no-pivot: covering the host mount {} with a tmpfs",
                    mp.display()
                )
            })?,
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("--no-pivot: detaching the host mount {}", mp.display())
                })
            }
        }
    }
    Ok(())
}

/// After pivot_root: bind-mount the pty slave `fd` onto /dev/console (by fd, never by path:
/// CVE-2025-52565). /dev/console is created as an empty regular file if missing; a symlink there
/// is refused.
pub fn bind_console(pty_slave: BorrowedFd) -> Result<()> {
    let root = open_root(Path::new("/")).context("opening /")?;
    let console = Path::new("/dev/console");
    let target = match resolve(root.as_fd(), console, false) {
        Ok(fd) => {
            let k = file_type(&stat_fd(fd.as_fd())?);
            if k != SFlag::S_IFREG && k != SFlag::S_IFCHR {
                bail!(
                    "/dev/console exists and is not a regular file or character device (mode {:o})",
                    k.bits()
                );
            }
            fd
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            create_file(root.as_fd(), console, Mode::from_bits_truncate(0o666))
                .context("creating /dev/console")?
        }
        Err(e) => return Err(e).context("resolving /dev/console"),
    };
    match clone_tree(pty_slave, false) {
        Ok(tree) => move_mount_fd(tree.as_fd(), target.as_fd()),
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
            let s = proc_fd_path(pty_slave);
            mounts::mount_on_fd(
                s.to_str().ok(),
                target.as_fd(),
                None,
                MsFlags::MS_BIND,
                None,
            )
        }
        Err(e) => Err(e),
    }
    .context("bind-mounting the console pty onto /dev/console")
}

/// After pivot_root (runc's reOpenDevNull): stdin/stdout/stderr that are the host's /dev/null
/// are replaced by the container's /dev/null, itself opened without following symlinks and
/// checked to be the char device 1:3. Call it only when the default /dev was set up.
pub fn reopen_dev_null() -> Result<()> {
    use nix::unistd::{dup2_stderr, dup2_stdin, dup2_stdout};
    let root = open_root(Path::new("/")).context("opening /")?;
    let dev = resolve(root.as_fd(), Path::new("/dev"), true).context("opening /dev")?;
    let null = nix::fcntl::openat(
        dev.as_fd(),
        c"null",
        OFlag::O_RDWR | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .context("opening /dev/null")?;
    let st = nix::sys::stat::fstat(&null)?;
    if file_type(&st) != SFlag::S_IFCHR || st.st_rdev != libc::makedev(1, 3) {
        bail!(
            "/dev/null in the container is not the null device (mode {:o})",
            st.st_mode
        );
    }
    let (i, o, e) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
    type Dup = fn(&std::os::fd::OwnedFd) -> nix::Result<()>;
    let stdio: [(BorrowedFd, Dup); 3] = [
        (i.as_fd(), |f| dup2_stdin(f)),
        (o.as_fd(), |f| dup2_stdout(f)),
        (e.as_fd(), |f| dup2_stderr(f)),
    ];
    for (n, (fd, dup)) in stdio.into_iter().enumerate() {
        // a closed stdio fd just fails fstat (EBADF) and is left alone
        if let Ok(c) = nix::sys::stat::fstat(fd) {
            if file_type(&c) == SFlag::S_IFCHR && c.st_rdev == st.st_rdev {
                dup(&null).with_context(|| format!("replacing fd {n} by /dev/null"))?;
            }
        }
    }
    Ok(())
}

/// After pivot_root: `linux.readonlyPaths`, `linux.maskedPaths`, `root.readonly` and the final
/// `linux.rootfsPropagation`.
pub fn finalize(spec: &Spec) -> Result<()> {
    let root = open_root(Path::new("/")).context("opening /")?;
    let linux = spec.linux().as_ref();
    let ro = MountAttr {
        set: api::MOUNT_ATTR_RDONLY,
        clr: 0,
        propagation: 0,
    };
    for (i, p) in linux
        .and_then(|l| l.readonly_paths().as_ref())
        .into_iter()
        .flatten()
        .enumerate()
    {
        let what = || format!("linux.readonlyPaths[{i}] ({p:?})");
        let fd = match resolve(root.as_fd(), Path::new(p), true) {
            Ok(fd) => fd,
            Err(e) if is_enoent(&e) => continue,
            Err(e) => return Err(e).with_context(what),
        };
        let e = MountAttr::default();
        mounts::bind_fd(
            fd.as_fd(),
            fd.as_fd(),
            true,
            e,
            ro,
            &[],
            Some((root.as_fd(), Path::new("/"))),
        )
        .with_context(what)?;
    }
    let masked = linux.and_then(|l| l.masked_paths().as_ref());
    if let Some(masked) = masked.filter(|m| !m.is_empty()) {
        let mut null = None;
        for (i, p) in masked.iter().enumerate() {
            let what = || format!("linux.maskedPaths[{i}] ({p:?})");
            let fd = match resolve(root.as_fd(), Path::new(p), true) {
                Ok(fd) => fd,
                Err(e) if is_enoent(&e) => continue,
                Err(e) => return Err(e).with_context(what),
            };
            if file_type(&stat_fd(fd.as_fd())?) == SFlag::S_IFDIR {
                mask_dir(fd.as_fd()).with_context(what)?;
                continue;
            }
            if null.is_none() {
                null = Some(open_dev_null(root.as_fd()).with_context(what)?);
            }
            let n = null.as_ref().expect("just set");
            let e = MountAttr::default();
            mounts::bind_fd(
                n.as_fd(),
                fd.as_fd(),
                false,
                e,
                e,
                &[],
                Some((root.as_fd(), Path::new("/"))),
            )
            .with_context(what)?;
        }
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        match mount_setattr(root.as_fd(), false, ro) {
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => mount(
                NONE,
                "/",
                NONE,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                NONE,
            )
            .map_err(io::Error::from),
            r => r,
        }
        .context("root.readonly: remounting / read-only")?;
    }
    if let Some(p) = rootfs_propagation(spec)? {
        mount(NONE, "/", NONE, p, NONE).context("applying linux.rootfsPropagation to /")?;
    }
    Ok(())
}

/// A read-only empty tmpfs over a directory. Built detached with fsopen/fsmount so that it works
/// without a /proc in the container; mount(2) through /proc/self/fd on older kernels.
fn mask_dir(fd: BorrowedFd<'_>) -> io::Result<()> {
    match api::new_detached_fs(c"tmpfs", api::MOUNT_ATTR_RDONLY) {
        Ok(mnt) => move_mount_fd(mnt.as_fd(), fd),
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
            mounts::mount_on_fd(Some("tmpfs"), fd, Some("tmpfs"), MsFlags::MS_RDONLY, None)
        }
        Err(e) => Err(e),
    }
}

/// The container's /dev/null, opened without following symlinks and checked to be the char
/// device 1:3 before anything is mounted from it (CVE-2025-31133).
fn open_dev_null(root: BorrowedFd<'_>) -> Result<std::os::fd::OwnedFd> {
    let fd = resolve(root, Path::new("/dev/null"), false).context("opening /dev/null")?;
    let st = stat_fd(fd.as_fd())?;
    if file_type(&st) != SFlag::S_IFCHR || st.st_rdev != libc::makedev(1, 3) {
        bail!(
            "/dev/null in the container is not the null device (mode {:o}, rdev {:x}); refusing to mask with it",
            st.st_mode,
            st.st_rdev
        );
    }
    Ok(fd)
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn parent_mount_is_the_longest_prefix() {
        let mi = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 22 0:40 / /tmp rw shared:5 - tmpfs tmpfs rw
31 22 0:41 / /tmp2 rw - tmpfs tmpfs rw
32 30 0:42 / /tmp/a\\040b rw master:3 - tmpfs tmpfs rw
";
        let p = |s: &str| parent_mount(mi, Path::new(s)).unwrap();
        assert_eq!(p("/tmp/x/rootfs"), (PathBuf::from("/tmp"), true));
        assert_eq!(p("/tmp2/rootfs"), (PathBuf::from("/tmp2"), false));
        assert_eq!(p("/var/lib/x"), (PathBuf::from("/"), true));
        assert_eq!(p("/tmp/a b/rootfs"), (PathBuf::from("/tmp/a b"), false));
        assert_eq!(crate::sys::procfmt::unescape_octal("a\\134b"), "a\\b");
    }

    #[test]
    fn full_proc_and_sysfs_outside_the_rootfs() {
        let mi = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
23 22 0:22 / /proc rw,nosuid shared:12 - proc proc rw
24 23 0:23 / /proc/sys/fs/binfmt_misc rw shared:13 - autofs systemd-1 rw
25 22 0:24 / /sys rw,nosuid shared:2 - sysfs sysfs rw
26 25 0:25 / /sys/fs/cgroup ro shared:3 - tmpfs tmpfs ro
27 22 0:22 /sys /srv/proc-sys rw - proc proc rw
28 22 0:26 / /srv/rootfs rw - ext4 /dev/vdb rw
29 28 0:27 / /srv/rootfs/proc rw - proc proc rw
30 28 0:28 / /srv/rootfs/sys ro - sysfs sysfs ro
31 22 0:29 / /srv/rootfs2/proc rw - proc proc rw
32 22 0:30 / /run/a\\040b rw - proc proc rw
";
        let v = full_proc_sys_mounts_outside(mi, Path::new("/srv/rootfs"));
        let want: Vec<PathBuf> = ["/proc", "/sys", "/srv/rootfs2/proc", "/run/a b"]
            .iter()
            .map(PathBuf::from)
            .collect();
        // not: autofs/tmpfs submounts, a bind of a procfs subdirectory (root /sys: not full),
        // the container's own /proc and /sys; a sibling whose name only starts like the
        // rootfs is outside it
        assert_eq!(v, want);
    }
}
