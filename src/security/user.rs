//! `process.user`: umask, supplementary groups, gid, uid.

use std::io;

use anyhow::{Context, Result};
use oci_spec::runtime::User;

fn prctl(op: libc::c_int, a: libc::c_ulong) -> io::Result<()> {
    // SAFETY: PR_SET_KEEPCAPS takes one integer argument.
    let r = unsafe {
        libc::prctl(
            op,
            a,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn setgroups_denied() -> Result<bool> {
    match crate::sys::procfs::read_proc_file("self/setgroups") {
        Ok(v) => Ok(v.starts_with(b"deny")),
        Err(e) => {
            // Kernels before 3.19 have no such file (and no "deny").
            let missing = e
                .chain()
                .filter_map(|c| c.downcast_ref::<io::Error>())
                .any(|e| e.raw_os_error() == Some(libc::ENOENT));
            if missing {
                Ok(false)
            } else {
                Err(e)
            }
        }
    }
}

/// Switch to `u`, keeping the permitted capabilities for `caps::apply`.
pub fn switch(u: &User, in_userns: bool) -> Result<()> {
    let umask = u.umask().unwrap_or(0o022);
    // SAFETY: umask only swaps the process's file mode creation mask.
    unsafe { libc::umask(umask as libc::mode_t) };

    prctl(libc::PR_SET_KEEPCAPS, 1).context("prctl(PR_SET_KEEPCAPS)")?;

    // Always set the list (an empty one drops the runtime's own supplementary groups), except in
    // a user namespace whose setgroups is "deny", where the kernel forbids it (as runc, which
    // then leaves the list as it is).
    // Duplicates are dropped (first one kept), as runc does: docker repeats a gid that is both
    // the user's /etc/group membership and a --group-add, and `id -G` would show it twice.
    let mut gids: Vec<u32> = Vec::new();
    for g in u.additional_gids().as_deref().unwrap_or(&[]) {
        if !gids.contains(g) {
            gids.push(*g);
        }
    }
    if !(in_userns && setgroups_denied()?) {
        // SAFETY: gids points at gids.len() valid gid_t values (u32).
        let r = unsafe { libc::setgroups(gids.len(), gids.as_ptr() as *const libc::gid_t) };
        if r < 0 {
            let e = io::Error::last_os_error();
            // husk itself may run in a user namespace whose setgroups is "deny" (a rootless
            // engine's); the container then shares it. Checked only on failure: it costs a
            // procfs read.
            let inherited_deny = !in_userns
                && e.raw_os_error() == Some(libc::EPERM)
                && setgroups_denied().unwrap_or(false);
            if !inherited_deny {
                return Err(e)
                    .with_context(|| format!("process.user.additionalGids: setgroups({gids:?})"));
            }
        }
    }

    let gid = nix::unistd::Gid::from_raw(u.gid());
    nix::unistd::setresgid(gid, gid, gid)
        .with_context(|| format!("process.user.gid: setresgid({})", u.gid()))?;
    let uid = nix::unistd::Uid::from_raw(u.uid());
    nix::unistd::setresuid(uid, uid, uid)
        .with_context(|| format!("process.user.uid: setresuid({})", u.uid()))?;

    // PR_SET_KEEPCAPS stays set until execve clears it; nothing runs in between that could
    // change uid again, so no syscall is spent on clearing it.
    Ok(())
}
