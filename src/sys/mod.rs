//! Small safe wrappers for syscalls that nix lacks. `unsafe` lives here, each block with a
//! `// SAFETY:` line.

pub mod clone3;
pub mod fd;
pub mod mount_api;
pub mod openat2;
pub mod pidfd;
pub mod procfs;

use std::os::fd::{AsRawFd, BorrowedFd};

/// ioctl(NS_GET_NSTYPE): the CLONE_NEW* type of a namespace fd.
pub fn ns_get_type(fd: BorrowedFd) -> std::io::Result<libc::c_int> {
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
    // SAFETY: NS_GET_NSTYPE takes no argument and only reads the fd.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE as _) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(r)
}
