//! Files the network companion replaces or removes are let go of after husk has exited.
//!
//! Freeing a file's blocks happens in the syscall that drops the inode's last reference (the
//! `rename` over a record, the `unlink` of an address file), and on a file system mounted with
//! `discard` without a journal (ext4 here, where the run dir is not a tmpfs) that syscall waits
//! for the device to discard them: 0.2-6 ms each, several per attach and detach. [`hold`]
//! opens the file just before and hands the descriptor to a grandchild (started on first use,
//! holding nothing but its end of a socket pair and the descriptors it is given); the inode
//! then outlives its name until the grandchild exits, at EOF on the socket pair: when the
//! operation's [`Scope`] ends (attach, detach, gc, a deleted container's release) or husk
//! exits, so a long-lived husk (`husk up`) holds nothing between operations. The names change
//! at once, as before; only the freeing moves out of husk. Nothing is held when the grandchild
//! cannot be started: the freeing then happens here, waiting.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::Mutex;

/// husk's end of the socket pair (None: not started, or it could not be).
static KEEPER: Mutex<Option<Option<OwnedFd>>> = Mutex::new(None);

/// While it lives, files given to [`hold`] are kept; its end lets the keeper go.
pub struct Scope;

impl Drop for Scope {
    fn drop(&mut self) {
        let mut k = KEEPER.lock().unwrap_or_else(|e| e.into_inner());
        *k = None;
    }
}

/// Keep `path`'s inode (when there is one) alive until the operation's [`Scope`] ends.
pub fn hold(path: &Path) {
    let Ok(f) = std::fs::File::open(path) else {
        return;
    };
    let mut k = KEEPER.lock().unwrap_or_else(|e| e.into_inner());
    let end = k.get_or_insert_with(|| start().ok());
    if let Some(end) = end {
        if send_fd(end.as_raw_fd(), f.as_raw_fd()).is_err() {
            *k = Some(None);
        }
    }
}

fn send_fd(sock: RawFd, fd: RawFd) -> nix::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let fds = [fd];
    let iov = [std::io::IoSlice::new(&[0u8])];
    sendmsg::<()>(
        sock,
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map(drop)
}

/// Start the grandchild; returns husk's end of the socket pair.
fn start() -> nix::Result<OwnedFd> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    let (mine, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    let t = theirs.as_raw_fd();
    // SAFETY: the grandchild only calls recvmsg on the socket it keeps, every buffer on its
    // stack.
    unsafe {
        crate::sys::grandchild::keeping(&[t], || {
            let mut byte = 0u8;
            let mut ctl = [0u64; 8];
            loop {
                let mut iov = libc::iovec {
                    iov_base: (&mut byte as *mut u8).cast(),
                    iov_len: 1,
                };
                let mut msg: libc::msghdr = std::mem::zeroed();
                msg.msg_iov = &mut iov;
                msg.msg_iovlen = 1;
                msg.msg_control = ctl.as_mut_ptr().cast();
                msg.msg_controllen = std::mem::size_of_val(&ctl) as _;
                // each descriptor received stays open in this process until it exits
                let n = libc::recvmsg(t, &mut msg, libc::MSG_CMSG_CLOEXEC);
                if n == 0 || (n < 0 && *libc::__errno_location() != libc::EINTR) {
                    break;
                }
            }
        })
    }?;
    drop(theirs);
    Ok(mine)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether some process has `path` open, as /proc/PID/fd shows a removed file.
    fn held_by_someone(path: &Path) -> bool {
        let want = format!("{} (deleted)", path.display());
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read_dir(e.path().join("fd")).ok())
            .flat_map(|fds| fds.flatten())
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == want.as_str()))
    }

    /// A held file is gone by name at once, kept open by the keeper while the scope lives,
    /// and let go when it ends.
    #[test]
    fn a_removed_file_is_held_until_the_scope_ends() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("record.json");
        std::fs::write(&p, b"{}").unwrap();
        let scope = Scope;
        hold(&d.path().join("missing")); // nothing to hold: no error
        hold(&p);
        std::fs::remove_file(&p).unwrap();
        assert!(!p.exists());
        // (a descriptor in flight is in no process's table until the keeper's recvmsg takes
        // it, which a loaded machine may run a moment later)
        let t = std::time::Instant::now();
        while !held_by_someone(&p) {
            assert!(
                t.elapsed() < std::time::Duration::from_secs(5),
                "the keeper should hold {}",
                p.display()
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        drop(scope);
        let t = std::time::Instant::now();
        while held_by_someone(&p) {
            assert!(
                t.elapsed() < std::time::Duration::from_secs(5),
                "the keeper should have let {} go",
                p.display()
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}
