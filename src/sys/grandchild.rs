//! Work left to a grandchild: husk goes on at once, the slow part ends apart from it.

use std::os::fd::RawFd;

/// Run `f` in a grandchild that holds no descriptor but `keep`, and `_exit(0)` there. The
/// child between only forks and exits; it is reaped here before this returns, so the caller
/// never waits for `f`. The grandchild, an orphan, is reaped by init or the subreaper. The
/// caller's own copies of `keep` stay open in it: closing them (when they are the ends of a
/// pipe or socket the grandchild waits on) is its part. Errors: EBADF for a negative fd in
/// `keep`, or the fork of the child between (nothing then runs). A failure of the second fork
/// is silent: `f` does not run.
///
/// # Safety
/// husk is multi-threaded here, so after fork only async-signal-safe calls are sound: `f` must
/// make nothing else (no allocation, no lock, no panic) and touch only memory prepared before
/// the call. The descriptors `f` uses must be in `keep`; every other is closed before it runs.
pub unsafe fn keeping(keep: &[RawFd], f: impl FnOnce()) -> nix::Result<()> {
    if keep.iter().any(|&fd| fd < 0) {
        return Err(nix::errno::Errno::EBADF);
    }
    // sorted before the fork: the grandchild closes the gaps between them, allocating nothing
    let mut kept: Vec<libc::c_uint> = keep.iter().map(|&fd| fd as libc::c_uint).collect();
    kept.sort_unstable();
    // SAFETY: the child and the grandchild make only async-signal-safe calls (raw fork,
    // close_range, what the caller vouches for in `f`, _exit) on memory prepared before.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Child => {
            // SAFETY: as above; `kept` is read in place.
            unsafe {
                if libc::fork() == 0 {
                    let mut from: libc::c_uint = 0;
                    for &fd in &kept {
                        if fd > from {
                            libc::syscall(libc::SYS_close_range, from, fd - 1, 0);
                        }
                        from = fd + 1;
                    }
                    libc::syscall(libc::SYS_close_range, from, libc::c_uint::MAX, 0);
                    f();
                }
                libc::_exit(0);
            }
        }
        nix::unistd::ForkResult::Parent { child } => {
            let _ = nix::sys::wait::waitpid(child, None);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fd::readable_within;
    use std::io::Read;
    use std::os::fd::{AsFd, AsRawFd};

    /// The grandchild holds only the descriptors kept (here the read end of a pipe it blocks
    /// on and the write end of one it answers on), and `keeping` returns while it still waits.
    #[test]
    fn only_the_kept_descriptors_stay_and_the_caller_does_not_wait() {
        use nix::fcntl::OFlag;
        let (hold_r, hold_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        let (ans_r, ans_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        let (other_r, other_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        let (hr, aw) = (hold_r.as_raw_fd(), ans_w.as_raw_fd());
        let others = [
            hold_w.as_raw_fd(),
            ans_r.as_raw_fd(),
            other_r.as_raw_fd(),
            other_w.as_raw_fd(),
        ];
        // SAFETY: the closure makes only read, fcntl and write calls on the stack.
        unsafe {
            keeping(&[aw, hr], || {
                let mut b = 0u8;
                // until EOF: the test's end of the pipe closed
                while libc::read(hr, (&mut b as *mut u8).cast(), 1) < 0
                    && *libc::__errno_location() == libc::EINTR
                {}
                let mut answer = [b'k', b'k', b'c', b'c', b'c', b'c'];
                for (i, fd) in [hr, aw].into_iter().enumerate() {
                    if libc::fcntl(fd, libc::F_GETFD) < 0 {
                        answer[i] = b'C';
                    }
                }
                for (i, fd) in others.into_iter().enumerate() {
                    if libc::fcntl(fd, libc::F_GETFD) >= 0 {
                        answer[2 + i] = b'O';
                    }
                }
                libc::write(aw, answer.as_ptr().cast(), answer.len());
            })
        }
        .unwrap();
        drop(ans_w);
        // the grandchild waits for EOF on the pipe, so it has not answered yet
        assert!(!readable_within(ans_r.as_fd(), 0).unwrap());
        drop(hold_w);
        assert!(
            readable_within(ans_r.as_fd(), 10_000).unwrap(),
            "no answer in 10 s: the grandchild still holds the test's end of the pipe"
        );
        let mut answer = String::new();
        std::fs::File::from(ans_r)
            .read_to_string(&mut answer)
            .unwrap();
        assert_eq!(
            answer, "kkcccc",
            "k: kept open, c: closed (C, O: the other way)"
        );
        drop((hold_r, other_r, other_w));
    }
}
