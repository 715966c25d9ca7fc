//! Small safe wrappers for syscalls that nix lacks. `unsafe` lives here, each block with a
//! `// SAFETY:` line.

pub mod clone3;
pub mod fd;
pub mod mount_api;
pub mod netlink;
pub mod openat2;
pub mod pidfd;
pub mod procfs;
pub mod userns;

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

/// mountinfo escapes space, tab, newline and backslash as \ooo.
pub fn unescape_octal(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
