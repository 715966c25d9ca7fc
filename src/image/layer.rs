//! Applying one layer (a tar stream) to a root directory, safely.
//!
//! The `tar` crate only parses the stream (headers, GNU long names, PAX records, sparse files);
//! its own `unpack` is not used: it checks paths with host-path string operations, where every
//! file here is made relative to directory fds obtained through the project's in-root resolver
//! (`rootfs::resolve`: openat2 `RESOLVE_IN_ROOT`, or the equivalent user-space walk). So:
//!
//! * an entry name is cleaned lexically (`..` clamped at the root, as umoci does), and its
//!   parent directory is resolved (or made) inside the root: a symlink on the way — absolute,
//!   relative, chained, or one an earlier entry put where a directory was — is followed as if
//!   the root were `/`, never to the host. The parent's fd is kept for the entries that follow
//!   in the same directory, until one of them (or a whiteout) removes a directory or symlink
//!   that could change where that path resolves (`Parent`);
//! * the last component is never followed: the new file is made with
//!   `O_CREAT | O_EXCL | O_NOFOLLOW`, `mkdirat`, `symlinkat`, `mknodat`, and when the name is
//!   taken (`EEXIST`) whatever is in the way is removed and the call made again;
//! * a hardlink's target is looked up the same way and linked with `linkat` without following,
//!   so it can only name a file inside the root;
//! * whiteouts (`.wh.NAME`) remove NAME from lower layers, opaque markers (`.wh..wh..opq`)
//!   empty a directory of everything lower layers put there; neither removes what this layer
//!   made;
//! * ownership (when running as root), mode, xattrs (e.g. `security.capability`, set after the
//!   chown that would clear it) and mtimes are applied, on the file's own fd where there is one
//!   (a file just made by the archive's owner in a directory of its group gets no chown:
//!   `Born`); directory mtimes last, since creating children changes them.

use crate::rootfs::resolve::{self, file_type, resolve_dir, stat_fd};
use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{fstatat, mkdirat, mknodat, Mode, SFlag};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchownat, linkat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};
use std::collections::HashSet;
use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

#[derive(Clone, Copy, Debug)]
pub struct ApplyOptions {
    /// Apply the archive's owners (needs CAP_CHOWN; off when not root, as tar does).
    pub same_owner: bool,
    /// The layer goes alone into an empty directory that overlayfs stacks over its parents
    /// (a snapshot): whiteouts become overlayfs's (a 0/0 character device for `.wh.NAME`, the
    /// `trusted.overlay.opaque` xattr for `.wh..wh..opq`) instead of removing what is below.
    pub overlay: bool,
    /// Running as root of a user namespace that maps these container uids and gids (a
    /// rootless unpack with the user's subordinate ids): an owner outside them is an error
    /// naming it, device nodes (which no user namespace may create) are skipped and so are the
    /// xattrs only the host's root may set (`trusted.*`).
    pub mapped: Option<(MappedIds, MappedIds)>,
}

/// The container ids of one kind a user namespace maps: `0..below`, and `also` — the caller's
/// own id that `--userns keep-id` places beyond its subordinate ids when its uid is larger than
/// their count (podman leaves the ids between unmapped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MappedIds {
    pub below: u64,
    pub also: Option<u32>,
}

impl MappedIds {
    /// Whether container id `id` is mapped.
    pub fn has(&self, id: u32) -> bool {
        u64::from(id) < self.below || self.also == Some(id)
    }

    /// The ids as text for an error: `0-65535`, `0-999 and 65534`, `none`.
    pub fn describe(&self) -> String {
        let low = match self.below {
            0 => None,
            1 => Some("0".to_string()),
            n => Some(format!("0-{}", n - 1)),
        };
        match (low, self.also) {
            (None, None) => "none".into(),
            (Some(l), None) => l,
            (None, Some(a)) => a.to_string(),
            (Some(l), Some(a)) => format!("{l} and {a}"),
        }
    }
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            same_owner: nix::unistd::geteuid().is_root(),
            overlay: false,
            mapped: None,
        }
    }
}

const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// Clean an entry name into a relative path of normal components, `..` clamped at the root.
/// `None` for the root itself.
pub fn clean(raw: &[u8]) -> Option<PathBuf> {
    let mut out: Vec<&OsStr> = Vec::new();
    for c in Path::new(OsStr::from_bytes(raw)).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    if out.is_empty() {
        None
    } else {
        Some(out.iter().collect())
    }
}

fn errno(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// The directory `dir` opened again for reading its entries (`dir` may be an `O_PATH` fd).
fn read_dir_fd(dir: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    openat(
        dir,
        c".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno)
}

struct Meta {
    uid: u64,
    gid: u64,
    mode: u32,
    mtime: TimeSpec,
    xattrs: Vec<(CString, Vec<u8>)>,
}

/// A numeric header field as Go's archive/tar reads it (containerd, podman, umoci): an empty
/// field (all NUL bytes or spaces, as some image builders write) is 0; anything else as the
/// tar crate parses it, and an error names the field.
fn numeric<T: Default>(raw: &[u8], parsed: io::Result<T>, name: &str) -> Result<T> {
    if raw.iter().all(|&b| b == 0 || b == b' ') {
        return Ok(T::default());
    }
    parsed.with_context(|| format!("{name} field"))
}

fn meta_of<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Meta> {
    let h = entry.header();
    let old = h.as_old();
    let mut m = Meta {
        uid: numeric(&old.uid, h.uid(), "uid")?,
        gid: numeric(&old.gid, h.gid(), "gid")?,
        mode: numeric(&old.mode, h.mode(), "mode")? & 0o7777,
        mtime: TimeSpec::new(numeric(&old.mtime, h.mtime(), "mtime")? as i64, 0),
        xattrs: Vec::new(),
    };
    if let Some(exts) = entry.pax_extensions().context("PAX header")? {
        for ext in exts {
            let ext = ext.context("PAX record")?;
            let key = ext.key_bytes();
            let value = ext.value_bytes();
            let num = || std::str::from_utf8(value).ok().map(str::trim);
            match key {
                b"uid" => m.uid = num().and_then(|v| v.parse().ok()).unwrap_or(m.uid),
                b"gid" => m.gid = num().and_then(|v| v.parse().ok()).unwrap_or(m.gid),
                b"mtime" => {
                    if let Some(v) = num() {
                        let (s, frac) = v.split_once('.').unwrap_or((v, ""));
                        if let Ok(secs) = s.parse::<i64>() {
                            let digits: String = frac.chars().take(9).collect();
                            let ns = format!("{digits:0<9}").parse::<i64>().unwrap_or(0);
                            m.mtime = TimeSpec::new(secs, if digits.is_empty() { 0 } else { ns });
                        }
                    }
                }
                k if k.starts_with(b"SCHILY.xattr.") => {
                    let name = CString::new(&k[b"SCHILY.xattr.".len()..])
                        .context("xattr name with NUL")?;
                    m.xattrs.push((name, value.to_vec()));
                }
                _ => {}
            }
        }
    }
    Ok(m)
}

/// Apply the tar stream `src` to the directory `root`. `layer` names the layer in errors.
pub fn apply<R: Read>(root: BorrowedFd<'_>, src: R, opts: ApplyOptions, layer: &str) -> Result<()> {
    let mut archive = tar::Archive::new(src);
    let mut made: HashSet<PathBuf> = HashSet::new();
    let mut dir_times: Vec<(PathBuf, TimeSpec)> = Vec::new();
    let entries = archive
        .entries()
        .with_context(|| format!("layer {layer}: read tar"))?;
    let mut parent = Parent::new();
    for entry in entries {
        let mut entry = entry.with_context(|| format!("layer {layer}: read tar entry"))?;
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        apply_entry(
            root,
            &mut entry,
            &raw,
            opts,
            &mut parent,
            &mut made,
            &mut dir_times,
        )
        .with_context(|| format!("layer {layer}: entry {shown:?}"))?;
    }
    parent
        .leave()
        .with_context(|| format!("layer {layer}: after its last entry"))?;
    for (path, mtime) in dir_times.iter().rev() {
        // the directory may have been replaced later in the layer: only a directory gets it
        let Ok(fd) = resolve::resolve(root, path, false) else {
            continue;
        };
        if file_type(&stat_fd(fd.as_fd())?) == SFlag::S_IFDIR {
            set_times(fd.as_fd(), *mtime)
                .with_context(|| format!("layer {layer}: set mtime of {}", path.display()))?;
        }
    }
    Ok(())
}

fn apply_entry<R: Read>(
    root: BorrowedFd<'_>,
    entry: &mut tar::Entry<'_, R>,
    raw: &[u8],
    opts: ApplyOptions,
    parent_dir: &mut Parent,
    made: &mut HashSet<PathBuf>,
    dir_times: &mut Vec<(PathBuf, TimeSpec)>,
) -> Result<()> {
    let kind = entry.header().entry_type();
    let Some(path) = clean(raw) else {
        // the root itself: a directory entry sets its owner, mode and mtime (as umoci does)
        if kind == tar::EntryType::Directory {
            let meta = meta_of(entry)?;
            let fd = read_dir_fd(root).context("open the root")?;
            set_meta_fd(fd.as_fd(), &meta, opts, None)?;
            dir_times.push((PathBuf::new(), meta.mtime));
        }
        return Ok(());
    };
    let (parent, name) = match (path.parent(), path.file_name()) {
        (Some(p), Some(n)) => (p.to_path_buf(), n.to_owned()),
        _ => bail!("no file name"),
    };
    let name_bytes = name.as_bytes();
    if name_bytes.starts_with(WHITEOUT.as_bytes()) {
        // whiteouts remove directories and symlinks: the next entry resolves its parent afresh
        parent_dir.leave()?;
        if opts.overlay {
            return overlay_whiteout(root, &parent, name_bytes, made);
        }
        return whiteout(root, &parent, name_bytes, made);
    }
    let (dir, born) = parent_dir.enter(root, &parent)?;
    let replaced = make_entry(root, entry, &path, &name, dir, born, opts, made, dir_times)?;
    if matches!(replaced, Some(SFlag::S_IFDIR | SFlag::S_IFLNK)) {
        // a directory or symlink that the parent's own resolution may have gone through
        // (`p -> q/x/..`, then `p/x` replaced) is gone: resolve the next parent afresh
        parent_dir.leave()?;
    }
    Ok(())
}

/// The parent directory of the entries being applied, kept open while consecutive entries
/// share it (a layer lists a directory's files together), so each file costs no lookup of its
/// own. Its times, as they were when it was entered, are put back when it is left: adding or
/// replacing a child changes them, and what the lower layers (or this layer's own directory
/// entry, applied at the end) set stays, as umoci keeps it.
///
/// It is left — and the next entry's parent resolved afresh, in-root — on any other parent,
/// at a whiteout, and after an entry that removed a directory or a symlink. Only those could
/// change where the same parent path resolves: making a name where there was none changes no
/// path that resolved before it.
struct Parent {
    held: Option<(PathBuf, OwnedFd, nix::sys::stat::FileStat)>,
    /// The caller's effective uid and gid: the owner of what it makes.
    ids: (u32, u32),
    /// Whether the first file made owned by `ids` was found owned by them (a file system that
    /// gives new files other owners, e.g. NFS squashing root, gets every chown).
    checked: std::cell::Cell<Option<bool>>,
}

/// The owner a file made in the held parent directory gets, when it is known.
#[derive(Clone, Copy)]
struct Born<'a> {
    /// `None` when the parent's group is not the caller's (a set-group-ID directory, or a
    /// `grpid` mount, would give its group).
    ids: Option<(u32, u32)>,
    checked: &'a std::cell::Cell<Option<bool>>,
}

impl Born<'_> {
    /// Whether the file just made, held by `fd`, is already owned by `want`: its chown would
    /// change nothing (the mode and xattrs it would clear are set after it anyway).
    fn owned_by(&self, fd: BorrowedFd<'_>, want: (Uid, Gid)) -> Result<bool> {
        let Some(ids) = self.ids else {
            return Ok(false);
        };
        if (want.0.as_raw(), want.1.as_raw()) != ids {
            return Ok(false);
        }
        if let Some(ok) = self.checked.get() {
            return Ok(ok);
        }
        let st = stat_fd(fd).context("stat the new file")?;
        let ok = (st.st_uid, st.st_gid) == ids;
        self.checked.set(Some(ok));
        Ok(ok)
    }
}

impl Parent {
    fn new() -> Parent {
        Parent {
            held: None,
            ids: (
                nix::unistd::geteuid().as_raw(),
                nix::unistd::getegid().as_raw(),
            ),
            checked: std::cell::Cell::new(None),
        }
    }

    /// The directory `path` inside `root` (made if missing), as [`parent_dir`] resolves it,
    /// and the owner of what is made in it.
    fn enter(&mut self, root: BorrowedFd<'_>, path: &Path) -> Result<(BorrowedFd<'_>, Born<'_>)> {
        if !matches!(&self.held, Some((p, _, _)) if p == path) {
            self.leave()?;
            let fd = parent_dir(root, path)
                .with_context(|| format!("make parent directory {}", path.display()))?;
            let saved = stat_fd(fd.as_fd())
                .with_context(|| format!("stat parent directory {}", path.display()))?;
            self.held = Some((path.to_path_buf(), fd, saved));
        }
        match &self.held {
            Some((_, fd, saved)) => Ok((
                fd.as_fd(),
                Born {
                    ids: (saved.st_gid == self.ids.1).then_some(self.ids),
                    checked: &self.checked,
                },
            )),
            None => bail!("parent directory {} not open", path.display()),
        }
    }

    /// Put back the times of the directory held, and let it go.
    fn leave(&mut self) -> Result<()> {
        match self.held.take() {
            Some((path, fd, saved)) => restore_times(fd.as_fd(), &saved)
                .with_context(|| format!("parent directory {}", path.display())),
            None => Ok(()),
        }
    }
}

fn existing_of(dir: BorrowedFd<'_>, name: &OsStr) -> Result<Option<SFlag>> {
    match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(file_type(&st))),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(errno(e)).context("stat"),
    }
}

/// Put back the atime and mtime `saved` of the file held by `fd`.
fn restore_times(fd: BorrowedFd<'_>, saved: &nix::sys::stat::FileStat) -> Result<()> {
    let p = resolve::proc_fd_path(fd);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        p.as_c_str(),
        &TimeSpec::new(saved.st_atime, saved.st_atime_nsec),
        &TimeSpec::new(saved.st_mtime, saved.st_mtime_nsec),
        nix::sys::stat::UtimensatFlags::FollowSymlink,
    )
    .map_err(errno)
    .context("restore the parent directory's times")
}

/// Make `name` in `dir` (the entry `path`). Returns the type of what was in the way and removed.
#[allow(clippy::too_many_arguments)]
fn make_entry<R: Read>(
    root: BorrowedFd<'_>,
    entry: &mut tar::Entry<'_, R>,
    path: &Path,
    name: &OsStr,
    dir: BorrowedFd<'_>,
    born: Born<'_>,
    opts: ApplyOptions,
    made: &mut HashSet<PathBuf>,
    dir_times: &mut Vec<(PathBuf, TimeSpec)>,
) -> Result<Option<SFlag>> {
    let kind = entry.header().entry_type();
    let path = path.to_path_buf();
    use tar::EntryType as T;
    if kind == T::Link {
        let target_raw = entry
            .link_name_bytes()
            .context("hardlink without a target")?
            .into_owned();
        let target = clean(&target_raw).context("hardlink to the root directory")?;
        if target == path {
            return Ok(None);
        }
        let (tparent, tname) = (
            target.parent().unwrap_or(Path::new("")),
            target
                .file_name()
                .context("hardlink target without a name")?,
        );
        let tdir = resolve_dir(root, tparent)
            .with_context(|| format!("hardlink target {}", target.display()))?;
        let tst = fstatat(tdir.as_fd(), tname, AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(errno)
            .with_context(|| format!("hardlink target {}", target.display()))?;
        if file_type(&tst) == SFlag::S_IFDIR {
            bail!("hardlink to directory {}", target.display());
        }
        let ((), replaced) = make_new(dir, name, || {
            linkat(tdir.as_fd(), tname, dir, name, AtFlags::empty())
        })
        .with_context(|| format!("hardlink to {}", target.display()))?;
        mark_made(made, path);
        return Ok(replaced);
    }
    let meta = meta_of(entry)?;
    let replaced = match kind {
        T::Directory => {
            let mkdir = || mkdirat(dir, name, Mode::from_bits_truncate(0o700));
            let (replaced, new) = match mkdir() {
                Ok(()) => (None, true),
                Err(Errno::EEXIST) => match existing_of(dir, name)? {
                    // a directory stays, with what is in it: only its metadata changes
                    Some(SFlag::S_IFDIR) => (None, false),
                    other => {
                        remove_existing(dir, name, other)?;
                        mkdir().map_err(errno).context("mkdir")?;
                        (other, true)
                    }
                },
                Err(e) => return Err(errno(e)).context("mkdir"),
            };
            let fd = openat(
                dir,
                name,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(errno)
            .context("open directory")?;
            set_meta_fd(fd.as_fd(), &meta, opts, new.then_some(born))?;
            dir_times.push((path.clone(), meta.mtime));
            replaced
        }
        T::Regular | T::Continuous | T::GNUSparse => {
            let (fd, replaced) = make_new(dir, name, || {
                openat(
                    dir,
                    name,
                    OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_WRONLY
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )
            })
            .context("create")?;
            let mut f = File::from(fd);
            copy_contents(entry, &mut f).context("write contents")?;
            set_meta_fd(f.as_fd(), &meta, opts, Some(born))?;
            nix::sys::stat::futimens(&f, &meta.mtime, &meta.mtime)
                .map_err(errno)
                .context("set mtime")?;
            replaced
        }
        T::Symlink => {
            let target = entry
                .link_name_bytes()
                .context("symlink without a target")?
                .into_owned();
            // stored verbatim: every later lookup in the root resolves it in-root
            let ((), replaced) = make_new(dir, name, || {
                symlinkat(OsStr::from_bytes(&target), dir, name)
            })
            .context("symlink")?;
            if opts.same_owner {
                let (uid, gid) = owner(&meta, opts)?;
                fchownat(
                    dir,
                    name,
                    Some(uid),
                    Some(gid),
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .map_err(errno)
                .context("chown symlink")?;
            }
            nix::sys::stat::utimensat(
                dir,
                name,
                &meta.mtime,
                &meta.mtime,
                nix::sys::stat::UtimensatFlags::NoFollowSymlink,
            )
            .map_err(errno)
            .context("set symlink mtime")?;
            replaced
        }
        T::Char | T::Block | T::Fifo => {
            let h = entry.header();
            let sflag = match kind {
                T::Char => SFlag::S_IFCHR,
                T::Block => SFlag::S_IFBLK,
                _ => SFlag::S_IFIFO,
            };
            let dev = if kind == T::Fifo {
                0
            } else {
                let major = h.device_major().ok().flatten().unwrap_or(0);
                let minor = h.device_minor().ok().flatten().unwrap_or(0);
                nix::sys::stat::makedev(major.into(), minor.into())
            };
            if kind != T::Fifo && opts.mapped.is_some() {
                // no user namespace may make a device node: skipped, as containers/storage
                // skips it in a rootless unpack (the runtime binds /dev's devices anyway); what
                // was in the way goes, as for any entry
                let existing = existing_of(dir, name)?;
                remove_existing(dir, name, existing)?;
                crate::log_debug!("device {} skipped in the user namespace", path.display());
                return Ok(existing);
            }
            let ((), replaced) = make_new(dir, name, || {
                mknodat(dir, name, sflag, Mode::from_bits_truncate(0o600), dev)
            })
            .context("mknod")?;
            // O_PATH: opening a FIFO for reading would block, a device would be opened
            let fd = openat(
                dir,
                name,
                OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(errno)
            .context("open node")?;
            set_meta_path_fd(fd.as_fd(), &meta, opts)?;
            replaced
        }
        other => bail!("unsupported tar entry type {other:?}"),
    };
    mark_made(made, path);
    Ok(replaced)
}

/// Make a new `name` in `dir` with `make` (which fails with `EEXIST` when the name is taken):
/// tried first as is — in a fresh root nothing is in the way, and no stat is needed — then,
/// when something is, after removing it. Returns `make`'s value and the type of what was removed.
fn make_new<T>(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    mut make: impl FnMut() -> nix::Result<T>,
) -> Result<(T, Option<SFlag>)> {
    match make() {
        Err(Errno::EEXIST) => {}
        r => return Ok((r.map_err(errno)?, None)),
    }
    let existing = existing_of(dir, name)?;
    remove_existing(dir, name, existing)?;
    Ok((make().map_err(errno)?, existing))
}

/// A file's contents from its tar entry: through a 128 KiB buffer (a thread's own, reused),
/// not io::copy's 8 KiB, so a large file costs a sixteenth of the write calls and the layer's
/// decompressor gets larger reads.
fn copy_contents(src: &mut impl Read, dst: &mut File) -> io::Result<()> {
    use std::io::Write;
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; 128 << 10]);
    }
    BUF.with_borrow_mut(|buf| loop {
        let n = match src.read(buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        dst.write_all(&buf[..n])?;
    })
}

/// The directory `path` inside `root`, made if missing. Symlinks on the way are followed
/// in-root, dangling ones included: their in-root target is made (as containerd and umoci do,
/// so a layer writing through `/var/run -> /run` works before `/run` exists). The resolver's
/// openat2 path answers the common case; the walk below makes what is missing, one component
/// at a time with `O_NOFOLLOW` relative to fds it holds, `..` popping its own stack.
fn parent_dir(root: BorrowedFd<'_>, path: &Path) -> io::Result<OwnedFd> {
    match resolve_dir(root, path) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        other => return other,
    }
    let mut todo: Vec<std::ffi::OsString> = Vec::new();
    push_rev(&mut todo, path);
    let mut stack: Vec<OwnedFd> = Vec::new();
    let mut links = 0;
    while let Some(comp) = todo.pop() {
        if comp == ".." {
            stack.pop();
            continue;
        }
        let cur = stack.last().map(|f| f.as_fd()).unwrap_or(root);
        let open = |cur| {
            openat(
                cur,
                comp.as_os_str(),
                OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
        };
        let fd = match open(cur) {
            Err(Errno::ENOENT) => {
                match mkdirat(cur, comp.as_os_str(), Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(errno(e)),
                }
                open(cur).map_err(errno)?
            }
            r => r.map_err(errno)?,
        };
        let kind = file_type(&stat_fd(fd.as_fd())?);
        if kind == SFlag::S_IFLNK {
            links += 1;
            if links > 40 {
                return Err(errno(Errno::ELOOP));
            }
            let target = nix::fcntl::readlinkat(fd.as_fd(), c"").map_err(errno)?;
            if target.as_bytes().first() == Some(&b'/') {
                stack.clear();
            }
            push_rev(&mut todo, Path::new(&target));
            continue;
        }
        if kind != SFlag::S_IFDIR {
            return Err(errno(Errno::ENOTDIR));
        }
        stack.push(fd);
    }
    match stack.pop() {
        Some(fd) => Ok(fd),
        None => resolve::dup_path(root),
    }
}

fn push_rev(todo: &mut Vec<std::ffi::OsString>, path: &Path) {
    let start = todo.len();
    for c in path.components() {
        match c {
            Component::Normal(n) => todo.push(n.to_owned()),
            Component::ParentDir => todo.push("..".into()),
            _ => {}
        }
    }
    todo[start..].reverse();
}

/// Record that this layer made `path` (and so, the directories leading to it): an opaque
/// marker or whiteout later in the same layer must keep them.
fn mark_made(made: &mut HashSet<PathBuf>, path: PathBuf) {
    let mut p = path.parent();
    while let Some(a) = p.filter(|a| !a.as_os_str().is_empty()) {
        if !made.insert(a.to_path_buf()) {
            break;
        }
        p = a.parent();
    }
    made.insert(path);
}

/// The owner to apply: the archive's, which must be one the user namespace maps (if any).
fn owner(m: &Meta, opts: ApplyOptions) -> Result<(Uid, Gid)> {
    let (uid, gid) = (id32(m.uid, "uid")?, id32(m.gid, "gid")?);
    if let Some((uids, gids)) = opts.mapped {
        if !uids.has(uid) {
            bail!(
                "owner uid {uid} is not mapped for this user: only uids {} are (the user's own \
                 uid and its /etc/subuid ranges)",
                uids.describe()
            );
        }
        if !gids.has(gid) {
            bail!(
                "owner gid {gid} is not mapped for this user: only gids {} are (the user's own \
                 gid and its /etc/subgid ranges)",
                gids.describe()
            );
        }
    }
    Ok((Uid::from_raw(uid), Gid::from_raw(gid)))
}

fn id32(v: u64, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| anyhow::anyhow!("{what} {v} does not fit 32 bits"))
}

/// Remove whatever is at `name` in `dir` (a directory recursively) so a new entry can be made.
fn remove_existing(dir: BorrowedFd<'_>, name: &OsStr, existing: Option<SFlag>) -> Result<()> {
    match existing {
        None => Ok(()),
        Some(SFlag::S_IFDIR) => remove_all_at(dir, name).context("remove the directory in the way"),
        Some(_) => unlinkat(dir, name, UnlinkatFlags::NoRemoveDir)
            .map_err(errno)
            .context("remove the file in the way"),
    }
}

/// `rm -rf` of `name` in `dir`, by fds only (symlinks inside are removed, never followed).
pub fn remove_all_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let st = match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(errno(e)),
    };
    if file_type(&st) != SFlag::S_IFDIR {
        return unlinkat(dir, name, UnlinkatFlags::NoRemoveDir).map_err(errno);
    }
    let sub = openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno)?;
    for child in children(&sub)? {
        remove_all_at(sub.as_fd(), &child)?;
    }
    unlinkat(dir, name, UnlinkatFlags::RemoveDir).map_err(errno)
}

/// The names in directory `dir` (an fd opened for reading), without `.` and `..`.
pub fn children(dir: &OwnedFd) -> io::Result<Vec<std::ffi::OsString>> {
    let fd = read_dir_fd(dir.as_fd())?;
    let mut d = nix::dir::Dir::from_fd(fd).map_err(errno)?;
    let mut out = Vec::new();
    for e in d.iter() {
        let e = e.map_err(errno)?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            out.push(OsStr::from_bytes(n).to_owned());
        }
    }
    Ok(out)
}

/// A whiteout in a snapshot, in overlayfs's form: `.wh..wh..opq` marks the directory opaque
/// (its lower layers' entries are hidden, this layer's stay), `.wh.NAME` is a character device
/// 0/0 named NAME (unless this layer makes NAME itself: a whiteout only hides lower layers).
fn overlay_whiteout(
    root: BorrowedFd<'_>,
    parent: &Path,
    name: &[u8],
    made: &HashSet<PathBuf>,
) -> Result<()> {
    let dir = parent_dir(root, parent)
        .with_context(|| format!("make parent directory {}", parent.display()))?;
    let saved = stat_fd(dir.as_fd())?;
    if name == OPAQUE.as_bytes() {
        let fd = read_dir_fd(dir.as_fd())?;
        let key = c"trusted.overlay.opaque";
        // SAFETY: fsetxattr on an fd we own with a NUL-terminated name and a 1-byte value.
        let r =
            unsafe { libc::fsetxattr(fd.as_raw_fd(), key.as_ptr(), b"y".as_ptr().cast(), 1, 0) };
        if r != 0 {
            return Err(io::Error::last_os_error())
                .with_context(|| format!("opaque directory {}", parent.display()));
        }
        return restore_times(dir.as_fd(), &saved);
    }
    let hidden = &name[WHITEOUT.len()..];
    if hidden.is_empty() || hidden == b"." || hidden == b".." || hidden.contains(&b'/') {
        bail!("invalid whiteout name");
    }
    let hidden = OsStr::from_bytes(hidden);
    if made.contains(&parent.join(hidden)) {
        return Ok(());
    }
    if let Some(t) = existing_of(dir.as_fd(), hidden)? {
        remove_existing(dir.as_fd(), hidden, Some(t))?;
    }
    nix::sys::stat::mknodat(
        dir.as_fd(),
        hidden,
        SFlag::S_IFCHR,
        Mode::empty(),
        nix::sys::stat::makedev(0, 0),
    )
    .map_err(errno)
    .with_context(|| format!("whiteout of {}", parent.join(hidden).display()))?;
    restore_times(dir.as_fd(), &saved)
}

fn whiteout(
    root: BorrowedFd<'_>,
    parent: &Path,
    name: &[u8],
    made: &HashSet<PathBuf>,
) -> Result<()> {
    let dir = match resolve_dir(root, parent) {
        Ok(d) => d,
        // nothing below to hide
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("whiteout in {}", parent.display())),
    };
    let saved = stat_fd(dir.as_fd())?;
    hide(&dir, parent, name, made)?;
    restore_times(dir.as_fd(), &saved)
}

/// Everything under `dir` (at `path`) that this layer did not make goes: what is left is the
/// layer's own entries, whatever order they came in relative to the opaque marker.
fn keep_only_made(dir: BorrowedFd<'_>, path: &Path, made: &HashSet<PathBuf>) -> io::Result<()> {
    let rd = read_dir_fd(dir)?;
    for child in children(&rd)? {
        let p = path.join(&child);
        if !made.contains(&p) {
            remove_all_at(dir, &child)?;
            continue;
        }
        let st = fstatat(dir, child.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW).map_err(errno)?;
        if file_type(&st) == SFlag::S_IFDIR {
            let sub = openat(
                dir,
                child.as_os_str(),
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(errno)?;
            keep_only_made(sub.as_fd(), &p, made)?;
        }
    }
    Ok(())
}

fn hide(dir: &OwnedFd, parent: &Path, name: &[u8], made: &HashSet<PathBuf>) -> Result<()> {
    if name == OPAQUE.as_bytes() {
        return keep_only_made(dir.as_fd(), parent, made)
            .with_context(|| format!("opaque directory {}", parent.display()));
    }
    let hidden = &name[WHITEOUT.len()..];
    if hidden.is_empty() || hidden == b"." || hidden == b".." {
        bail!("invalid whiteout name");
    }
    let hidden = OsStr::from_bytes(hidden);
    if made.contains(&parent.join(hidden)) {
        return Ok(()); // a whiteout only hides lower layers
    }
    remove_all_at(dir.as_fd(), hidden)
        .with_context(|| format!("whiteout of {}", parent.join(hidden).display()))
}

/// Owner, mode and xattrs through an fd opened on the file itself (regular files, directories).
/// `born`: the file was just made, and by whom (its chown is left out when it changes nothing).
fn set_meta_fd(
    fd: BorrowedFd<'_>,
    m: &Meta,
    opts: ApplyOptions,
    born: Option<Born<'_>>,
) -> Result<()> {
    if opts.same_owner {
        let (uid, gid) = owner(m, opts)?;
        let unchanged = match born {
            Some(b) => b.owned_by(fd, (uid, gid))?,
            None => false,
        };
        if !unchanged {
            nix::unistd::fchown(fd, Some(uid), Some(gid))
                .map_err(errno)
                .context("chown")?;
        }
    }
    nix::sys::stat::fchmod(fd, Mode::from_bits_truncate(m.mode))
        .map_err(errno)
        .context("chmod")?;
    for (k, v) in &m.xattrs {
        // SAFETY: fd is open for the call's duration, k is NUL-terminated, v's pointer and
        // length describe a live buffer.
        let r =
            unsafe { libc::fsetxattr(fd.as_raw_fd(), k.as_ptr(), v.as_ptr().cast(), v.len(), 0) };
        xattr_result(r, k, opts)?;
    }
    Ok(())
}

/// The same for a node held by an `O_PATH` fd (devices, FIFOs), through `/proc/self/fd/N`.
fn set_meta_path_fd(fd: BorrowedFd<'_>, m: &Meta, opts: ApplyOptions) -> Result<()> {
    if opts.same_owner {
        let (uid, gid) = owner(m, opts)?;
        fchownat(fd, c"", Some(uid), Some(gid), AtFlags::AT_EMPTY_PATH)
            .map_err(errno)
            .context("chown")?;
    }
    let p = resolve::proc_fd_path(fd);
    nix::sys::stat::fchmodat(
        nix::fcntl::AT_FDCWD,
        p.as_c_str(),
        Mode::from_bits_truncate(m.mode),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .map_err(errno)
    .context("chmod")?;
    for (k, v) in &m.xattrs {
        // SAFETY: p and k are NUL-terminated, v's pointer and length describe a live buffer.
        let r = unsafe { libc::setxattr(p.as_ptr(), k.as_ptr(), v.as_ptr().cast(), v.len(), 0) };
        xattr_result(r, k, opts)?;
    }
    set_times(fd, m.mtime).context("set mtime")
}

fn xattr_result(r: libc::c_int, k: &CString, opts: ApplyOptions) -> Result<()> {
    if r == 0 {
        return Ok(());
    }
    let e = Errno::last();
    // unprivileged, security.* and trusted.* cannot be set: skipped, as tar does; root of a
    // user namespace sets user.* and security.capability (the kernel makes it a v3 xattr), but
    // not trusted.* or the LSMs' security.* (the host root's): skipped, as containers/storage
    // skips them in a rootless unpack
    let name = k.to_bytes();
    let host_only = !name.starts_with(b"user.") && name != b"security.capability";
    if e == Errno::EPERM && (!opts.same_owner || (opts.mapped.is_some() && host_only)) {
        return Ok(());
    }
    Err(errno(e)).with_context(|| format!("set xattr {k:?}"))
}

/// atime = mtime = `t`, via `/proc/self/fd/N` so O_PATH fds work too.
fn set_times(fd: BorrowedFd<'_>, t: TimeSpec) -> Result<()> {
    let p = resolve::proc_fd_path(fd);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        p.as_c_str(),
        &t,
        &t,
        nix::sys::stat::UtimensatFlags::FollowSymlink,
    )
    .map_err(errno)
    .context("utimensat")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    /// One ustar entry, written by hand so names like `../x` can be made (the tar crate's
    /// builder refuses them).
    pub fn entry(name: &str, kind: u8, link: &str, data: &[u8], mode: u32) -> Vec<u8> {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        let octal = |buf: &mut [u8], v: u64| {
            let s = format!("{:0w$o}\0", v, w = buf.len() - 1);
            buf.copy_from_slice(s.as_bytes());
        };
        octal(&mut h[100..108], mode as u64);
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        octal(&mut h[124..136], data.len() as u64);
        octal(&mut h[136..148], 1_600_000_000);
        h[156] = kind;
        h[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| b as u32).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
        let mut out = h.to_vec();
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
        out
    }

    /// Empty numeric fields (all NUL) read as 0, as Go's archive/tar reads them; a field that
    /// holds something else than a number is still an error naming it.
    #[test]
    fn empty_numeric_fields_are_zero() {
        let mut e = entry("f", b'0', "", b"x", 0o644);
        e[108..116].fill(0);
        e[116..124].fill(0);
        e[148..156].copy_from_slice(b"        ");
        let sum: u32 = e[..512].iter().map(|&b| b as u32).sum();
        e[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        let t = tar(&[e.clone()]);
        let mut a = tar::Archive::new(&t[..]);
        let mut en = a.entries().unwrap().next().unwrap().unwrap();
        let m = meta_of(&mut en).unwrap();
        assert_eq!((m.uid, m.gid, m.mode), (0, 0, 0o644));
        e[108..116].copy_from_slice(b"zz\0\0\0\0\0\0");
        e[148..156].copy_from_slice(b"        ");
        let sum: u32 = e[..512].iter().map(|&b| b as u32).sum();
        e[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        let t = tar(&[e]);
        let mut a = tar::Archive::new(&t[..]);
        let mut en = a.entries().unwrap().next().unwrap().unwrap();
        let err = meta_of(&mut en).err().expect("a uid of letters");
        assert!(format!("{err:#}").contains("uid field"), "{err:#}");
    }

    fn tar(entries: &[Vec<u8>]) -> Vec<u8> {
        let mut t: Vec<u8> = entries.concat();
        t.extend_from_slice(&[0u8; 1024]);
        t
    }

    struct Sandbox {
        t: tempfile::TempDir,
        root: PathBuf,
        fd: OwnedFd,
    }

    fn sandbox() -> Sandbox {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::fs::create_dir(t.path().join("host")).unwrap();
        std::fs::write(t.path().join("host/secret"), b"host").unwrap();
        let fd = resolve::open_root(&root).unwrap();
        Sandbox { t, root, fd }
    }

    impl Sandbox {
        fn apply(&self, entries: &[Vec<u8>]) -> Result<()> {
            apply(
                self.fd.as_fd(),
                &tar(entries)[..],
                ApplyOptions {
                    same_owner: false,
                    overlay: false,
                    mapped: None,
                },
                "test",
            )
        }
        /// Everything outside the root is as the sandbox made it.
        fn host_untouched(&self) {
            let mut names: Vec<String> = std::fs::read_dir(self.t.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            assert_eq!(names, ["host", "root"]);
            let host: Vec<_> = std::fs::read_dir(self.t.path().join("host"))
                .unwrap()
                .collect();
            assert_eq!(host.len(), 1);
            assert_eq!(
                std::fs::read(self.t.path().join("host/secret")).unwrap(),
                b"host"
            );
        }
    }

    const REG: u8 = b'0';
    const HARD: u8 = b'1';
    const SYM: u8 = b'2';
    const DIR: u8 = b'5';

    #[test]
    fn files_links_and_modes() {
        let s = sandbox();
        s.apply(&[
            entry("./", DIR, "", b"", 0o711),
            entry("./etc/", DIR, "", b"", 0o755),
            entry("./etc/passwd", REG, "", b"root:x:0:0::/:/bin/sh\n", 0o644),
            entry("./bin/tool", REG, "", b"#!/bin/sh\n", 0o4755),
            entry("./bin/alias", HARD, "bin/tool", b"", 0),
            entry("./bin/sh", SYM, "/bin/tool", b"", 0o777),
        ])
        .unwrap();
        let r = &s.root;
        assert_eq!(
            std::fs::read(r.join("etc/passwd")).unwrap(),
            b"root:x:0:0::/:/bin/sh\n"
        );
        let m = std::fs::metadata(r.join("bin/tool")).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o4755);
        assert_eq!(m.mtime(), 1_600_000_000);
        assert_eq!(m.nlink(), 2);
        assert_eq!(
            m.ino(),
            std::fs::metadata(r.join("bin/alias")).unwrap().ino()
        );
        assert_eq!(
            std::fs::read_link(r.join("bin/sh")).unwrap(),
            Path::new("/bin/tool")
        );
        assert_eq!(
            std::fs::metadata(r.join("etc")).unwrap().mtime(),
            1_600_000_000
        );
        s.host_untouched();
    }

    #[test]
    fn path_traversal_is_clamped() {
        let s = sandbox();
        s.apply(&[
            entry("../host/secret", REG, "", b"pwned", 0o644),
            entry("/../../host/new", REG, "", b"pwned", 0o644),
            entry("a/../../../x", REG, "", b"in", 0o644),
        ])
        .unwrap();
        assert_eq!(std::fs::read(s.root.join("host/secret")).unwrap(), b"pwned");
        assert!(s.root.join("host/new").is_file() && s.root.join("x").is_file());
        s.host_untouched();
    }

    #[test]
    fn symlink_escapes_stay_inside() {
        let s = sandbox();
        let host = s.t.path().join("host");
        let host = host.to_str().unwrap();
        s.apply(&[
            // absolute symlink to the host directory, then a write through it
            entry("abs", SYM, host, b"", 0o777),
            entry("abs/secret", REG, "", b"pwned", 0o644),
            // relative chain climbing out, then a write through it
            entry("d/up", SYM, "../../../../../../..", b"", 0o777),
            entry("d/chain", SYM, "up/tmp", b"", 0o777),
            entry("d/chain/dropped", REG, "", b"pwned", 0o644),
            // a symlink to a file outside, then the same name written as a file
            entry("f", SYM, &format!("{host}/secret"), b"", 0o777),
            entry("f", REG, "", b"replaced", 0o644),
        ])
        .unwrap();
        let r = &s.root;
        assert_eq!(
            std::fs::read(r.join(&host[1..]).join("secret")).unwrap(),
            b"pwned"
        );
        assert_eq!(std::fs::read(r.join("tmp/dropped")).unwrap(), b"pwned");
        assert_eq!(std::fs::read(r.join("f")).unwrap(), b"replaced");
        s.host_untouched();
    }

    #[test]
    fn directory_replaced_by_symlink_then_written_through() {
        let s = sandbox();
        let host = s.t.path().join("host");
        s.apply(&[
            entry("etc/", DIR, "", b"", 0o755),
            entry("etc/a", REG, "", b"1", 0o644),
        ])
        .unwrap();
        // a second layer turns etc into a symlink to the host and writes etc/secret
        s.apply(&[
            entry("etc", SYM, host.to_str().unwrap(), b"", 0o777),
            entry("etc/secret", REG, "", b"pwned", 0o644),
            entry("etc/sub/deeper", REG, "", b"pwned", 0o644),
        ])
        .unwrap();
        s.host_untouched();
        assert!(std::fs::symlink_metadata(s.root.join("etc"))
            .unwrap()
            .file_type()
            .is_symlink());
        let inside = s.root.join(host.strip_prefix("/").unwrap());
        assert_eq!(std::fs::read(inside.join("secret")).unwrap(), b"pwned");
        assert_eq!(std::fs::read(inside.join("sub/deeper")).unwrap(), b"pwned");
    }

    /// The kept parent fd is let go when an entry of the same directory replaces a directory or
    /// symlink the parent's own path went through: the next entry lands where a fresh in-root
    /// resolution puts it, never on the host.
    #[test]
    fn kept_parent_is_resolved_again_after_a_replacement() {
        let s = sandbox();
        let host = s.t.path().join("host");
        let host = host.to_str().unwrap();
        s.apply(&[
            entry("t/x/", DIR, "", b"", 0o755),
            // p resolves to t through t/x
            entry("p", SYM, "t/x/..", b"", 0o777),
            entry("p/a", REG, "", b"in t", 0o644),
            // t/x (a directory) becomes a symlink to the host's directory's child: p now
            // resolves to the host directory's in-root copy
            entry("p/x", SYM, &format!("{host}/sub"), b"", 0o777),
            entry("p/b", REG, "", b"pwned", 0o644),
            // a symlink replaced by another in the same directory as the written file
            entry("q/l", SYM, "/t", b"", 0o777),
            entry("q/l/c", REG, "", b"via l", 0o644),
            entry("q/l", SYM, host, b"", 0o777),
            entry("q/l/d", REG, "", b"pwned", 0o644),
        ])
        .unwrap();
        let r = &s.root;
        assert_eq!(std::fs::read(r.join("t/a")).unwrap(), b"in t");
        assert!(!r.join("t/b").exists());
        let inside = r.join(&host[1..]);
        assert_eq!(std::fs::read(inside.join("b")).unwrap(), b"pwned");
        assert_eq!(std::fs::read(r.join("t/c")).unwrap(), b"via l");
        assert_eq!(std::fs::read(inside.join("d")).unwrap(), b"pwned");
        s.host_untouched();
    }

    /// As root, a file whose archive owner is root's gets no chown of its own, but one made in a
    /// set-group-ID directory of another group (which would give it that group) does.
    #[test]
    fn owners_in_a_set_group_id_directory() {
        if !nix::unistd::geteuid().is_root() || nix::unistd::getegid().as_raw() != 0 {
            eprintln!("skipped: needs root");
            return;
        }
        let with_gid = |mut e: Vec<u8>, gid: u32| {
            e[116..124].copy_from_slice(format!("{gid:07o}\0").as_bytes());
            e[148..156].copy_from_slice(b"        ");
            let sum: u32 = e[..512].iter().map(|&b| b as u32).sum();
            e[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
            e
        };
        let s = sandbox();
        apply(
            s.fd.as_fd(),
            &tar(&[
                entry("plain/f", REG, "", b"x", 0o644),
                with_gid(entry("g/", DIR, "", b"", 0o2775), 42),
                entry("g/f", REG, "", b"x", 0o644),
                entry("g/d/", DIR, "", b"", 0o755),
                with_gid(entry("g/o", REG, "", b"x", 0o640), 43),
            ])[..],
            ApplyOptions {
                same_owner: true,
                overlay: false,
                mapped: None,
            },
            "test",
        )
        .unwrap();
        let ids = |p: &str| {
            let m = std::fs::symlink_metadata(s.root.join(p)).unwrap();
            (m.uid(), m.gid(), m.mode() & 0o7777)
        };
        assert_eq!(ids("plain/f"), (0, 0, 0o644));
        assert_eq!(ids("g"), (0, 42, 0o2775));
        assert_eq!(ids("g/f"), (0, 0, 0o644));
        assert_eq!(ids("g/d"), (0, 0, 0o755));
        assert_eq!(ids("g/o"), (0, 43, 0o640));
        s.host_untouched();
    }

    #[test]
    fn hardlink_escapes_are_refused() {
        let s = sandbox();
        let host = s.t.path().join("host/secret");
        // an absolute hardlink target is resolved inside the root: there is no such file
        let e = s
            .apply(&[entry("h", HARD, host.to_str().unwrap(), b"", 0)])
            .unwrap_err();
        assert!(format!("{e:#}").contains("hardlink target"), "{e:#}");
        // through a symlink that points out of the root: resolved in-root, still nothing
        let e = s
            .apply(&[
                entry(
                    "out",
                    SYM,
                    s.t.path().join("host").to_str().unwrap(),
                    b"",
                    0o777,
                ),
                entry("h2", HARD, "out/secret", b"", 0),
            ])
            .unwrap_err();
        assert!(format!("{e:#}").contains("hardlink target"), "{e:#}");
        assert_eq!(std::fs::metadata(&host).unwrap().nlink(), 1);
        // ../ in the target is clamped
        s.apply(&[
            entry("inside", REG, "", b"ok", 0o644),
            entry("h3", HARD, "../../inside", b"", 0),
        ])
        .unwrap();
        assert_eq!(std::fs::read(s.root.join("h3")).unwrap(), b"ok");
        s.host_untouched();
    }

    #[test]
    fn whiteouts_and_opaque_directories() {
        let s = sandbox();
        s.apply(&[
            entry("a/", DIR, "", b"", 0o755),
            entry("a/gone", REG, "", b"x", 0o644),
            entry("a/kept", REG, "", b"x", 0o644),
            entry("o/", DIR, "", b"", 0o755),
            entry("o/old", REG, "", b"x", 0o644),
            entry("o/sub/deep", REG, "", b"x", 0o644),
            entry("t/", DIR, "", b"", 0o755),
            entry("t/x", REG, "", b"x", 0o644),
        ])
        .unwrap();
        s.apply(&[
            // an opaque marker after this layer's own entries (in a directory this layer
            // only made implicitly) keeps them
            entry("o/sub/mine/f", REG, "", b"m", 0o644),
            entry("a/.wh.gone", REG, "", b"", 0o644),
            entry("o/", DIR, "", b"", 0o755),
            entry("o/new", REG, "", b"y", 0o644),
            entry("o/.wh..wh..opq", REG, "", b"", 0o644),
            entry(".wh.t", REG, "", b"", 0o644),
            entry("missing/.wh.nothing", REG, "", b"", 0o644),
        ])
        .unwrap();
        let r = &s.root;
        assert!(!r.join("a/gone").exists() && r.join("a/kept").exists());
        assert!(!r.join("a/.wh.gone").exists());
        assert!(!r.join("o/old").exists() && !r.join("o/sub/deep").exists());
        assert_eq!(std::fs::read(r.join("o/sub/mine/f")).unwrap(), b"m");
        assert_eq!(std::fs::read(r.join("o/new")).unwrap(), b"y");
        assert!(!r.join("o/.wh..wh..opq").exists());
        assert!(!r.join("t").exists() && !r.join("missing").exists());
        // a whiteout through a symlink to the host removes nothing on the host
        s.apply(&[
            entry(
                "l",
                SYM,
                s.t.path().join("host").to_str().unwrap(),
                b"",
                0o777,
            ),
            entry("l/.wh.secret", REG, "", b"", 0o644),
            entry("l/.wh..wh..opq", REG, "", b"", 0o644),
        ])
        .unwrap();
        s.host_untouched();
    }

    #[test]
    fn clean_names() {
        assert_eq!(clean(b"./a/b/"), Some(PathBuf::from("a/b")));
        assert_eq!(clean(b"/../a/../../b"), Some(PathBuf::from("b")));
        assert_eq!(clean(b"./"), None);
        assert_eq!(clean(b"../.."), None);
    }
}
