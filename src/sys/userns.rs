//! A user namespace fd carrying given id maps, for id-mapped mounts (MOUNT_ATTR_IDMAP).
//!
//! The kernel only creates user namespaces for processes, so a short-lived child is forked into
//! a new one, held on a pipe while its maps are written and its `ns/user` is opened, then killed
//! and reaped by its pid. Must be called by a single-threaded process whose /proc matches its
//! pid namespace (the runtime on the host side), with the privilege to write the maps.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};

/// Kills and reaps the holder child on every path out of [`userns_fd`].
struct Holder {
    pid: i32,
    /// Write end of the pipe the child blocks on; closing it lets the child exit by itself.
    _hold: OwnedFd,
}

impl Drop for Holder {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.pid);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::SIGKILL);
        while let Err(nix::errno::Errno::EINTR) = nix::sys::wait::waitpid(pid, None) {}
    }
}

/// Open a new user namespace whose `uid_map`/`gid_map` are the given texts
/// ("inside outside count" lines).
pub fn userns_fd(uid_map: &str, gid_map: &str) -> io::Result<OwnedFd> {
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| io::Error::from_raw_os_error(e as i32))?;
    let forked = super::clone3::fork_with(libc::CLONE_NEWUSER as u64, None, false)?.0;
    let pid = match forked {
        super::clone3::Forked::Child => {
            let (r, w) = (rd.as_raw_fd(), wr.as_raw_fd());
            let mut b = 0u8;
            // SAFETY: only async-signal-safe calls on descriptor numbers this child inherited:
            // close our copy of the write end, block until the parent closes its copy (or
            // kills us), and leave without running any of the parent's destructors.
            unsafe {
                libc::close(w);
                libc::read(r, &mut b as *mut u8 as *mut libc::c_void, 1);
                libc::_exit(0)
            }
        }
        super::clone3::Forked::Parent { pid, .. } => pid,
    };
    drop(rd);
    let _holder = Holder { pid, _hold: wr };
    let write = |name: &str, text: &str| -> io::Result<()> {
        let mut f = File::options()
            .write(true)
            .open(format!("/proc/{pid}/{name}"))?;
        f.write_all(text.as_bytes())
            .map_err(|e| io::Error::new(e.kind(), format!("write {name} {text:?}: {e}")))
    };
    write("uid_map", uid_map)?;
    write("gid_map", gid_map)?;
    Ok(File::open(format!("/proc/{pid}/ns/user"))?.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_namespace_with_the_maps() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skip: needs root");
            return;
        }
        let fd = userns_fd("0 100000 65536\n", "0 200000 10\n").unwrap();
        assert_eq!(
            crate::sys::ns_get_type(std::os::fd::AsFd::as_fd(&fd)).unwrap(),
            libc::CLONE_NEWUSER
        );
        // overlapping ranges: the kernel refuses the map (the holder is reaped all the same)
        assert!(userns_fd("0 0 1\n0 0 1\n", "0 0 1\n").is_err());
    }
}
