//! clone3(2) with fork semantics (no new stack), optionally into a cgroup (CLONE_INTO_CGROUP) and
//! returning a pidfd; falls back to clone(2) on kernels without clone3.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Which side of the fork we are on.
pub enum Forked {
    Child,
    Parent { pid: i32, pidfd: Option<OwnedFd> },
}

/// Fork (with `flags`: CLONE_NEW* namespace flags) like fork(2): the child continues on a
/// copy-on-write copy of the caller's stack. The caller must be single-threaded.
///
/// With `cgroup` the child starts inside that cgroup v2 directory; if the kernel refuses that, the
/// call is retried without and `Parent` says so through `into_cgroup == false`.
pub fn fork_with(
    flags: u64,
    cgroup: Option<RawFd>,
    want_pidfd: bool,
) -> io::Result<(Forked, bool)> {
    let mut pidfd: RawFd = -1;
    let mut args = CloneArgs {
        flags: flags
            | if want_pidfd {
                libc::CLONE_PIDFD as u64
            } else {
                0
            },
        pidfd: &mut pidfd as *mut RawFd as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    if super::forced_enosys("clone3") {
        return fork_legacy(flags).map(|f| (f, false));
    }
    loop {
        // SAFETY: clone3 with a zero stack behaves like fork: the child gets a private copy of
        // the address space. `args` is a valid, fully initialised clone_args of the size passed.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &mut args as *mut CloneArgs,
                std::mem::size_of::<CloneArgs>(),
            )
        };
        if ret == 0 {
            return Ok((Forked::Child, args.flags & CLONE_INTO_CGROUP != 0));
        }
        if ret > 0 {
            let fd = if want_pidfd && pidfd >= 0 {
                // SAFETY: the kernel just returned this pidfd to us; we are its only owner.
                Some(unsafe { OwnedFd::from_raw_fd(pidfd) })
            } else {
                None
            };
            let into = args.flags & CLONE_INTO_CGROUP != 0;
            return Ok((
                Forked::Parent {
                    pid: ret as i32,
                    pidfd: fd,
                },
                into,
            ));
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::ENOSYS) => return fork_legacy(flags).map(|f| (f, false)),
            // CLONE_INTO_CGROUP refused (old kernel, or a domain-invalid/threaded cgroup): retry
            // without and let the caller place the child by pid.
            Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) | Some(libc::EBUSY)
                if args.flags & CLONE_INTO_CGROUP != 0 =>
            {
                args.flags &= !CLONE_INTO_CGROUP;
                args.cgroup = 0;
            }
            _ => return Err(err),
        }
    }
}

fn fork_legacy(flags: u64) -> io::Result<Forked> {
    // clone(2) has no room for CLONE_NEWTIME (its bit is part of the exit signal there)
    if flags & libc::CLONE_NEWTIME as u64 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "a new time namespace needs clone3, which the kernel (or a seccomp filter) refused",
        ));
    }
    // SAFETY: clone(2) without CLONE_VM and with a NULL stack has fork semantics.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags as libc::c_ulong) | libc::SIGCHLD as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    match ret {
        0 => Ok(Forked::Child),
        r if r > 0 => Ok(Forked::Parent {
            pid: r as i32,
            pidfd: None,
        }),
        _ => Err(io::Error::last_os_error()),
    }
}
