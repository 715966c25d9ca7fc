//! File-descriptor hygiene.

use std::io;

/// Mark every fd >= `from` close-on-exec (close_range with CLOSE_RANGE_CLOEXEC), so that the
/// container's program sees only stdio and the preserved fds (CVE-2024-21626).
pub fn cloexec_from(from: u32) -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range only changes fd flags of this process.
    let r = unsafe { libc::syscall(libc::SYS_close_range, from, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    if r == 0 {
        return Ok(());
    }
    // Old kernels: walk /proc/self/fd.
    let dir = std::fs::read_dir("/proc/self/fd")?;
    let fds: Vec<i32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd >= from as i32)
        .collect();
    for fd in fds {
        // SAFETY: setting FD_CLOEXEC on an fd number is harmless even if it was just closed.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(())
}

/// Clear close-on-exec on `fd` so that it survives exec (preserved fds, stdio).
pub fn clear_cloexec(fd: i32) -> io::Result<()> {
    // SAFETY: fcntl on an fd number; fails with EBADF if it is not open.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Wait until `fd` is readable (data, or the other end's close), at most `timeout_ms` (-1:
/// forever). Returns true if it is.
pub fn readable_within(fd: std::os::fd::BorrowedFd, timeout_ms: i32) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: pfd is a valid pollfd array of length 1.
        let r = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        return Ok(r > 0);
    }
}
