//! Path resolution scoped to the container rootfs.
//!
//! Every path from config.json is looked up relative to an `O_PATH` fd of the rootfs with
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`: `..` and absolute symlinks are clamped to
//! the rootfs as if it were `/`. On kernels without openat2 a user-space walk does the same, one
//! component at a time with `O_NOFOLLOW`, keeping its own stack of directory fds so `..` never
//! asks the kernel to leave the rootfs. Missing directories are made with mkdirat relative to the
//! fd of their parent, never through a host path string.

use crate::sys::openat2::{openat2, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS};
use nix::errno::Errno;
use nix::fcntl::{openat, readlinkat, OFlag};
use nix::sys::stat::{fstat, mkdirat, FileStat, Mode, SFlag};
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once openat2 answered ENOSYS: use the user-space walk from then on.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

const MAX_SYMLINKS: u32 = 40;

/// Make every later lookup of this process use the user-space walk, as on a kernel without
/// openat2 (for tests).
#[cfg(test)]
pub fn force_userspace_walk() {
    NO_OPENAT2.store(true, Ordering::Relaxed);
}

fn errno(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

fn cstr(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| errno(Errno::EINVAL))
}

/// `fstat` as io::Result.
pub fn stat_fd(fd: BorrowedFd<'_>) -> io::Result<FileStat> {
    fstat(fd).map_err(errno)
}

pub fn file_type(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

/// Open a host directory as the root of later lookups (`O_PATH | O_DIRECTORY | O_CLOEXEC`).
pub fn open_root(path: &Path) -> io::Result<OwnedFd> {
    openat(
        nix::fcntl::AT_FDCWD,
        path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno)
}

/// A new `O_PATH` fd for the same file as `fd`.
pub fn dup_path(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    openat(fd, c".", OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty()).map_err(errno)
}

/// Resolve `path` (absolute or relative, both taken relative to `root`) inside `root` and return
/// an `O_PATH` fd. With `follow_last == false` a final symlink is returned itself.
pub fn resolve(root: BorrowedFd<'_>, path: &Path, follow_last: bool) -> io::Result<OwnedFd> {
    resolve_as(root, path, follow_last, false)
}

/// [`resolve`] a directory (symlinks followed in-root): `ENOTDIR` for anything else.
pub fn resolve_dir(root: BorrowedFd<'_>, path: &Path) -> io::Result<OwnedFd> {
    resolve_as(root, path, true, true)
}

fn resolve_as(
    root: BorrowedFd<'_>,
    path: &Path,
    follow_last: bool,
    dir: bool,
) -> io::Result<OwnedFd> {
    if !NO_OPENAT2.load(Ordering::Relaxed) {
        let mut flags = libc::O_PATH;
        if !follow_last {
            flags |= libc::O_NOFOLLOW;
        }
        if dir {
            flags |= libc::O_DIRECTORY;
        }
        let rel = path.strip_prefix("/").unwrap_or(path);
        let c = if rel.as_os_str().is_empty() {
            CString::from(c".")
        } else {
            cstr(rel)?
        };
        match openat2(root, &c, flags, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) {
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                NO_OPENAT2.store(true, Ordering::Relaxed)
            }
            other => return other,
        }
    }
    let fd = resolve_walk(root, path, follow_last)?;
    if dir {
        ensure_dir(fd)
    } else {
        Ok(fd)
    }
}

/// The user-space equivalent of `RESOLVE_IN_ROOT`, for kernels without openat2. Each component
/// is opened with `O_PATH | O_NOFOLLOW`; symlinks are read and their targets spliced into the
/// remaining path (absolute ones restart at `root`); `..` pops our own stack of fds and stops at
/// `root`, so the kernel is never asked to walk above it.
pub fn resolve_walk(root: BorrowedFd<'_>, path: &Path, follow_last: bool) -> io::Result<OwnedFd> {
    let mut todo: Vec<OsString> = Vec::new(); // reversed: the next component is last
    push_components(&mut todo, path);
    let mut stack: Vec<OwnedFd> = Vec::new(); // empty = at root
    let mut links = 0;
    while let Some(comp) = todo.pop() {
        if comp == ".." {
            stack.pop();
            continue;
        }
        let cur = stack.last().map(|f| f.as_fd()).unwrap_or(root);
        let fd = openat(
            cur,
            comp.as_os_str(),
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno)?;
        let kind = file_type(&stat_fd(fd.as_fd())?);
        if kind == SFlag::S_IFLNK && (follow_last || !todo.is_empty()) {
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(errno(Errno::ELOOP));
            }
            let target = readlinkat(fd.as_fd(), c"").map_err(errno)?;
            if target.as_bytes().first() == Some(&b'/') {
                stack.clear();
            }
            push_components(&mut todo, Path::new(&target));
            continue;
        }
        if !todo.is_empty() && kind != SFlag::S_IFDIR {
            return Err(errno(Errno::ENOTDIR));
        }
        stack.push(fd);
    }
    match stack.pop() {
        Some(fd) => Ok(fd),
        None => dup_path(root),
    }
}

fn push_components(todo: &mut Vec<OsString>, path: &Path) {
    let start = todo.len();
    for c in path.components() {
        match c {
            Component::Normal(n) => todo.push(n.to_owned()),
            Component::ParentDir => todo.push(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    todo[start..].reverse();
}

fn ensure_dir(fd: OwnedFd) -> io::Result<OwnedFd> {
    if file_type(&stat_fd(fd.as_fd())?) != SFlag::S_IFDIR {
        return Err(errno(Errno::ENOTDIR));
    }
    Ok(fd)
}

/// Make (or open) the directory `name` right under `parent`: for a directory we just made
/// ourselves, where no lookup is needed.
pub fn mkdir_child(parent: BorrowedFd<'_>, name: &OsStr, mode: Mode) -> io::Result<OwnedFd> {
    mkdir_one(parent, name, mode)
}

/// mkdirat + re-open with `O_NOFOLLOW | O_DIRECTORY`: if something swapped a symlink in between,
/// the open fails instead of following it.
fn mkdir_one(parent: BorrowedFd<'_>, name: &OsStr, mode: Mode) -> io::Result<OwnedFd> {
    match mkdirat(parent, name, mode) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(errno(e)),
    }
    openat(
        parent,
        name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| match e {
        // a dangling symlink (or a non-directory) sits where the directory has to go
        Errno::ELOOP => errno(Errno::ENOTDIR),
        e => errno(e),
    })
}

/// Make sure directory `path` exists inside `root` (creating missing components with `mode`)
/// and return an `O_PATH` fd of it. Symlinks on the way are followed inside `root` only.
pub fn mkdir_all(root: BorrowedFd<'_>, path: &Path, mode: Mode) -> io::Result<OwnedFd> {
    match resolve_dir(root, path) {
        Ok(fd) => return Ok(fd),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => return Err(e),
    }
    // Common case: only the last component is missing.
    let (parent, name) = split_last(path);
    if let Some(name) = name {
        if parent
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::CurDir))
        {
            return mkdir_one(root, name, mode);
        }
        match resolve_dir(root, parent) {
            Ok(p) => return mkdir_one(p.as_fd(), name, mode),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
    }
    // General case: find the longest existing prefix, then create the rest one by one.
    let mut cur = dup_path(root)?;
    let mut prefix = PathBuf::new();
    let mut creating = false;
    for c in path.components() {
        match c {
            Component::Normal(n) => {
                prefix.push(n);
                if !creating {
                    match resolve_dir(root, &prefix) {
                        Ok(fd) => {
                            cur = fd;
                            continue;
                        }
                        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => creating = true,
                        Err(e) => return Err(e),
                    }
                }
                cur = mkdir_one(cur.as_fd(), n, mode)?;
            }
            Component::ParentDir => {
                prefix.push("..");
                cur = resolve_dir(root, &prefix)?;
            }
            _ => {}
        }
    }
    Ok(cur)
}

/// Split off the last normal component (`None` for `/`, `.`, or a path ending in `..`).
pub fn split_last(path: &Path) -> (&Path, Option<&OsStr>) {
    match path.components().next_back() {
        Some(Component::Normal(n)) => (path.parent().unwrap_or(Path::new("/")), Some(n)),
        _ => (path, None),
    }
}

/// Make sure `path` exists inside `root` as a non-directory: an existing file (symlinks followed
/// in-root) is kept, a missing one is created empty with `O_CREAT | O_EXCL | O_NOFOLLOW` in its
/// parent (made with [`mkdir_all`]). Returns an `O_PATH` fd.
pub fn create_file(root: BorrowedFd<'_>, path: &Path, mode: Mode) -> io::Result<OwnedFd> {
    match resolve(root, path, true) {
        Ok(fd) => return Ok(fd),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => return Err(e),
    }
    let (parent, name) = split_last(path);
    let name = name.ok_or_else(|| errno(Errno::EISDIR))?;
    let dir = mkdir_all(root, parent, Mode::from_bits_truncate(0o755))?;
    let made = openat(
        dir.as_fd(),
        name,
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        mode,
    );
    match made {
        Ok(_) => {}
        // a dangling symlink is in the way: refuse rather than create its target
        Err(Errno::EEXIST) => return Err(errno(Errno::ELOOP)),
        Err(e) => return Err(errno(e)),
    }
    openat(
        dir.as_fd(),
        name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno)
}

/// `/proc/self/fd/N` for `fd`, to hand a resolved file to path-based syscalls (mount(2)).
pub fn proc_fd_path(fd: BorrowedFd<'_>) -> CString {
    let mut s = String::with_capacity(24);
    s.push_str("/proc/self/fd/");
    s.push_str(&fd.as_raw_fd().to_string());
    CString::new(s).expect("no NUL in a number")
}

/// The path the kernel reports for `fd` (readlink of `/proc/self/fd/N`).
pub fn fd_path(fd: BorrowedFd<'_>) -> io::Result<PathBuf> {
    std::fs::read_link(OsStr::from_bytes(proc_fd_path(fd).as_bytes()))
}

/// Re-check after the fact that `fd` lies at or under `root_path`.
pub fn check_within(fd: BorrowedFd<'_>, root_path: &Path) -> io::Result<PathBuf> {
    let p = fd_path(fd)?;
    if p.starts_with(root_path) {
        Ok(p)
    } else {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "resolved to {} which is outside {}",
                p.display(),
                root_path.display()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    type Resolver = fn(BorrowedFd<'_>, &Path, bool) -> io::Result<OwnedFd>;
    const BOTH: [(&str, Resolver); 2] = [("openat2", resolve), ("walk", resolve_walk)];

    fn tree() -> (tempfile::TempDir, PathBuf, OwnedFd) {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/file"), b"x").unwrap();
        std::fs::write(t.path().join("outside"), b"host").unwrap();
        symlink("/", root.join("to_slash")).unwrap();
        symlink("../../../../../../..", root.join("a/up")).unwrap();
        symlink("/a/b", root.join("abs_ab")).unwrap();
        symlink("b", root.join("a/rel_b")).unwrap();
        symlink("../outside", root.join("a/../escape")).unwrap();
        symlink("loop2", root.join("loop1")).unwrap();
        symlink("loop1", root.join("loop2")).unwrap();
        symlink("/proc/self/root", root.join("magic")).unwrap();
        let fd = open_root(&root).unwrap();
        let root = root.canonicalize().unwrap();
        (t, root, fd)
    }

    #[test]
    fn resolution_is_clamped_to_root() {
        let (_t, root, fd) = tree();
        for (name, r) in BOTH {
            let at = |p: &str| fd_path(r(fd.as_fd(), Path::new(p), true).unwrap().as_fd()).unwrap();
            assert_eq!(at("/to_slash"), root, "{name}");
            assert_eq!(at("a/up"), root, "{name}");
            assert_eq!(at("/../../.."), root, "{name}");
            assert_eq!(at("/to_slash/a/up/a/b"), root.join("a/b"), "{name}");
            assert_eq!(at("abs_ab/../file"), root.join("a/file"), "{name}");
            assert_eq!(at("a/rel_b"), root.join("a/b"), "{name}");
            assert_eq!(at("/"), root, "{name}");
            // ../outside from the root is clamped to root/outside, which does not exist
            let e = r(fd.as_fd(), Path::new("escape"), true).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::ENOENT), "{name}");
            let e = r(fd.as_fd(), Path::new("loop1"), true).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{name}");
            let e = r(fd.as_fd(), Path::new("a/file/x"), true).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::ENOTDIR), "{name}");
            // no-follow returns the link itself
            let l = r(fd.as_fd(), Path::new("/to_slash"), false).unwrap();
            assert_eq!(
                file_type(&stat_fd(l.as_fd()).unwrap()),
                SFlag::S_IFLNK,
                "{name}"
            );
            // /proc/self/root is resolved in the root, not as the magic link
            assert!(r(fd.as_fd(), Path::new("magic"), true).is_err(), "{name}");
        }
    }

    #[test]
    fn mkdir_all_stays_inside() {
        let (t, root, fd) = tree();
        // through a symlink to / and a chain of ..
        let d = mkdir_all(
            fd.as_fd(),
            Path::new("/to_slash/new/x/../y"),
            Mode::from_bits_truncate(0o755),
        )
        .unwrap();
        assert_eq!(fd_path(d.as_fd()).unwrap(), root.join("new/y"));
        assert!(root.join("new/x").is_dir());
        let d = mkdir_all(
            fd.as_fd(),
            Path::new("a/up/tmp/hostdir"),
            Mode::from_bits_truncate(0o755),
        )
        .unwrap();
        assert_eq!(fd_path(d.as_fd()).unwrap(), root.join("tmp/hostdir"));
        // only the last component missing
        let d = mkdir_all(
            fd.as_fd(),
            Path::new("abs_ab/c"),
            Mode::from_bits_truncate(0o700),
        )
        .unwrap();
        assert_eq!(fd_path(d.as_fd()).unwrap(), root.join("a/b/c"));
        // existing file in the way
        let e = mkdir_all(
            fd.as_fd(),
            Path::new("a/file/z"),
            Mode::from_bits_truncate(0o755),
        );
        assert_eq!(e.unwrap_err().raw_os_error(), Some(libc::ENOTDIR));
        // dangling symlink in the way: nothing is created at its target
        symlink("/nowhere/deep", root.join("dangling")).unwrap();
        assert!(mkdir_all(
            fd.as_fd(),
            Path::new("dangling/sub"),
            Mode::from_bits_truncate(0o755)
        )
        .is_err());
        assert!(!root.join("nowhere").exists());
        assert!(!t.path().join("tmp").exists() && !t.path().join("new").exists());
    }

    #[test]
    fn create_file_stays_inside() {
        let (t, root, fd) = tree();
        let f = create_file(
            fd.as_fd(),
            Path::new("/a/up/etc/hosts"),
            Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        assert_eq!(fd_path(f.as_fd()).unwrap(), root.join("etc/hosts"));
        assert!(root.join("etc/hosts").is_file());
        // an existing file is returned as is
        let f = create_file(
            fd.as_fd(),
            Path::new("a/file"),
            Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        assert_eq!(fd_path(f.as_fd()).unwrap(), root.join("a/file"));
        // a dangling symlink to the host is refused, its target not created
        symlink(t.path().join("made_on_host"), root.join("dl")).unwrap();
        assert!(create_file(fd.as_fd(), Path::new("dl"), Mode::from_bits_truncate(0o644)).is_err());
        assert!(!t.path().join("made_on_host").exists());
    }

    #[test]
    fn check_within_and_split() {
        let (t, root, fd) = tree();
        let f = resolve(fd.as_fd(), Path::new("a"), true).unwrap();
        assert!(check_within(f.as_fd(), &root).is_ok());
        let outside = open_root(t.path()).unwrap();
        assert!(check_within(outside.as_fd(), &root).is_err());
        assert_eq!(
            split_last(Path::new("/a/b")),
            (Path::new("/a"), Some(OsStr::new("b")))
        );
        assert_eq!(split_last(Path::new("/")).1, None);
        assert_eq!(split_last(Path::new("/a/..")).1, None);
    }
}
