//! `linux.netDevices` (runtime-spec 1.3, config-linux.md "Network Devices"): network devices of
//! the runtime's network namespace moved into the container's, as runc ≥ 1.3 does.
//!
//! For each entry (key: the device's name on the host; `name`: its name in the container, the
//! key when unset), from the host side, once the container's network namespace exists and
//! before the prestart/createRuntime hooks: the device is set down, its permanent addresses of
//! global scope are read, it is moved and renamed in ONE netlink request (no moment in which
//! either name could clash), its addresses are added again in the container's namespace (the
//! kernel drops them on a move) and it is set up.
//!
//! Nothing is moved back at delete: when the container's network namespace goes away the kernel
//! returns physical devices to the initial namespace and destroys virtual ones (veth, dummy,
//! macvlan), which is what the spec describes and runc does.

use crate::sys::netlink::{self, Socket};
use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxNamespaceType, LinuxNetDevice, Spec};
use std::collections::{HashMap, HashSet};
use std::os::fd::{AsFd, AsRawFd};

/// The entries of `linux.netDevices`, sorted by host name (a stable order for errors).
fn entries(spec: &Spec) -> Vec<(&String, &LinuxNetDevice)> {
    let mut v: Vec<_> = spec
        .linux()
        .as_ref()
        .and_then(|l| l.net_devices().as_ref())
        .map(|m: &HashMap<String, LinuxNetDevice>| m.iter().collect())
        .unwrap_or_default();
    v.sort_by(|a, b| a.0.cmp(b.0));
    v
}

pub fn requested(spec: &Spec) -> bool {
    !entries(spec).is_empty()
}

/// Checks made at create, before anything exists: a network namespace of the container's own
/// (moving a device into the runtime's namespace would be a no-op that hides an error), valid
/// interface names, no two devices with one name in the container.
pub fn validate(spec: &Spec) -> Result<()> {
    let e = entries(spec);
    if e.is_empty() {
        return Ok(());
    }
    let netns = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == LinuxNamespaceType::Network));
    if !netns {
        bail!("linux.netDevices: devices can only be moved into a network namespace of the container (add a \"network\" entry to linux.namespaces)");
    }
    let mut names = HashSet::new();
    for (host, dev) in e {
        if !netlink::valid_ifname(host) {
            bail!("linux.netDevices: {host:?} is not a valid network device name (1 to 15 bytes, no '/', ':' or whitespace, not . or ..)");
        }
        let name = dev.name().as_deref().unwrap_or(host);
        if !netlink::valid_ifname(name) {
            bail!("linux.netDevices.{host}.name: {name:?} is not a valid network device name (1 to 15 bytes, no '/', ':' or whitespace, not . or ..)");
        }
        if !names.insert(name.to_string()) {
            bail!("linux.netDevices.{host}.name: {name:?} is the container name of another device too");
        }
    }
    Ok(())
}

/// Move the devices into the network namespace of process `pid` (the container's init).
pub fn move_into(spec: &Spec, pid: i32) -> Result<()> {
    let e = entries(spec);
    if e.is_empty() {
        return Ok(());
    }
    let target = std::fs::File::open(format!("/proc/{pid}/ns/net"))
        .context("linux.netDevices: open the container's network namespace")?;
    let ours = std::fs::File::open("/proc/self/ns/net")
        .context("linux.netDevices: open the runtime's network namespace")?;
    use std::os::unix::fs::MetadataExt;
    if target.metadata()?.ino() == ours.metadata()?.ino() {
        bail!("linux.netDevices: the container shares the runtime's network namespace");
    }
    let mut host = Socket::new().context("linux.netDevices")?;
    let mut moved = Vec::new();
    for (hname, dev) in e {
        let name = dev.name().as_deref().unwrap_or(hname);
        let field = format!("linux.netDevices.{hname}");
        let idx = host.link_index(hname).map_err(|err| match err {
            nix::errno::Errno::ENODEV => anyhow::anyhow!(
                "{field}: no network device {hname:?} in the runtime's network namespace"
            ),
            err => anyhow::anyhow!("{field}: look up {hname:?}: {}", netlink::errtext(err)),
        })?;
        let addrs: Vec<netlink::Addr> = host
            .addresses(idx)
            .map_err(|err| {
                anyhow::anyhow!(
                    "{field}: list the addresses of {hname:?}: {}",
                    netlink::errtext(err)
                )
            })?
            .into_iter()
            // as runc: only addresses a user configured (permanent) of global scope; dynamic
            // and link/host-scoped ones belong to the namespace they were made in
            .filter(|a| {
                a.flags & netlink::IFA_F_PERMANENT != 0 && a.scope == netlink::RT_SCOPE_UNIVERSE
            })
            .collect();
        host.set_up(idx, false).map_err(|err| {
            anyhow::anyhow!("{field}: set {hname:?} down: {}", netlink::errtext(err))
        })?;
        host.move_to_netns(idx, name, target.as_raw_fd())
            .map_err(|err| match err {
                nix::errno::Errno::EEXIST => anyhow::anyhow!(
                    "{field}: the container's network namespace already has a device named {name:?}"
                ),
                err => anyhow::anyhow!(
                    "{field}: move {hname:?} into the container's network namespace as {name:?}: {}",
                    netlink::errtext(err)
                ),
            })?;
        crate::log_debug!(
            "{field}: moved into the container as {name:?}, {} address(es)",
            addrs.len()
        );
        moved.push((field, name.to_string(), addrs));
    }
    // A socket of the container's namespace: husk has no thread, so the whole process enters it
    // for the socket(2) call and returns (a socket stays in the namespace it was made in).
    nix::sched::setns(target.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
        .context("linux.netDevices: enter the container's network namespace")?;
    let inside = Socket::new();
    nix::sched::setns(ours.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
        .context("linux.netDevices: return to the runtime's network namespace")?;
    let mut inside = inside.context("linux.netDevices: netlink in the container")?;
    for (field, name, addrs) in moved {
        let idx = inside.link_index(&name).map_err(|err| {
            anyhow::anyhow!(
                "{field}: find {name:?} in the container: {}",
                netlink::errtext(err)
            )
        })?;
        for a in &addrs {
            inside.add_address(idx, a).map_err(|err| {
                anyhow::anyhow!(
                    "{field}: add address {a} to {name:?}: {}",
                    netlink::errtext(err)
                )
            })?;
        }
        inside.set_up(idx, true).map_err(|err| {
            anyhow::anyhow!("{field}: set {name:?} up: {}", netlink::errtext(err))
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(linux: serde_json::Value) -> Spec {
        let mut v = serde_json::json!({"ociVersion": "1.3.0"});
        v["linux"] = linux;
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn checks() {
        let ns = serde_json::json!([{"type": "network"}]);
        assert!(validate(&spec(
            serde_json::json!({"namespaces": ns, "netDevices": {"dummy0": {}}})
        ))
        .is_ok());
        assert!(validate(&spec(
            serde_json::json!({"namespaces": ns, "netDevices": {"dummy0": {"name": "eth0"}}})
        ))
        .is_ok());
        let e = validate(&spec(serde_json::json!({"netDevices": {"dummy0": {}}})))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("linux.netDevices") && e.contains("network"),
            "{e}"
        );
        let e = validate(&spec(
            serde_json::json!({"namespaces": ns, "netDevices": {"a/b": {}}}),
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("\"a/b\""), "{e}");
        let e = validate(&spec(serde_json::json!({"namespaces": ns, "netDevices": {"d0": {"name": "a-name-that-is-too-long"}}})))
            .unwrap_err()
            .to_string();
        assert!(e.contains("linux.netDevices.d0.name"), "{e}");
        let e = validate(&spec(serde_json::json!({"namespaces": ns,
            "netDevices": {"d0": {"name": "eth0"}, "d1": {"name": "eth0"}}})))
        .unwrap_err()
        .to_string();
        assert!(e.contains("eth0"), "{e}");
    }
}
