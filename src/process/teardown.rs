//! Undoing a container that was not completely made: a `create` or `restore` that fails half
//! way, and the state dir a killed `create` left behind (`delete --force`). One list of what
//! exists, undone in one order: restore's temporary mounts, the init, the init's bind of a
//! rootfs without a mount namespace, whatever else runs in the cgroup, the cgroup, the state
//! dir.

use crate::cgroups::Manager;
use anyhow::Context;
use nix::mount::MntFlags;
use std::path::{Path, PathBuf};

/// In the state dir of a container without a mount namespace: `<mount id> <rootfs>`, the id of
/// the mount at the rootfs before the init bound it.
pub const HOST_ROOTFS_FILE: &str = "host-rootfs";

/// How long a teardown waits for the processes of a cgroup to be gone.
const SWEEP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// What exists of a container being made.
pub struct Teardown {
    /// The state dir.
    pub dir: PathBuf,
    pub cgroup: Option<Box<dyn Manager>>,
    /// The container's init, once there is one (0: none).
    pub pid: i32,
    /// The init is this process's child (it is then reaped).
    pub is_child: bool,
    /// No mount namespace of its own: the rootfs and the id of the mount at it before the
    /// init bound it (a different one there now is the init's bind).
    pub host_rootfs: Option<(PathBuf, u64)>,
    /// Mounts made for the time of a restore, undone in reverse order (failed or not).
    pub mounts: Vec<PathBuf>,
    /// Restore's bind of the rootfs (a directory in the state dir CRIU restores into).
    pub criu_root: Option<PathBuf>,
}

/// What a teardown could not remove.
pub enum Leftover {
    /// The state dir (the cgroup is gone).
    StateDir(anyhow::Error),
    /// The cgroup (the state dir is gone).
    Cgroup(anyhow::Error),
}

impl Teardown {
    pub fn new(dir: PathBuf) -> Teardown {
        Teardown {
            dir,
            cgroup: None,
            pid: 0,
            is_child: true,
            host_rootfs: None,
            mounts: Vec::new(),
            criu_root: None,
        }
    }

    /// What a `create` killed half way (no state.json, or one that cannot be used) left in its
    /// state dir: the cgroup found again from the config copy saved before it was made (`cg`,
    /// if the config could be read), and the init's bind of the rootfs recorded in
    /// [`HOST_ROOTFS_FILE`]. The init of such a create exits by itself when its sync channel
    /// closes.
    pub fn of_state_dir(dir: PathBuf, cg: Option<Box<dyn Manager>>) -> Teardown {
        let host_rootfs = std::fs::read_to_string(dir.join(HOST_ROOTFS_FILE))
            .ok()
            .and_then(|text| {
                let (before, rootfs) = text.split_once(' ')?;
                Some((PathBuf::from(rootfs), before.parse::<u64>().ok()?))
            });
        Teardown {
            cgroup: cg,
            host_rootfs,
            ..Teardown::new(dir)
        }
    }

    /// Remove restore's temporary mounts (also after a restore that succeeded).
    pub fn unmount_temporary(&mut self) {
        for m in self.mounts.drain(..).rev() {
            let _ = nix::mount::umount2(&m, MntFlags::MNT_DETACH);
        }
        if let Some(r) = self.criu_root.take() {
            let _ = nix::mount::umount2(&r, MntFlags::MNT_DETACH);
            let _ = std::fs::remove_dir(&r);
        }
    }

    /// Undo everything, in order; what could not be removed is returned (the rest is removed
    /// nevertheless).
    pub fn run(mut self) -> Result<(), Leftover> {
        self.unmount_temporary();
        if self.pid > 0 {
            super::kill_and_wait(self.pid, self.is_child);
        }
        if let Some((rootfs, before)) = &self.host_rootfs {
            unmount_init_bind(rootfs, *before);
        }
        let cgroup = match &self.cgroup {
            Some(cg) => {
                sweep(cg.as_ref());
                cg.destroy()
            }
            None => Ok(()),
        };
        let id = self.dir.file_name().unwrap_or_default().to_string_lossy();
        std::fs::remove_dir_all(&self.dir)
            .with_context(|| format!("remove state dir of {id}"))
            .map_err(Leftover::StateDir)?;
        cgroup.map_err(Leftover::Cgroup)
    }

    /// [`run`](Self::run) where nobody waits for the answer (an operation that failed
    /// already): a cgroup left behind is a warning.
    pub fn run_warn(self) {
        if let Err(Leftover::Cgroup(e)) = self.run() {
            crate::logging::warn(&format!("remove cgroup: {e:#}"));
        }
    }
}

/// The init's bind of a rootfs without a mount namespace, if it made one (a mount at the
/// rootfs that is not the one noted before the fork), unmounted with everything under it.
fn unmount_init_bind(rootfs: &Path, before: u64) {
    if let Ok(now) = crate::sys::mount_id(rootfs) {
        if now != before {
            if let Err(e) = crate::rootfs::unmount_host_rootfs(rootfs, now) {
                crate::logging::warn(&format!("{e:#}"));
            }
        }
    }
}

/// Kill every process in a container's cgroup and wait until none is left, whatever state.json
/// says (a container without its own pid namespace keeps its other processes when init exits;
/// a recorded pid may be dead or reused). The cgroup is thawed first, whatever its freezer's
/// state (FREEZING included: a pause killed half way), since frozen tasks do not die on v1;
/// then every member gets SIGKILL (cgroup.kill, or freeze, signal, thaw, so nothing forks away
/// in between) until the cgroup is empty. A cgroup that is gone or unreadable is left to
/// `destroy` to report. A cgroup that holds husk itself or its caller (a state.json naming a
/// cgroup that is not the container's) is never swept.
pub fn sweep(cg: &dyn Manager) {
    let me = [std::process::id() as i32, nix::unistd::getppid().as_raw()];
    let _ = cg.freeze(false);
    let deadline = std::time::Instant::now() + SWEEP_TIMEOUT;
    let mut delay = std::time::Duration::from_millis(1);
    loop {
        match cg.pids() {
            Ok(p) if p.iter().any(|p| me.contains(p)) => {
                crate::logging::warn(&format!(
                    "cgroup {:?} holds husk or its caller: not killing its processes",
                    cg.state().path
                ));
                return;
            }
            Ok(p) if !p.is_empty() => {}
            _ => return,
        }
        let _ = cg.kill_all(nix::sys::signal::SIGKILL);
        if std::time::Instant::now() > deadline {
            return;
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(std::time::Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_dir_of_a_killed_create() {
        let d = tempfile::Builder::new()
            .prefix("husk-test-")
            .tempdir()
            .unwrap();
        let dir = d.path().join("c1");
        let rootfs = d.path().join("rootfs");
        std::fs::create_dir(&dir).unwrap();
        std::fs::create_dir(&rootfs).unwrap();
        std::fs::write(dir.join("config.json"), b"{}").unwrap();
        // the mount at the rootfs is the one noted: the init made no bind, nothing to unmount
        let id = crate::sys::mount_id(&rootfs).unwrap();
        let text = format!("{id} {}", rootfs.display());
        std::fs::write(dir.join(HOST_ROOTFS_FILE), text).unwrap();
        let t = Teardown::of_state_dir(dir.clone(), None);
        assert_eq!(t.host_rootfs, Some((rootfs.clone(), id)));
        assert!(t.run().is_ok());
        assert!(!dir.exists(), "the state dir is removed");
        assert!(rootfs.is_dir(), "the rootfs is not the teardown's");
        // a state dir that is gone already is what is left over, named
        match Teardown::new(dir.clone()).run() {
            Err(Leftover::StateDir(e)) => assert!(format!("{e:#}").contains("c1"), "{e:#}"),
            _ => panic!("a missing state dir is not reported"),
        }
    }

    #[test]
    fn unreadable_rootfs_note_is_no_rootfs() {
        let d = tempfile::Builder::new()
            .prefix("husk-test-")
            .tempdir()
            .unwrap();
        for text in ["", "12", "x /rootfs", "-1 /rootfs"] {
            std::fs::write(d.path().join(HOST_ROOTFS_FILE), text).unwrap();
            let t = Teardown::of_state_dir(d.path().to_path_buf(), None);
            assert_eq!(t.host_rootfs, None, "{text:?}");
        }
    }
}
