//! Work the network companion leaves to a process of its own, so husk never waits for it.
//!
//! - **Freed files.** Freeing a file's blocks happens in the syscall that drops the inode's
//!   last reference (the `rename` over a record, the `unlink` of an address file), and on a
//!   file system mounted with `discard` without a journal (ext4 here, where the run dir is not
//!   a tmpfs) that syscall waits for the device to discard them: 0.2-6 ms each, several per
//!   attach and detach. [`hold`] opens the file just before and hands the descriptor to the
//!   keeper; the inode then outlives its name until the keeper exits. On a tmpfs or ramfs (the
//!   usual `/run`) freeing costs nothing to wait for, and nothing is held.
//! - **Last closes** ([`give`]): the NETLINK_NETFILTER socket that sent a batch, whose last
//!   close waits an RCU grace period (see `native::nft`).
//! - **Requests whose answer waits** ([`send_on`]): a veth's RTM_DELLINK, which returns only
//!   after `rcu_barrier` (see `native::netlink`); the keeper sends it and closes a pipe when
//!   the kernel has answered.
//!
//! The keeper is a grandchild (started on first use, holding nothing but its end of a socket
//! pair and the descriptors it is given) that exits at EOF on the socket pair, once it has
//! done every request before it: when the operation's [`Scope`] ends (attach, detach, gc, a
//! deleted container's release) or husk exits, so a long-lived husk (`husk up`) holds nothing
//! between operations, except the foreground `husk up --rm` on a network, which keeps one
//! scope (and keeper) from its attach to its detach: the attach's last close of its nf_tables
//! socket then comes after the detach instead of holding nf_tables' commit mutex, for a grace
//! period, while a container that ran a short command is detached (the detach's table
//! deletion and veth deletion would wait behind it: 5 ms at the median here). One keeper
//! serves the whole operation, so the operation pays for one double fork at most. When it
//! cannot be started each caller does the work itself, waiting.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// husk's end of the socket pair (None: not started, or it could not be).
static KEEPER: Mutex<Option<Option<OwnedFd>>> = Mutex::new(None);

/// How many [`Scope`]s are open: the keeper goes when the outermost one ends.
static DEPTH: AtomicUsize = AtomicUsize::new(0);

/// While it lives, files given to [`hold`] are kept; the end of the outermost one lets the
/// keeper go. Scopes nest: a caller that runs several operations close together (the
/// foreground `husk up --rm`: attach, the container's run, detach) opens one around them all,
/// so one keeper serves them and the last closes it does (the attach's nf_tables socket's,
/// which holds nf_tables' commit mutex for an RCU grace period) come after the detach rather
/// than in its way.
pub struct Scope(());

impl Scope {
    pub fn enter() -> Scope {
        DEPTH.fetch_add(1, Ordering::SeqCst);
        Scope(())
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        if DEPTH.fetch_sub(1, Ordering::SeqCst) == 1 {
            let mut k = KEEPER.lock().unwrap_or_else(|e| e.into_inner());
            *k = None;
        }
    }
}

/// Start the keeper of the operation that comes next, in the background: a thread of its own
/// (every signal blocked, so none meant for the caller's signal handling lands there) forks
/// it while the caller goes on, and leaves it for that operation's first request (a request
/// before it is ready starts one of its own, and this one then ends unused). For a caller
/// that waits meanwhile anyway: the foreground `husk up --rm`, while its container runs.
/// Nothing is started while a keeper is there.
pub fn prestart() {
    use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow};
    if matches!(
        *KEEPER.lock().unwrap_or_else(|e| e.into_inner()),
        Some(Some(_))
    ) {
        return;
    }
    let mut old = SigSet::empty();
    if pthread_sigmask(
        SigmaskHow::SIG_SETMASK,
        Some(&SigSet::all()),
        Some(&mut old),
    )
    .is_err()
    {
        return;
    }
    let _ = std::thread::Builder::new().name("keeper".into()).spawn(|| {
        let Ok(end) = start() else {
            return;
        };
        let mut k = KEEPER.lock().unwrap_or_else(|e| e.into_inner());
        if k.is_none() {
            *k = Some(Some(end));
        }
    });
    let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
}

/// Keep `path`'s inode (when there is one) alive until the operation's [`Scope`] ends, unless
/// it is on a file system in memory.
pub fn hold(path: &Path) {
    let Ok(f) = std::fs::File::open(path) else {
        return;
    };
    if in_memory(&f) {
        return;
    }
    give(f.as_fd());
}

/// A tmpfs or ramfs: freeing a file's pages there waits for no device.
fn in_memory(f: &std::fs::File) -> bool {
    use nix::sys::statfs::{fstatfs, FsType, TMPFS_MAGIC};
    // (nix names no ramfs constant: linux/magic.h's)
    const RAMFS_MAGIC: FsType = FsType(0x8584_58f6);
    fstatfs(f).is_ok_and(|st| [TMPFS_MAGIC, RAMFS_MAGIC].contains(&st.filesystem_type()))
}

/// Hand a duplicate of `fd` to the keeper, which keeps it open until it exits: the caller's
/// close is then never the last. False when there is no keeper (the caller's close is).
pub fn give(fd: BorrowedFd<'_>) -> bool {
    to_keeper(&[HOLD], &[fd.as_raw_fd()])
}

/// Have the keeper send `msg` on socket `sock` (kept open there after), then close its copy of
/// `done` (a pipe's write end: EOF there, once the caller's copy is closed too, says the send
/// returned). False when there is no keeper (nothing was sent).
pub fn send_on(sock: BorrowedFd<'_>, msg: &[u8], done: BorrowedFd<'_>) -> bool {
    if msg.len() > MAX_MSG {
        return false;
    }
    let mut m = Vec::with_capacity(1 + msg.len());
    m.push(SEND);
    m.extend_from_slice(msg);
    to_keeper(&m, &[sock.as_raw_fd(), done.as_raw_fd()])
}

/// Tests that end a [`Scope`] (which ends the one keeper of the process) run one at a time.
#[cfg(test)]
pub(crate) fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Request kinds: the first byte of each message to the keeper.
const HOLD: u8 = 0;
const SEND: u8 = 1;
/// The longest message [`send_on`] passes on (the keeper's buffer, on its stack, is one more).
const MAX_MSG: usize = 1024;

fn to_keeper(data: &[u8], fds: &[RawFd]) -> bool {
    let mut k = KEEPER.lock().unwrap_or_else(|e| e.into_inner());
    let end = k.get_or_insert_with(|| start().ok());
    let Some(end) = end else {
        return false;
    };
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let iov = [std::io::IoSlice::new(data)];
    let sent = sendmsg::<()>(
        end.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(fds)],
        MsgFlags::empty(),
        None,
    );
    if sent.is_err() {
        *k = Some(None);
        return false;
    }
    true
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
    // SAFETY: the grandchild only calls recvmsg, send and close on descriptors it was given,
    // every buffer on its stack.
    unsafe {
        crate::sys::grandchild::keeping(&[t], || {
            let mut data = [0u8; 1 + MAX_MSG];
            let mut ctl = [0u64; 8];
            loop {
                let mut iov = libc::iovec {
                    iov_base: data.as_mut_ptr().cast(),
                    iov_len: data.len(),
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
                if n < 1 || data[0] != SEND {
                    continue;
                }
                // SEND: the socket and the pipe's write end, in that order
                let c = libc::CMSG_FIRSTHDR(&msg);
                if c.is_null()
                    || (*c).cmsg_level != libc::SOL_SOCKET
                    || (*c).cmsg_type != libc::SCM_RIGHTS
                    || ((*c).cmsg_len as usize) < libc::CMSG_LEN(8) as usize
                {
                    continue;
                }
                let fds = libc::CMSG_DATA(c).cast::<libc::c_int>();
                let (sock, done) = (fds.read_unaligned(), fds.add(1).read_unaligned());
                libc::send(sock, data.as_ptr().add(1).cast(), n as usize - 1, 0);
                libc::close(done);
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
    /// and let go when it ends; a file on a tmpfs is not held.
    #[test]
    fn a_removed_file_is_held_until_the_scope_ends() {
        let _serial = serial();
        // the crate's own directory (a disk) and a tmpfs where there is one
        let on_disk = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let shm = std::path::Path::new("/dev/shm");
        let in_mem = shm
            .is_dir()
            .then(|| tempfile::tempdir_in(shm).ok())
            .flatten();
        if let Some(m) = &in_mem {
            let p = m.path().join("record.json");
            std::fs::write(&p, b"{}").unwrap();
            let f = std::fs::File::open(&p).unwrap();
            if in_memory(&f) {
                let _scope = Scope::enter();
                hold(&p);
                std::fs::remove_file(&p).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(50));
                drop(f);
                assert!(!held_by_someone(&p), "a file on a tmpfs was held");
            }
        }
        let d = on_disk;
        let p = d.path().join("record.json");
        std::fs::write(&p, b"{}").unwrap();
        if in_memory(&std::fs::File::open(&p).unwrap()) {
            crate::testing::skip(
                "a_removed_file_is_held_until_the_scope_ends",
                "the crate's directory is on a tmpfs: nothing there is held",
            );
            return;
        }
        let scope = Scope::enter();
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

    /// A connected pair of SEQPACKET sockets (close-on-exec): something for the keeper to hold.
    fn seqpacket_pair() -> (OwnedFd, OwnedFd) {
        use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
        socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap()
    }

    /// `send_on`: the keeper sends the message on the socket given and then closes its copy of
    /// the pipe's write end; the socket stays open in the keeper until the scope ends.
    #[test]
    fn the_keeper_sends_and_says_when() {
        use std::io::Read;
        let _serial = serial();
        let scope = Scope::enter();
        let (a, b) = seqpacket_pair();
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        assert!(send_on(a.as_fd(), b"hello", w.as_fd()));
        drop((a, w));
        let mut got = [0u8; 16];
        let n = nix::unistd::read(&b, &mut got).unwrap();
        assert_eq!(&got[..n], b"hello");
        // EOF on the pipe: the keeper closed its copy after the send
        let mut rest = Vec::new();
        std::fs::File::from(r).read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
        assert!(
            !crate::sys::fd::readable_within(b.as_fd(), 0).unwrap(),
            "the keeper closed the socket before the scope ended"
        );
        drop(scope);
        // the keeper exits: its copy of the socket closes, and `b` reads EOF
        assert!(crate::sys::fd::readable_within(b.as_fd(), 5000).unwrap());
        assert_eq!(nix::unistd::read(&b, &mut got).unwrap(), 0);
        // too long a message is refused, nothing sent
        let (a2, _b2) = seqpacket_pair();
        let (_r2, w2) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        assert!(!send_on(a2.as_fd(), &[0u8; MAX_MSG + 1], w2.as_fd()));
    }

    /// Scopes nest: the end of an inner one leaves the keeper (and what it holds) to the
    /// outer one, whose end lets it go.
    #[test]
    fn the_outermost_scope_ends_the_keeper() {
        let _serial = serial();
        let outer = Scope::enter();
        let (a, b) = seqpacket_pair();
        {
            let _inner = Scope::enter();
            assert!(give(a.as_fd()));
        }
        drop(a);
        // the keeper still holds `a`'s copy: no EOF at `b`
        assert!(
            !crate::sys::fd::readable_within(b.as_fd(), 200).unwrap(),
            "the inner scope's end let the keeper go"
        );
        // prestart while the keeper is there leaves it be
        {
            let _next = Scope::enter();
            prestart();
        }
        assert!(!crate::sys::fd::readable_within(b.as_fd(), 0).unwrap());
        drop(outer);
        assert!(crate::sys::fd::readable_within(b.as_fd(), 5000).unwrap());
        let mut got = [0u8; 4];
        assert_eq!(nix::unistd::read(&b, &mut got).unwrap(), 0);
    }
}
