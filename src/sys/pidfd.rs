//! pidfds: race-free signalling and waiting for processes that are not our children.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// pidfd_open(2).
pub fn open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments; on success it returns a new fd we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a freshly returned, valid descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// pidfd_send_signal(2).
pub fn send_signal(fd: BorrowedFd, sig: i32) -> io::Result<()> {
    // SAFETY: plain syscall; a NULL siginfo is allowed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Wait until the process behind the pidfd has exited, at most `timeout_ms` (-1: forever).
/// Returns true if it exited.
pub fn wait_exit(fd: BorrowedFd, timeout_ms: i32) -> io::Result<bool> {
    // a pidfd polls readable once its process has exited
    super::fd::readable_within(fd, timeout_ms)
}
