//! `process.capabilities`: bounding, permitted, effective, inheritable, ambient.
//!
//! One capget + at most two capset calls, one PR_CAPBSET_DROP per capability left out of the
//! bounding set, and the ambient raises: no file reads (cap_last_cap is probed with
//! PR_CAPBSET_READ instead of reading /proc/sys/kernel/cap_last_cap).

use std::io;

use anyhow::{Context, Result};
use caps::Capability as K;
use oci_spec::runtime::{Capabilities, Capability as C, LinuxCapabilities};

/// The `caps` crate capability for an OCI one (same numbering as linux/capability.h).
pub fn to_caps(c: C) -> K {
    match c {
        C::AuditControl => K::CAP_AUDIT_CONTROL,
        C::AuditRead => K::CAP_AUDIT_READ,
        C::AuditWrite => K::CAP_AUDIT_WRITE,
        C::BlockSuspend => K::CAP_BLOCK_SUSPEND,
        C::Bpf => K::CAP_BPF,
        C::CheckpointRestore => K::CAP_CHECKPOINT_RESTORE,
        C::Chown => K::CAP_CHOWN,
        C::DacOverride => K::CAP_DAC_OVERRIDE,
        C::DacReadSearch => K::CAP_DAC_READ_SEARCH,
        C::Fowner => K::CAP_FOWNER,
        C::Fsetid => K::CAP_FSETID,
        C::IpcLock => K::CAP_IPC_LOCK,
        C::IpcOwner => K::CAP_IPC_OWNER,
        C::Kill => K::CAP_KILL,
        C::Lease => K::CAP_LEASE,
        C::LinuxImmutable => K::CAP_LINUX_IMMUTABLE,
        C::MacAdmin => K::CAP_MAC_ADMIN,
        C::MacOverride => K::CAP_MAC_OVERRIDE,
        C::Mknod => K::CAP_MKNOD,
        C::NetAdmin => K::CAP_NET_ADMIN,
        C::NetBindService => K::CAP_NET_BIND_SERVICE,
        C::NetBroadcast => K::CAP_NET_BROADCAST,
        C::NetRaw => K::CAP_NET_RAW,
        C::Perfmon => K::CAP_PERFMON,
        C::Setgid => K::CAP_SETGID,
        C::Setfcap => K::CAP_SETFCAP,
        C::Setpcap => K::CAP_SETPCAP,
        C::Setuid => K::CAP_SETUID,
        C::SysAdmin => K::CAP_SYS_ADMIN,
        C::SysBoot => K::CAP_SYS_BOOT,
        C::SysChroot => K::CAP_SYS_CHROOT,
        C::SysModule => K::CAP_SYS_MODULE,
        C::SysNice => K::CAP_SYS_NICE,
        C::SysPacct => K::CAP_SYS_PACCT,
        C::SysPtrace => K::CAP_SYS_PTRACE,
        C::SysRawio => K::CAP_SYS_RAWIO,
        C::SysResource => K::CAP_SYS_RESOURCE,
        C::SysTime => K::CAP_SYS_TIME,
        C::SysTtyConfig => K::CAP_SYS_TTY_CONFIG,
        C::Syslog => K::CAP_SYSLOG,
        C::WakeAlarm => K::CAP_WAKE_ALARM,
    }
}

fn prctl(op: libc::c_int, a: libc::c_ulong, b: libc::c_ulong) -> io::Result<libc::c_int> {
    // SAFETY: capability prctls take integer arguments only.
    let r = unsafe { libc::prctl(op, a, b, 0 as libc::c_ulong, 0 as libc::c_ulong) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// The highest capability the running kernel knows (probed with PR_CAPBSET_READ).
pub fn last_cap() -> u8 {
    let known = |c: u8| prctl(libc::PR_CAPBSET_READ, c as libc::c_ulong, 0).is_ok();
    let mut c = K::CAP_CHECKPOINT_RESTORE.index();
    if known(c) {
        while c < 63 && known(c + 1) {
            c += 1;
        }
    } else {
        while c > 0 && !known(c) {
            c -= 1;
        }
    }
    c
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_V3: u32 = 0x2008_0522;

/// (effective, permitted, inheritable) of the calling thread.
pub fn capget() -> io::Result<(u64, u64, u64)> {
    let mut h = CapHeader {
        version: CAP_V3,
        pid: 0,
    };
    let mut d = [CapData::default(); 2];
    // SAFETY: header and a 2-element data array as _LINUX_CAPABILITY_VERSION_3 requires.
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut h as *mut CapHeader, d.as_mut_ptr()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let j = |lo: u32, hi: u32| (hi as u64) << 32 | lo as u64;
    Ok((
        j(d[0].effective, d[1].effective),
        j(d[0].permitted, d[1].permitted),
        j(d[0].inheritable, d[1].inheritable),
    ))
}

fn capset(eff: u64, perm: u64, inh: u64) -> io::Result<()> {
    let mut h = CapHeader {
        version: CAP_V3,
        pid: 0,
    };
    let d = [
        CapData {
            effective: eff as u32,
            permitted: perm as u32,
            inheritable: inh as u32,
        },
        CapData {
            effective: (eff >> 32) as u32,
            permitted: (perm >> 32) as u32,
            inheritable: (inh >> 32) as u32,
        },
    ];
    // SAFETY: header and a 2-element data array as _LINUX_CAPABILITY_VERSION_3 requires.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut h as *mut CapHeader, d.as_ptr()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Apply the capability sets. `None` empties every set.
pub fn apply(c: Option<&LinuxCapabilities>) -> Result<()> {
    let last = last_cap();
    let mut unknown: Vec<C> = Vec::new();
    let mut mask = |set: Option<&Capabilities>| -> u64 {
        let mut m = 0u64;
        for cap in set.into_iter().flatten() {
            let i = to_caps(*cap).index();
            if i > last {
                if !unknown.contains(cap) {
                    unknown.push(*cap);
                }
            } else {
                m |= 1 << i;
            }
        }
        m
    };
    let bounding = mask(c.and_then(|c| c.bounding().as_ref()));
    let effective = mask(c.and_then(|c| c.effective().as_ref()));
    let permitted = mask(c.and_then(|c| c.permitted().as_ref()));
    let inheritable = mask(c.and_then(|c| c.inheritable().as_ref()));
    let ambient = mask(c.and_then(|c| c.ambient().as_ref()));
    if !unknown.is_empty() {
        unknown.sort_by_key(|c| to_caps(*c).index());
        let names: Vec<String> = unknown.iter().map(|c| to_caps(*c).to_string()).collect();
        super::warn(&format!(
            "ignoring unknown or unavailable capabilities: [{}]",
            names.join(" ")
        ));
    }

    // Dropping from the bounding set needs CAP_SETPCAP in the effective set, which a uid
    // switch to non-root cleared: raise effective to the (kept) permitted set first.
    let setpcap = 1u64 << K::CAP_SETPCAP.index();
    let (cur_eff, cur_perm, cur_inh) = capget().context("capget")?;
    let full: u64 = if last >= 63 {
        u64::MAX
    } else {
        (1u64 << (last + 1)) - 1
    };
    if bounding & full != full {
        if cur_eff & setpcap == 0 && cur_perm & setpcap != 0 {
            capset(cur_perm, cur_perm, cur_inh)
                .context("raising the effective capabilities to the permitted set")?;
        }
        for cap in 0..=last {
            if bounding & (1 << cap) == 0 {
                match prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0) {
                    Ok(_) => {}
                    // Without CAP_SETPCAP, a capability already out of the set is fine.
                    Err(e)
                        if e.raw_os_error() == Some(libc::EPERM)
                            && prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0).ok()
                                == Some(0) => {}
                    Err(e) => {
                        return Err(e).with_context(|| {
                            format!("process.capabilities.bounding: dropping capability {cap}")
                        })
                    }
                }
            }
        }
    }

    capset(effective, permitted, inheritable).context(
        "process.capabilities: setting the effective, permitted and inheritable sets (capset)",
    )?;

    // Ambient: start from empty (inheritance from the runtime is never wanted), then raise the
    // listed ones the kernel allows (in both permitted and inheritable).
    prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
        0,
    )
    .context("clearing the ambient capability set")?;
    let mut skipped = Vec::new();
    for cap in 0..=last {
        if ambient & (1 << cap) == 0 {
            continue;
        }
        if permitted & inheritable & (1 << cap) == 0 {
            skipped.push(cap);
            continue;
        }
        prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
            cap as libc::c_ulong,
        )
        .with_context(|| format!("process.capabilities.ambient: raising capability {cap}"))?;
    }
    if !skipped.is_empty() {
        // runc's default spec lists ambient capabilities without inheritable ones; like runc,
        // say so only in debug logs, not on the container's stderr.
        crate::logging::debug(&format!(
            "process.capabilities.ambient: capabilities {skipped:?} are not in both the permitted \
             and inheritable sets; not raised"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_cap_matches_the_kernel() {
        let want: u8 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(last_cap(), want);
    }

    #[test]
    fn oci_names_map_to_the_same_caps() {
        for (name, idx) in [("CAP_CHOWN", 0), ("CAP_KILL", 5), ("CAP_SYS_ADMIN", 21)] {
            let c: C = serde_json::from_value(serde_json::json!(name)).unwrap();
            assert_eq!(to_caps(c).index(), idx);
            assert_eq!(to_caps(c).to_string(), name);
        }
        let c: C = serde_json::from_value(serde_json::json!("CAP_CHECKPOINT_RESTORE")).unwrap();
        assert_eq!(to_caps(c).index(), 40);
    }
}
