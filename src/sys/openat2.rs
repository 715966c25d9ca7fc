//! openat2(2): path resolution with kernel-enforced scoping (`RESOLVE_IN_ROOT` and friends).
//!
//! Only the raw syscall lives here; the in-root walker that falls back to a component-by-component
//! walk on kernels without openat2 is `crate::rootfs::resolve`.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Resolve like a chroot to `dirfd`: `..` and absolute symlinks are clamped to it.
pub const RESOLVE_IN_ROOT: u64 = libc::RESOLVE_IN_ROOT;
/// Refuse /proc "magic links" (`/proc/self/fd/N`, `/proc/self/exe`, ...).
pub const RESOLVE_NO_MAGICLINKS: u64 = libc::RESOLVE_NO_MAGICLINKS;

/// `openat2(dirfd, path, {flags, mode, resolve})`. `O_CLOEXEC` is always added.
///
/// The kernel answers `EAGAIN` with `RESOLVE_IN_ROOT` when a concurrent rename or mount could have
/// let the walk escape; that is retried a bounded number of times before it is returned.
/// `ENOSYS` (kernel < 5.6, or a seccomp filter) is returned as is for the caller to fall back.
pub fn openat2(
    dirfd: BorrowedFd<'_>,
    path: &CStr,
    flags: libc::c_int,
    mode: libc::mode_t,
    resolve: u64,
) -> io::Result<OwnedFd> {
    // SAFETY: open_how is a plain C struct of three u64; all-zero is a valid value (it is
    // #[non_exhaustive] in libc so it cannot be built with a literal).
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.mode = if flags & (libc::O_CREAT | libc::O_TMPFILE) != 0 {
        u64::from(mode)
    } else {
        0
    };
    how.resolve = resolve;
    let mut tries = 0;
    loop {
        // SAFETY: `path` is a valid NUL-terminated string and `how` a valid open_how that both
        // outlive the call; the size passed is the size of that struct; `dirfd` is a live fd for
        // the duration of the borrow. The kernel does not keep either pointer.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dirfd.as_raw_fd(),
                path.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if ret >= 0 {
            // SAFETY: on success openat2 returns a new file descriptor that nothing else owns.
            return Ok(unsafe { OwnedFd::from_raw_fd(ret as libc::c_int) });
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EAGAIN) && tries < 32 {
            tries += 1;
            continue;
        }
        if err.raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        return Err(err);
    }
}
