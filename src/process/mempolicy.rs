//! `linux.memoryPolicy` (runtime-spec 1.3, config-linux.md "Memory policy"): the NUMA memory
//! policy of the container's processes, set with set_mempolicy(2) in the init (and in an exec'd
//! process) before the exec; the policy survives execve and is inherited by children.
//!
//! The policy is checked at create ([`check`]) and turned into the syscall's arguments there, so
//! the init only makes the call.

use anyhow::{bail, Result};
use oci_spec::runtime::{LinuxMemoryPolicy, MemoryPolicyFlagType, MemoryPolicyModeType, Spec};

// <linux/mempolicy.h>
const MPOL_DEFAULT: i32 = 0;
const MPOL_PREFERRED: i32 = 1;
const MPOL_BIND: i32 = 2;
const MPOL_INTERLEAVE: i32 = 3;
const MPOL_LOCAL: i32 = 4;
const MPOL_PREFERRED_MANY: i32 = 5;
const MPOL_WEIGHTED_INTERLEAVE: i32 = 6;
const MPOL_F_NUMA_BALANCING: i32 = 1 << 13;
const MPOL_F_RELATIVE_NODES: i32 = 1 << 14;
const MPOL_F_STATIC_NODES: i32 = 1 << 15;

/// set_mempolicy(2)'s arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemPolicy {
    /// mode | flags
    pub mode: i32,
    pub nodemask: Vec<libc::c_ulong>,
    /// bits in `nodemask`, plus one (the kernel's historic off-by-one)
    pub maxnode: libc::c_ulong,
}

fn of(spec: &Spec) -> Option<&LinuxMemoryPolicy> {
    spec.linux().as_ref()?.memory_policy().as_ref()
}

/// The policy of the config, checked; None without `linux.memoryPolicy`.
pub fn check(spec: &Spec) -> Result<Option<MemPolicy>> {
    let Some(p) = of(spec) else {
        return Ok(None);
    };
    let mode = match p.mode() {
        MemoryPolicyModeType::MpolDefault => MPOL_DEFAULT,
        MemoryPolicyModeType::MpolPreferred => MPOL_PREFERRED,
        MemoryPolicyModeType::MpolBind => MPOL_BIND,
        MemoryPolicyModeType::MpolInterleave => MPOL_INTERLEAVE,
        MemoryPolicyModeType::MpolLocal => MPOL_LOCAL,
        MemoryPolicyModeType::MpolPreferredMany => MPOL_PREFERRED_MANY,
        MemoryPolicyModeType::MpolWeightedInterleave => MPOL_WEIGHTED_INTERLEAVE,
    };
    let mut flags = 0;
    for f in p.flags().iter().flatten() {
        flags |= match f {
            MemoryPolicyFlagType::MpolFNumaBalancing => MPOL_F_NUMA_BALANCING,
            MemoryPolicyFlagType::MpolFRelativeNodes => MPOL_F_RELATIVE_NODES,
            MemoryPolicyFlagType::MpolFStaticNodes => MPOL_F_STATIC_NODES,
        };
    }
    let nodes = p.nodes().as_deref().unwrap_or("").trim();
    let bits = parse_nodes(nodes)?;
    let takes_nodes = !matches!(mode, MPOL_DEFAULT | MPOL_LOCAL);
    if !takes_nodes && !bits.is_empty() {
        bail!(
            "linux.memoryPolicy.nodes: {} takes no nodes, got {nodes:?}",
            p.mode()
        );
    }
    if takes_nodes && bits.is_empty() && mode != MPOL_PREFERRED {
        bail!(
            "linux.memoryPolicy.nodes: {} needs at least one node",
            p.mode()
        );
    }
    if !takes_nodes && flags != 0 {
        bail!("linux.memoryPolicy.flags: {} takes no flags", p.mode());
    }
    let max = bits.iter().max().copied().unwrap_or(0) as usize;
    let words = max / 64 + 1;
    let mut nodemask: Vec<libc::c_ulong> = vec![0; words];
    for b in bits {
        nodemask[b as usize / 64] |= 1 << (b % 64);
    }
    Ok(Some(MemPolicy {
        mode: mode | flags,
        maxnode: (words * 64 + 1) as libc::c_ulong,
        nodemask,
    }))
}

/// A node list: "0", "0-3,5", "" (none). Errors name the field.
fn parse_nodes(s: &str) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    if s.is_empty() {
        return Ok(out);
    }
    let bad =
        || anyhow::anyhow!("linux.memoryPolicy.nodes: {s:?} is not a node list (e.g. \"0-3,5\")");
    for part in s.split(',') {
        let part = part.trim();
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let a: u32 = a.trim().parse().map_err(|_| bad())?;
        let b: u32 = b.trim().parse().map_err(|_| bad())?;
        // MAX_NUMNODES is at most 1024 (NODES_SHIFT 10)
        if a > b || b >= 1024 {
            return Err(bad());
        }
        out.extend(a..=b);
    }
    Ok(out)
}

/// set_mempolicy(2) in the calling process.
pub fn apply(p: &MemPolicy) -> Result<()> {
    // SAFETY: set_mempolicy reads `maxnode - 1` bits from `nodemask`, which holds that many
    // (`check` sized it); it changes only this process's policy.
    let r = unsafe {
        libc::syscall(
            libc::SYS_set_mempolicy,
            p.mode as libc::c_long,
            p.nodemask.as_ptr(),
            p.maxnode,
        )
    };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        bail!("linux.memoryPolicy: set_mempolicy: {e}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(mp: serde_json::Value) -> Spec {
        serde_json::from_value(
            serde_json::json!({"ociVersion": "1.3.0", "linux": {"memoryPolicy": mp}}),
        )
        .unwrap()
    }

    #[test]
    fn modes_nodes_flags() {
        let p = check(&spec(
            serde_json::json!({"mode": "MPOL_BIND", "nodes": "0-2,65"}),
        ))
        .unwrap()
        .unwrap();
        assert_eq!(p.mode, MPOL_BIND);
        assert_eq!(p.nodemask, vec![0b111, 0b10]);
        assert_eq!(p.maxnode, 129);
        let p = check(&spec(
            serde_json::json!({"mode": "MPOL_INTERLEAVE", "nodes": "0",
            "flags": ["MPOL_F_STATIC_NODES"]}),
        ))
        .unwrap()
        .unwrap();
        assert_eq!(p.mode, MPOL_INTERLEAVE | MPOL_F_STATIC_NODES);
        assert!(check(&spec(serde_json::json!({"mode": "MPOL_LOCAL"})))
            .unwrap()
            .is_some());
        assert!(check(
            &serde_json::from_value(serde_json::json!({"ociVersion": "1.3.0"})).unwrap()
        )
        .unwrap()
        .is_none());
    }

    #[test]
    fn refused_by_name() {
        for (mp, want) in [
            (
                serde_json::json!({"mode": "MPOL_BIND"}),
                "linux.memoryPolicy.nodes",
            ),
            (
                serde_json::json!({"mode": "MPOL_BIND", "nodes": "x"}),
                "linux.memoryPolicy.nodes",
            ),
            (
                serde_json::json!({"mode": "MPOL_BIND", "nodes": "3-1"}),
                "linux.memoryPolicy.nodes",
            ),
            (
                serde_json::json!({"mode": "MPOL_DEFAULT", "nodes": "0"}),
                "linux.memoryPolicy.nodes",
            ),
            (
                serde_json::json!({"mode": "MPOL_LOCAL", "flags": ["MPOL_F_STATIC_NODES"]}),
                "linux.memoryPolicy.flags",
            ),
        ] {
            let e = check(&spec(mp.clone())).unwrap_err().to_string();
            assert!(e.contains(want), "{mp}: {e}");
        }
    }
}
