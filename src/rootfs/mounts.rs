//! One `mounts[]` entry of config.json onto the rootfs: bind/rbind, tmpfs (with tmpcopyup),
//! proc, sysfs, cgroup (v1 and v2) and everything else passed to mount(2) as is.

use super::options::{parse_mount_options, MountOptions};
use super::resolve::{
    check_within, create_file, file_type, mkdir_all, proc_fd_path, resolve, stat_fd,
};
use crate::sys::mount_api::{self as api, clone_tree, mount_setattr, move_mount_fd, MountAttr};
use crate::sys::procfmt::{self, MountInfo};
use anyhow::{anyhow, bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{openat, readlinkat, OFlag, AT_FDCWD};
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{fchmod, fstatat, mkdirat, mknodat, FileStat, Mode, SFlag};
use nix::unistd::{fchown, fchownat, symlinkat, Gid, Uid};
use oci_spec::runtime::Mount;
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// What every mount of one container shares.
pub struct Ctx<'a> {
    /// O_PATH fd of the rootfs, opened after it was bound onto itself.
    pub root: OwnedFd,
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    pub new_cgroupns: bool,
    pub in_userns: bool,
    /// The container gets a network namespace of its own (sysfs may be mounted fresh).
    pub has_netns: bool,
    /// /dev was mounted read-only: that is applied after the device nodes are made.
    pub dev_ro_later: Option<PathBuf>,
    /// Detached id-mapped trees made on the host side, by index in `mounts`.
    pub idmapped: &'a [(usize, OwnedFd)],
    /// The container's cgroup v2 directory on the host, if known.
    pub cgroup2_dir: Option<&'a Path>,
}

const NONE: Option<&str> = None;
const DIR_MODE: u32 = 0o755;

fn dir_mode() -> Mode {
    Mode::from_bits_truncate(DIR_MODE)
}

/// `mount(2)` onto an fd (through its /proc/self/fd magic link).
pub fn mount_on_fd(
    source: Option<&str>,
    target: BorrowedFd<'_>,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> io::Result<()> {
    let t = proc_fd_path(target);
    mount(source, t.as_c_str(), fstype, flags, data)
        .map_err(|e| io::Error::from_raw_os_error(e as i32))
}

fn set_propagation(fd: BorrowedFd<'_>, flags: &[MsFlags]) -> io::Result<()> {
    for f in flags {
        mount_on_fd(None, fd, None, *f, None)?;
    }
    Ok(())
}

fn enosys(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSYS))
}

/// Bind `src` onto `dst` with `attr` on the top mount and `rec` on the whole tree, then
/// `propagation`. Uses a detached clone (open_tree) so the mount only appears once it has its
/// final flags; mount_setattr changes only the named bits, which keeps locked flags in a user
/// namespace. Falls back to mount(2) + MS_REMOUNT on kernels without the new API.
pub fn bind_fd(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    recursive: bool,
    attr: MountAttr,
    rec: MountAttr,
    propagation: &[MsFlags],
    root: Option<(BorrowedFd<'_>, &Path)>,
) -> io::Result<()> {
    match clone_tree(src, recursive) {
        Ok(tree) => {
            if !attr.is_empty() {
                mount_setattr(tree.as_fd(), false, attr)?;
            }
            if !rec.is_empty() {
                mount_setattr(tree.as_fd(), true, rec)?;
            }
            move_mount_fd(tree.as_fd(), dst)?;
            set_propagation(tree.as_fd(), propagation)
        }
        Err(e) if enosys(&e) => {
            let mut f = MsFlags::MS_BIND;
            if recursive {
                f |= MsFlags::MS_REC;
            }
            let s = proc_fd_path(src);
            let d = proc_fd_path(dst);
            mount(Some(s.as_c_str()), d.as_c_str(), NONE, f, NONE)
                .map_err(|e| io::Error::from_raw_os_error(e as i32))?;
            // the new mount is on top of dst's dentry: reach it by the path of dst
            let top = match root {
                Some((r, p)) => {
                    let rel = super::resolve::fd_path(dst)?;
                    resolve(r, rel.strip_prefix(p).unwrap_or(&rel), true)?
                }
                // not through /proc/self/fd/N: that magic link leads to the dentry under the
                // new mount, and a remount there fails (EINVAL); the path walk crosses into it
                None => openat(
                    AT_FDCWD,
                    super::resolve::fd_path(dst)?.as_path(),
                    OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| io::Error::from_raw_os_error(e as i32))?,
            };
            if !attr.is_empty() || !rec.is_empty() {
                // mount(2) cannot change a whole tree's flags: the recursive ones go on the top
                // mount too (readonlyPaths' read-only among them), as runc's remount does; as
                // with mount_setattr above, the recursive change is applied last and wins
                let both = MountAttr {
                    set: (attr.set & !rec.clr) | rec.set,
                    clr: (attr.clr & !rec.set) | rec.clr,
                    propagation: attr.propagation,
                };
                remount_bind_legacy(top.as_fd(), both)?;
            }
            set_propagation(top.as_fd(), propagation)
        }
        Err(e) => Err(e),
    }
}

/// Make the mount at `fd` read-only (that mount only): mount_setattr, or where the kernel has
/// none, MS_REMOUNT keeping the flags the mount has.
pub(super) fn make_read_only(fd: BorrowedFd<'_>) -> io::Result<()> {
    let ro = MountAttr {
        set: api::MOUNT_ATTR_RDONLY,
        clr: 0,
        propagation: 0,
    };
    match mount_setattr(fd, false, ro) {
        Err(e) if enosys(&e) => remount_bind_legacy(fd, ro),
        r => r,
    }
}

/// MS_REMOUNT|MS_BIND for kernels without mount_setattr: keep the flags the mount already has
/// (statvfs) except those `attr` clears, so locked flags survive in a user namespace.
fn remount_bind_legacy(fd: BorrowedFd<'_>, attr: MountAttr) -> io::Result<()> {
    use nix::sys::statvfs::{fstatvfs, FsFlags};
    let cur = fstatvfs(fd)
        .map_err(|e| io::Error::from_raw_os_error(e as i32))?
        .flags();
    let mut f = MsFlags::MS_REMOUNT | MsFlags::MS_BIND;
    for (st, ms, a) in [
        (
            FsFlags::ST_RDONLY,
            MsFlags::MS_RDONLY,
            api::MOUNT_ATTR_RDONLY,
        ),
        (
            FsFlags::ST_NOSUID,
            MsFlags::MS_NOSUID,
            api::MOUNT_ATTR_NOSUID,
        ),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV, api::MOUNT_ATTR_NODEV),
        (
            FsFlags::ST_NOEXEC,
            MsFlags::MS_NOEXEC,
            api::MOUNT_ATTR_NOEXEC,
        ),
        (
            FsFlags::ST_NOATIME,
            MsFlags::MS_NOATIME,
            api::MOUNT_ATTR_NOATIME,
        ),
        (
            FsFlags::ST_NODIRATIME,
            MsFlags::MS_NODIRATIME,
            api::MOUNT_ATTR_NODIRATIME,
        ),
    ] {
        if attr.set & a != 0 || (cur.contains(st) && attr.clr & a == 0) {
            f |= ms;
        }
    }
    mount_on_fd(None, fd, None, f, None)
}

/// Which source type a mount is.
fn is_bind(typ: &str, opts: &MountOptions) -> bool {
    typ == "bind" || opts.is_bind()
}

/// Mount `mounts[i]`.
pub fn mount_entry(ctx: &mut Ctx, i: usize, m: &Mount) -> Result<()> {
    let dest = m.destination();
    let typ = m.typ().as_deref().unwrap_or("");
    let what = || format!("mounts[{i}] (destination {dest:?})");
    let empty: Vec<String> = Vec::new();
    let mut opts =
        parse_mount_options(m.options().as_ref().unwrap_or(&empty)).with_context(what)?;
    if super::idmap::is_idmapped(m) {
        // checked at create already; repeated for callers of `prepare` that did not
        let tree = match (
            is_bind(typ, &opts),
            ctx.idmapped.iter().find(|(j, _)| *j == i),
        ) {
            (false, _) => bail!(
                "{}: idmap/ridmap/uidMappings: only bind mounts can be id-mapped",
                what()
            ),
            (true, None) => bail!(
                "{}: idmap: no id-mapped tree was prepared for this mount",
                what()
            ),
            (true, Some((_, t))) => t,
        };
        let src = m.source().clone().unwrap_or_default();
        let src = if src.is_relative() {
            ctx.bundle.join(src)
        } else {
            src
        };
        return mount_bind_tree(ctx, &src, dest, &opts, typ, Some(tree)).with_context(what);
    }
    if is_bind(typ, &opts) {
        let src = m
            .source()
            .as_ref()
            .ok_or_else(|| anyhow!("{}: bind mount without a source", what()))?;
        let src = if src.is_relative() {
            ctx.bundle.join(src)
        } else {
            src.clone()
        };
        // in a user namespace the runtime cloned the source already (idmap::detach_trees)
        let tree = ctx.idmapped.iter().find(|(j, _)| *j == i).map(|(_, t)| t);
        return mount_bind_tree(ctx, &src, dest, &opts, typ, tree).with_context(what);
    }
    let source = m.source().as_ref().and_then(|s| s.to_str()).unwrap_or(typ);
    match typ {
        "proc" | "sysfs" => {
            let dst = special_dest(ctx, dest, typ).with_context(what)?;
            check_proc_dest(ctx, dst.as_fd(), dest, typ, None).with_context(what)?;
            if typ == "sysfs" && ctx.in_userns && !ctx.has_netns {
                // a fresh sysfs needs a network namespace we own: show the host's instead
                let mut o = opts.clone();
                o.flags |= MsFlags::MS_BIND | MsFlags::MS_REC;
                if o.flags.contains(MsFlags::MS_RDONLY) {
                    // the host's /sys has submounts (cgroup, securityfs, ...): ro all of them
                    o.rec_attr.set |= api::MOUNT_ATTR_RDONLY;
                    o.rec_attr.clr &= !api::MOUNT_ATTR_RDONLY;
                }
                drop(dst);
                return mount_bind(ctx, Path::new("/sys"), dest, &o, "bind").with_context(what);
            }
            generic(ctx, dest, dst, source, typ, &opts).with_context(what)
        }
        "cgroup" | "cgroup2" => mount_cgroup(ctx, dest, &opts).with_context(what),
        "tmpfs" => mount_tmpfs(ctx, dest, source, &mut opts).with_context(what),
        "" => bail!("{}: no type and no bind option", what()),
        _ => {
            let dst = mkdir_all(ctx.root.as_fd(), dest, dir_mode())
                .with_context(|| format!("creating the mount point {dest:?}"))
                .with_context(what)?;
            check_proc_dest(ctx, dst.as_fd(), dest, typ, None).with_context(what)?;
            match generic(ctx, dest, dst, source, typ, &opts) {
                Err(e)
                    if typ == "mqueue"
                        && ctx.in_userns
                        && e.downcast_ref::<io::Error>().and_then(|e| e.raw_os_error())
                            == Some(libc::EPERM) =>
                {
                    // no IPC namespace of our own: bind the host's /dev/mqueue as runc does
                    let mut o = opts.clone();
                    o.flags |= MsFlags::MS_BIND;
                    mount_bind(ctx, Path::new("/dev/mqueue"), dest, &o, "bind").with_context(what)
                }
                r => r.with_context(what),
            }
        }
    }
}

/// The destination of proc/sysfs must be a real directory, never a symlink (CVE-2019-16884:
/// a symlinked /proc could redirect the mount over something the LSM profile does not cover).
fn special_dest(ctx: &Ctx, dest: &Path, typ: &str) -> Result<OwnedFd> {
    let root = ctx.root.as_fd();
    match resolve(root, dest, false) {
        Ok(fd) => {
            let k = file_type(&stat_fd(fd.as_fd())?);
            if k == SFlag::S_IFLNK {
                bail!("refusing to mount {typ} on {dest:?}: the destination is a symlink");
            }
            if k != SFlag::S_IFDIR {
                bail!("refusing to mount {typ} on {dest:?}: the destination is not a directory");
            }
            Ok(fd)
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            mkdir_all(root, dest, dir_mode()).with_context(|| format!("creating {dest:?}"))
        }
        Err(e) => Err(e).with_context(|| format!("resolving {dest:?}")),
    }
}

/// runc's checkProcMount: nothing may be mounted inside the container's /proc except the files
/// lxcfs emulates, and /proc itself only takes procfs. Returns where `dst` is, as a path of the
/// container.
fn check_proc_dest(
    ctx: &Ctx,
    dst: BorrowedFd<'_>,
    dest: &Path,
    typ: &str,
    bind_src: Option<BorrowedFd<'_>>,
) -> Result<PathBuf> {
    let real = check_within(dst, ctx.rootfs).with_context(|| format!("checking {dest:?}"))?;
    let rel = Path::new("/").join(real.strip_prefix(ctx.rootfs).unwrap_or(&real));
    let Ok(under) = rel.strip_prefix("/proc") else {
        return Ok(rel);
    };
    if under.as_os_str().is_empty() {
        if typ == "proc" {
            return Ok(rel);
        }
        if let Some(src) = bind_src {
            if nix::sys::statfs::fstatfs(src)?.filesystem_type()
                == nix::sys::statfs::PROC_SUPER_MAGIC
            {
                return Ok(rel);
            }
        }
        bail!("{dest:?} cannot be mounted because it resolves to /proc and is not of type proc");
    }
    const ALLOWED: &[&str] = &[
        "cpuinfo",
        "diskstats",
        "meminfo",
        "stat",
        "swaps",
        "uptime",
        "loadavg",
        "slabinfo",
        "pressure/cpu",
        "pressure/io",
        "pressure/memory",
        "net/dev",
        "sys/kernel/ns_last_pid",
    ];
    if ALLOWED.iter().any(|a| under == Path::new(a)) {
        return Ok(rel);
    }
    bail!(
        "{dest:?} cannot be mounted because it is inside /proc ({})",
        rel.display()
    )
}

fn generic(
    ctx: &Ctx,
    dest: &Path,
    dst: OwnedFd,
    source: &str,
    typ: &str,
    opts: &MountOptions,
) -> Result<()> {
    let data = (!opts.data.is_empty()).then_some(opts.data.as_str());
    mount_on_fd(Some(source), dst.as_fd(), Some(typ), opts.flags, data)
        .with_context(|| format!("mount {typ} {source:?} (data {:?})", opts.data))?;
    after_mount(ctx, dest, &dst, opts)
}

/// Re-check the target is still inside the rootfs, then recursive attributes and propagation on
/// the new mount (reached by resolving the destination again).
fn after_mount(ctx: &Ctx, dest: &Path, dst: &OwnedFd, opts: &MountOptions) -> Result<()> {
    check_within(dst.as_fd(), ctx.rootfs).context("after mounting")?;
    if opts.rec_attr.is_empty() && opts.propagation.is_empty() {
        return Ok(());
    }
    let top = resolve(ctx.root.as_fd(), dest, true).context("re-opening the new mount")?;
    if !opts.rec_attr.is_empty() {
        mount_setattr(top.as_fd(), true, opts.rec_attr)
            .context("applying recursive mount options")?;
    }
    set_propagation(top.as_fd(), &opts.propagation).context("setting propagation")
}

fn mount_bind(ctx: &Ctx, src: &Path, dest: &Path, opts: &MountOptions, typ: &str) -> Result<()> {
    mount_bind_tree(ctx, src, dest, opts, typ, None)
}

/// A bind mount of `src`; with `tree` (a detached clone of `src` made by the runtime, its
/// options applied, id-mapped or not) that tree is attached instead of a new clone, and `src`
/// is not looked up again.
fn mount_bind_tree(
    ctx: &Ctx,
    src: &Path,
    dest: &Path,
    opts: &MountOptions,
    typ: &str,
    tree: Option<&OwnedFd>,
) -> Result<()> {
    let opened;
    let src_fd = match tree {
        Some(t) => t.as_fd(),
        None => {
            opened = openat(
                AT_FDCWD,
                src,
                OFlag::O_PATH | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| anyhow!("source {src:?}: {}", io::Error::from_raw_os_error(e as i32)))?;
            opened.as_fd()
        }
    };
    let src_dir = file_type(&stat_fd(src_fd.as_fd())?) == SFlag::S_IFDIR;
    let root = ctx.root.as_fd();
    let dst = if src_dir {
        mkdir_all(root, dest, dir_mode())
    } else {
        create_file(root, dest, Mode::from_bits_truncate(0o644))
    }
    .with_context(|| format!("creating the mount point {dest:?} (source {src:?})"))?;
    if !src_dir && file_type(&stat_fd(dst.as_fd())?) == SFlag::S_IFDIR {
        bail!("cannot bind the non-directory {src:?} onto the directory {dest:?}");
    }
    check_proc_dest(ctx, dst.as_fd(), dest, typ, Some(src_fd))?;
    if let Some(tree) = tree {
        move_mount_fd(tree.as_fd(), dst.as_fd())
            .and_then(|()| set_propagation(tree.as_fd(), &opts.propagation))
            .with_context(|| format!("attach the bind mount of {src:?}"))?;
        check_within(dst.as_fd(), ctx.rootfs).context("after mounting")?;
        return Ok(());
    }
    bind_fd(
        src_fd,
        dst.as_fd(),
        opts.flags.contains(MsFlags::MS_REC),
        opts.bind_attr(),
        opts.rec_attr,
        &opts.propagation,
        Some((root, ctx.rootfs)),
    )
    .with_context(|| format!("bind mount {src:?}"))?;
    check_within(dst.as_fd(), ctx.rootfs).context("after mounting")?;
    Ok(())
}

fn mount_tmpfs(ctx: &mut Ctx, dest: &Path, source: &str, opts: &mut MountOptions) -> Result<()> {
    let root = ctx.root.as_fd();
    let dst = mkdir_all(root, dest, dir_mode())
        .with_context(|| format!("creating the mount point {dest:?}"))?;
    let at = check_proc_dest(ctx, dst.as_fd(), dest, "tmpfs", None)?;
    let ro = opts.flags.contains(MsFlags::MS_RDONLY);
    let is_dev = at == Path::new("/dev");
    let old = if opts.tmpcopyup {
        Some(
            openat(
                dst.as_fd(),
                c".",
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .context("opening the directory to copy up")?,
        )
    } else {
        None
    };
    // like runc: a tmpfs over an existing directory takes that directory's mode, unless the
    // data names one (a fresh tmpfs root would be 1777)
    let keep_mode = if opts.data.split(',').any(|o| o.starts_with("mode=")) {
        None
    } else {
        Some(stat_fd(dst.as_fd())?.st_mode & 0o7777).filter(|m| *m != 0o1777)
    };
    let delay_ro = ro && (old.is_some() || is_dev || keep_mode.is_some());
    let mut flags = opts.flags;
    if delay_ro {
        flags.remove(MsFlags::MS_RDONLY);
    }
    let data = (!opts.data.is_empty()).then_some(opts.data.as_str());
    mount_on_fd(Some(source), dst.as_fd(), Some("tmpfs"), flags, data)
        .with_context(|| format!("mount tmpfs (data {:?})", opts.data))?;
    if old.is_some() || keep_mode.is_some() {
        let new = resolve(root, dest, true).context("re-opening the new tmpfs")?;
        let new = openat(
            new.as_fd(),
            c".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        if let Some(old) = old {
            copy_dir(old.as_fd(), new.as_fd()).context("tmpcopyup")?;
        }
        if let Some(m) = keep_mode {
            fchmod(&new, Mode::from_bits_truncate(m)).context("chmod of the tmpfs root")?;
        }
        if ro && !is_dev {
            make_read_only(new.as_fd()).context("making the tmpfs read-only after tmpcopyup")?;
        }
    }
    if ro && is_dev {
        ctx.dev_ro_later = Some(dest.to_path_buf());
    }
    after_mount(ctx, dest, &dst, opts)
}

/// Copy the tree under `from` into `to` (both directory fds), keeping modes, owners, symlinks
/// and special files; never following a symlink.
pub fn copy_dir(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> Result<()> {
    let dup = openat(
        from,
        c".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let mut dir = nix::dir::Dir::from_fd(dup)?;
    for entry in dir.iter() {
        let entry = entry?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        copy_entry(from, to, name).with_context(|| format!("copying {name:?}"))?;
    }
    Ok(())
}

fn copy_entry(from: BorrowedFd<'_>, to: BorrowedFd<'_>, name: &CStr) -> Result<()> {
    use nix::fcntl::AtFlags;
    let st: FileStat = fstatat(from, name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
    let perm = Mode::from_bits_truncate(st.st_mode & 0o7777);
    let owner = (
        Some(Uid::from_raw(st.st_uid)),
        Some(Gid::from_raw(st.st_gid)),
    );
    let ro = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    match file_type(&st) {
        SFlag::S_IFDIR => {
            mkdirat(to, name, Mode::from_bits_truncate(0o700))?;
            let src = openat(from, name, ro | OFlag::O_DIRECTORY, Mode::empty())?;
            let dst = openat(to, name, ro | OFlag::O_DIRECTORY, Mode::empty())?;
            copy_dir(src.as_fd(), dst.as_fd())?;
            fchown(&dst, owner.0, owner.1)?;
            fchmod(&dst, perm)?;
        }
        SFlag::S_IFREG => {
            let src = openat(from, name, ro, Mode::empty())?;
            let dst = openat(
                to,
                name,
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            )?;
            let mut s = std::fs::File::from(src);
            let mut d = std::fs::File::from(dst);
            io::copy(&mut s, &mut d)?;
            fchown(&d, owner.0, owner.1)?;
            fchmod(&d, perm)?;
        }
        SFlag::S_IFLNK => {
            let target = readlinkat(from, name)?;
            symlinkat(target.as_os_str(), to, name)?;
            fchownat(to, name, owner.0, owner.1, AtFlags::AT_SYMLINK_NOFOLLOW)?;
        }
        kind => {
            // devices, fifos, sockets: same node, owner and mode
            let old = nix::sys::stat::umask(Mode::empty());
            let r = mknodat(to, name, kind, perm, st.st_rdev);
            nix::sys::stat::umask(old);
            r?;
            fchownat(to, name, owner.0, owner.1, AtFlags::AT_SYMLINK_NOFOLLOW)?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// cgroup

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The host directories of this process's own cgroups, one per hierarchy: (name under the
/// container's cgroup tmpfs, host path). `name` is the base name of the host mount point
/// ("cpu,cpuacct", "memory", "systemd", "unified").
pub fn own_cgroup_dirs(proc_cgroup: &str, mountinfo: &str) -> Vec<(String, PathBuf)> {
    own_hierarchies(proc_cgroup, mountinfo)
        .into_iter()
        .map(|h| (h.name, h.host))
        .collect()
}

/// One cgroup hierarchy this process belongs to.
pub struct Hierarchy {
    /// Base name of the host mount point ("memory", "cpu,cpuacct", "systemd", "unified").
    pub name: String,
    /// This process's cgroup directory in it, on the host.
    pub host: PathBuf,
    /// The mount data that mounts the same hierarchy afresh ("memory", "cpu,cpuacct",
    /// "name=systemd"); empty for cgroup2.
    pub controllers: String,
    pub v2: bool,
}

/// The hierarchies of this process, one per hierarchy, preferring mounts under /sys/fs/cgroup.
pub fn own_hierarchies(proc_cgroup: &str, mountinfo: &str) -> Vec<Hierarchy> {
    let mounts: Vec<MountInfo> = procfmt::mountinfo(mountinfo)
        .into_iter()
        .filter(|m| m.fstype == "cgroup" || m.fstype == "cgroup2")
        .collect();
    let mut out: Vec<Hierarchy> = Vec::new();
    for line in procfmt::proc_cgroup(proc_cgroup) {
        let wanted = |m: &MountInfo| {
            if line.controllers.is_empty() {
                return m.fstype == "cgroup2";
            }
            m.fstype == "cgroup"
                && line
                    .controllers
                    .iter()
                    .all(|c| m.super_options.split(',').any(|o| o == c))
        };
        // prefer the mount under /sys/fs/cgroup
        let m = mounts
            .iter()
            .filter(|m| wanted(m))
            .min_by_key(|m| !m.mount_point.starts_with(CGROUP_ROOT));
        let Some(m) = m else { continue };
        let rel = line
            .path
            .strip_prefix(m.root.as_str())
            .unwrap_or(&line.path);
        let host = m.mount_point.join(rel.trim_start_matches('/'));
        let name = m
            .mount_point
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.is_empty() || out.iter().any(|h| h.name == name) {
            continue;
        }
        out.push(Hierarchy {
            name,
            host,
            controllers: line.controller_list(),
            v2: m.fstype == "cgroup2",
        });
    }
    out
}

/// Read a /proc file in one go (no size hint there: std would start with tiny reads).
pub fn read_proc(path: &str) -> io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut s = String::with_capacity(16 * 1024);
    f.read_to_string(&mut s)?;
    Ok(s)
}

fn is_fs(path: &str, magic: nix::sys::statfs::FsType) -> bool {
    nix::sys::statfs::statfs(path)
        .map(|s| s.filesystem_type() == magic)
        .unwrap_or(false)
}

fn mount_cgroup(ctx: &Ctx, dest: &Path, opts: &MountOptions) -> Result<()> {
    use nix::sys::statfs::CGROUP2_SUPER_MAGIC;
    // mount(8) semantics, as runc: read-only only when `ro` is given (the last of ro/rw wins);
    // engines drop `ro` for --privileged and user-namespaced containers that need to write it
    let ro = opts.flags.contains(MsFlags::MS_RDONLY);
    let unified = is_fs(CGROUP_ROOT, CGROUP2_SUPER_MAGIC);
    let hybrid = !unified && is_fs("/sys/fs/cgroup/unified", CGROUP2_SUPER_MAGIC);
    let root = ctx.root.as_fd();
    let dst = special_dest(ctx, dest, "cgroup")?;
    check_proc_dest(ctx, dst.as_fd(), dest, "cgroup", None)?;
    let mut o = opts.clone();
    o.flags
        .remove(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    // A hybrid host is a v1 host: the container gets the v1 controllers (and the unified
    // hierarchy among them), as runc does.
    let _ = hybrid;
    if unified {
        // CVE-2023-25809: without a cgroup namespace this is the host's whole tree: never rw
        if ro || !ctx.new_cgroupns {
            o.flags |= MsFlags::MS_RDONLY;
        }
        let data = (!o.data.is_empty()).then_some(o.data.as_str());
        match mount_on_fd(Some("cgroup2"), dst.as_fd(), Some("cgroup2"), o.flags, data) {
            Ok(()) => return after_mount(ctx, dest, &dst, &o),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EBUSY)) => {
                // not allowed to mount cgroup2 here (user namespace without a cgroup
                // namespace), or EBUSY (a rootless spec's rbind of /sys already has the host's
                // cgroup2 mount there): bind the container's cgroup directory instead,
                // read-only, as runc. Inside a new cgroup namespace /proc/self/cgroup no
                // longer tells where that is on the host: the runtime passed it.
                o.flags |= MsFlags::MS_RDONLY | MsFlags::MS_BIND | MsFlags::MS_REC;
                if let Some(dir) = ctx.cgroup2_dir.filter(|_| ctx.new_cgroupns) {
                    drop(dst);
                    return mount_bind(ctx, dir, dest, &o, "bind");
                }
                let pc = read_proc("/proc/self/cgroup")?;
                let mi = read_proc("/proc/self/mountinfo")?;
                let own = own_cgroup_dirs(&pc, &mi);
                let (_, host) = own
                    .iter()
                    .find(|(n, _)| n == "cgroup" || n == "unified")
                    .or(own.first())
                    .ok_or_else(|| {
                        anyhow!("mount cgroup2: {e}; and no cgroup2 directory to bind")
                    })?;
                drop(dst);
                return mount_bind(ctx, host, dest, &o, "bind");
            }
            Err(e) => return Err(e).context("mount cgroup2"),
        }
    }
    // cgroup v1: a tmpfs with a bind of each of our own cgroup directories
    let pc = read_proc("/proc/self/cgroup").context("reading /proc/self/cgroup")?;
    let mi = read_proc("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    let own = own_hierarchies(&pc, &mi);
    let base = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount_on_fd(
        Some("tmpfs"),
        dst.as_fd(),
        Some("tmpfs"),
        base,
        Some("mode=755"),
    )
    .context("mount the tmpfs for cgroup v1")?;
    let top = resolve(root, dest, true).context("re-opening the cgroup tmpfs")?;
    let mut bo = o.clone();
    if ro {
        bo.flags |= MsFlags::MS_RDONLY;
    }
    let attr = bo.bind_attr();
    for h in &own {
        let (name, host) = (&h.name, &h.host);
        let sub = super::resolve::mkdir_child(top.as_fd(), name.as_ref(), dir_mode())
            .with_context(|| format!("creating {dest:?}/{name}"))?;
        if ctx.new_cgroupns {
            // In a cgroup namespace a fresh mount of the hierarchy is rooted at the
            // container's own cgroup (and /proc/self/cgroup no longer names host paths).
            let (fs, data) = if h.v2 {
                ("cgroup2", None)
            } else {
                ("cgroup", Some(h.controllers.as_str()))
            };
            let mut f = base;
            if ro {
                f |= MsFlags::MS_RDONLY;
            }
            mount_on_fd(Some("cgroup"), sub.as_fd(), Some(fs), f, data)
                .with_context(|| format!("mount {fs} ({}) on {dest:?}/{name}", h.controllers))?;
        } else {
            let src = openat(
                AT_FDCWD,
                host.as_path(),
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .with_context(|| format!("opening the host cgroup {host:?}"))?;
            bind_fd(src.as_fd(), sub.as_fd(), true, attr, o.rec_attr, &[], None)
                .with_context(|| format!("bind {host:?} onto {dest:?}/{name}"))?;
        }
        if name.contains(',') {
            for ss in name.split(',') {
                match symlinkat(name.as_str(), top.as_fd(), ss) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(e).with_context(|| format!("symlink {dest:?}/{ss}")),
                }
            }
        }
    }
    if ro {
        make_read_only(top.as_fd()).context("making the cgroup tmpfs read-only")?;
    }
    check_within(dst.as_fd(), ctx.rootfs).context("after mounting")?;
    set_propagation(top.as_fd(), &o.propagation).context("setting propagation")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MI: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
90 50 0:32 /foo /elsewhere/memory rw,relatime - cgroup cgroup rw,memory
";
    const PC: &str = "\
9:name=systemd:/user.slice
4:memory:/process_api/abc
2:cpu,cpuacct:/
0::/user.slice/x
";

    #[test]
    fn own_cgroups_v1_hybrid() {
        let own = own_cgroup_dirs(PC, MI);
        assert_eq!(
            own,
            vec![
                (
                    "systemd".to_string(),
                    PathBuf::from("/sys/fs/cgroup/systemd/user.slice")
                ),
                (
                    "memory".to_string(),
                    PathBuf::from("/sys/fs/cgroup/memory/process_api/abc")
                ),
                (
                    "cpu,cpuacct".to_string(),
                    PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")
                ),
                (
                    "unified".to_string(),
                    PathBuf::from("/sys/fs/cgroup/unified/user.slice/x")
                ),
            ]
        );
    }
}
