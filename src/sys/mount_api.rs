//! The new mount API (Linux 5.2+, mount_setattr 5.12+): open_tree, move_mount, mount_setattr.
//!
//! Working on mount fds instead of paths means a mount can be built detached, given its flags,
//! and only then attached onto an fd that was resolved safely inside the container rootfs.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

pub use libc::{
    MOUNT_ATTR_IDMAP, MOUNT_ATTR_NOATIME, MOUNT_ATTR_NODEV, MOUNT_ATTR_NODIRATIME,
    MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NOSYMFOLLOW, MOUNT_ATTR_RDONLY,
    MOUNT_ATTR_RELATIME, MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME,
};

const EMPTY: &CStr = c"";

fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `open_tree(fd, "", OPEN_TREE_CLONE | AT_EMPTY_PATH [| AT_RECURSIVE])`: a detached copy of the
/// mount at `fd` (a bind mount not attached anywhere yet).
pub fn clone_tree(fd: BorrowedFd<'_>, recursive: bool) -> io::Result<OwnedFd> {
    super::enosys_if_forced("mount_api")?;
    let mut flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC | libc::AT_EMPTY_PATH as u32;
    if recursive {
        flags |= libc::AT_RECURSIVE as u32;
    }
    // SAFETY: EMPTY is a valid NUL-terminated string; `fd` is live for the borrow; the flags are
    // plain integers. The syscall returns a new fd that we then own.
    let ret = check(unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            fd.as_raw_fd(),
            EMPTY.as_ptr(),
            flags as libc::c_uint,
        )
    })?;
    // SAFETY: a successful open_tree returns a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as libc::c_int) })
}

/// `move_mount(from, "", to, "", F_EMPTY_PATH | T_EMPTY_PATH)`: attach the mount `from` on top of
/// whatever `to` refers to (no path walk at all).
pub fn move_mount_fd(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> io::Result<()> {
    super::enosys_if_forced("mount_api")?;
    let flags = libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH;
    // SAFETY: both fds are live for the borrow, both paths are the valid empty C string, flags
    // are plain integers; nothing is retained by the kernel.
    check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            EMPTY.as_ptr(),
            to.as_raw_fd(),
            EMPTY.as_ptr(),
            flags as libc::c_uint,
        )
    })?;
    Ok(())
}

/// Mount attributes to change with [`mount_setattr`]. `propagation` is one of MS_SHARED,
/// MS_SLAVE, MS_PRIVATE, MS_UNBINDABLE or 0 for "unchanged".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MountAttr {
    pub set: u64,
    pub clr: u64,
    pub propagation: u64,
}

impl MountAttr {
    pub fn is_empty(&self) -> bool {
        self.set == 0 && self.clr == 0 && self.propagation == 0
    }
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH [| AT_RECURSIVE], attr)`. Only the bits named in `set`
/// and `clr` change, so flags the kernel locked (in a user namespace) are kept as they are.
pub fn mount_setattr(fd: BorrowedFd<'_>, recursive: bool, attr: MountAttr) -> io::Result<()> {
    setattr_raw(
        fd,
        recursive,
        libc::mount_attr {
            attr_set: attr.set,
            attr_clr: attr.clr,
            propagation: attr.propagation,
            userns_fd: 0,
        },
    )
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH [| AT_RECURSIVE], {MOUNT_ATTR_IDMAP, userns})`: make the
/// detached mount `fd` (and, `recursive`, its submounts) id-mapped with the maps of `userns`.
pub fn set_idmap(fd: BorrowedFd<'_>, recursive: bool, userns: BorrowedFd<'_>) -> io::Result<()> {
    setattr_raw(
        fd,
        recursive,
        libc::mount_attr {
            attr_set: MOUNT_ATTR_IDMAP,
            attr_clr: 0,
            propagation: 0,
            userns_fd: userns.as_raw_fd() as u64,
        },
    )
}

/// The mount_setattr(2) call itself; any fd named in `raw` must be live for the call.
fn setattr_raw(fd: BorrowedFd<'_>, recursive: bool, raw: libc::mount_attr) -> io::Result<()> {
    super::enosys_if_forced("mount_api")?;
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: `raw` is a valid mount_attr that outlives the call, its exact size is passed;
    // EMPTY is a valid C string and `fd` is live for the borrow (the callers' userns fd too).
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            EMPTY.as_ptr(),
            flags,
            &raw as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    })?;
    Ok(())
}

/// A new, detached filesystem instance: `fsopen(fstype)`, `fsconfig(CMD_CREATE)`,
/// `fsmount(attr)`. The result is attached with [`move_mount_fd`]; no path (and so no /proc) is
/// involved.
pub fn new_detached_fs(fstype: &CStr, attr: u64) -> io::Result<OwnedFd> {
    super::enosys_if_forced("mount_api")?;
    // SAFETY: fstype is a valid C string for the call; returns a new fd or -1.
    let fs = check(unsafe {
        libc::syscall(
            libc::SYS_fsopen,
            fstype.as_ptr(),
            libc::FSOPEN_CLOEXEC as libc::c_uint,
        )
    })?;
    // SAFETY: a successful fsopen returns a descriptor nobody else owns.
    let fs = unsafe { OwnedFd::from_raw_fd(fs as libc::c_int) };
    // SAFETY: FSCONFIG_CMD_CREATE takes no key/value: null pointers and aux 0 are what the
    // kernel expects; `fs` is live.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            libc::FSCONFIG_CMD_CREATE as libc::c_uint,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0 as libc::c_int,
        )
    })?;
    // SAFETY: `fs` is a live fs context fd; flags and attributes are plain integers.
    let mnt = check(unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            libc::FSMOUNT_CLOEXEC as libc::c_uint,
            attr as libc::c_uint,
        )
    })?;
    // SAFETY: a successful fsmount returns a descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(mnt as libc::c_int) })
}
