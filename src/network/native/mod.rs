//! The native driver: husk's own bridge networks attached without running a plugin, as podman's
//! netavark does. It does what the list husk writes (`bridge` + `host-local` + `portmap` +
//! `firewall`, and `loopback`) would do, in-process:
//! * the bridge (created when missing, the gateway address on it, up; `ip_forward` on);
//! * a veth pair: the host end (`vethHASH`, on the bridge, hairpin, up) and its peer made
//!   directly in the container's namespace under the interface name; there `lo` up, the address,
//!   the default route via the gateway (rtnetlink, [`netlink`]);
//! * the address from host-local's own files ([`ipam`]), so either way of attaching sees the
//!   other's allocations; on a dual-stack network an IPv6 one too (its second range set), with
//!   the IPv6 gateway on the bridge and the IPv6 default route;
//! * masquerade and published ports in an nftables table of the attachment's own (and on a
//!   dual-stack network one of family ip6 for IPv6's), one nf_tables batch over netlink each
//!   way ([`nft`]; no `nft` program runs);
//! * a CNI result of the plugins' shape (interfaces, ips, routes, dns) for the record.
//!
//! Every name (veth, table, allocation owner) follows from the container id, the network and the
//! interface name, so [`del`] needs nothing but the record and may run any number of times: gc
//! after a husk killed at any point of [`add`] removes whatever had been made.

pub mod ipam;
pub mod netlink;
pub mod nft;

use super::ports::PortMapping;
use super::{Ipv4Net, Ipv6Net};
use anyhow::{anyhow, bail, Context, Result};
use netlink::Socket;
use serde_json::{json, Value};
use sha2::Digest;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// What a husk-written conflist asks for, when the native driver can do all of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub bridge: String,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub masquerade: bool,
    pub hairpin: bool,
    pub default_route: bool,
    /// host-local's `dataDir`.
    pub data_dir: PathBuf,
    /// A dual-stack network's IPv6 subnet and gateway (its second range set).
    pub v6: Option<(Ipv6Net, Ipv6Addr)>,
}

fn only_keys(v: &Value, keys: &[&str]) -> bool {
    v.as_object()
        .is_some_and(|o| o.keys().all(|k| keys.contains(&k.as_str())))
}

/// The plan of `conflist` when it is exactly the list husk writes (`network create`): a bridge
/// that is the gateway, host-local with one IPv4 range and at most a default route, portmap and
/// firewall, and nothing else. Any other list, or any key husk does not write, is None: such a
/// list runs through its plugins.
pub fn plan(conflist: &Value) -> Option<Plan> {
    let ps = conflist["plugins"].as_array()?;
    let [br, pm, fw] = ps.as_slice() else {
        return None;
    };
    if *pm != json!({"type": "portmap", "capabilities": {"portMappings": true}})
        || *fw != json!({"type": "firewall"})
    {
        return None;
    }
    if br["type"] != "bridge"
        || !only_keys(
            br,
            &[
                "type",
                "bridge",
                "isGateway",
                "ipMasq",
                "hairpinMode",
                "ipam",
            ],
        )
        || br["isGateway"] != true
    {
        return None;
    }
    let bridge = br["bridge"].as_str()?;
    if !crate::sys::netlink::valid_ifname(bridge) {
        return None;
    }
    let masquerade = match &br["ipMasq"] {
        Value::Null => false,
        v => v.as_bool()?,
    };
    let hairpin = match &br["hairpinMode"] {
        Value::Null => false,
        v => v.as_bool()?,
    };
    let ipam = &br["ipam"];
    if ipam["type"] != "host-local" || !only_keys(ipam, &["type", "ranges", "dataDir", "routes"]) {
        return None;
    }
    let (set, set6) = match ipam["ranges"].as_array()?.as_slice() {
        [set] => (set, None),
        [set, set6] => (set, Some(set6)),
        _ => return None,
    };
    let single = |set: &Value| -> Option<Value> {
        let [range] = set.as_array()?.as_slice() else {
            return None;
        };
        only_keys(range, &["subnet", "gateway"]).then(|| range.clone())
    };
    let range = single(set)?;
    let v6 = match set6 {
        None => None,
        Some(set6) => {
            let r = single(set6)?;
            let s6 = Ipv6Net::parse(r["subnet"].as_str()?).ok()?;
            let g6: Ipv6Addr = match &r["gateway"] {
                Value::Null => Ipv6Addr::from(u128::from(s6.network()) + 1),
                g => g.as_str()?.parse().ok()?,
            };
            if !s6.contains(g6) || g6 == s6.network() {
                return None;
            }
            Some((s6, g6))
        }
    };
    let default_route = match &ipam["routes"] {
        Value::Null => false,
        r if *r == json!([{"dst": "0.0.0.0/0"}]) => true,
        r if v6.is_some() && *r == json!([{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]) => true,
        _ => return None,
    };
    let subnet = Ipv4Net::parse(range["subnet"].as_str()?).ok()?;
    if subnet.prefix > 30 {
        return None;
    }
    let gateway = match &range["gateway"] {
        Value::Null => Ipv4Addr::from(u32::from(subnet.network()) + 1),
        g => g.as_str()?.parse().ok()?,
    };
    if !subnet.contains(gateway) || gateway == subnet.network() || gateway == subnet.broadcast() {
        return None;
    }
    let data_dir = match &ipam["dataDir"] {
        Value::Null => PathBuf::from("/var/lib/cni/networks"),
        d => PathBuf::from(d.as_str()?),
    };
    Some(Plan {
        bridge: bridge.to_string(),
        subnet,
        gateway,
        masquerade,
        hairpin,
        default_route,
        data_dir,
        v6,
    })
}

/// What one attachment is: the record's fields the driver reads.
pub struct Target<'a> {
    pub network: &'a str,
    pub container: &'a str,
    pub ifname: &'a str,
    pub netns: &'a Path,
    pub ports: &'a [PortMapping],
    pub cni_version: &'a str,
}

impl Target<'_> {
    fn hash(&self) -> String {
        let mut h = sha2::Sha256::new();
        h.update(self.container.as_bytes());
        h.update([0]);
        h.update(self.network.as_bytes());
        h.update([0]);
        h.update(self.ifname.as_bytes());
        h.finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    }

    /// The host end of the veth (12 bytes, like the bridge plugin's `vethXXXXXXXX`).
    pub fn host_veth(&self) -> String {
        format!("veth{}", &self.hash()[..8])
    }

    /// The attachment's nftables table.
    pub fn table(&self) -> String {
        format!("husk-{}", &self.hash()[..16])
    }

    fn pool(&self, p: &Plan) -> ipam::Pool {
        ipam::Pool {
            dir: p.data_dir.join(self.network),
            subnet: ipam::Subnet::V4(p.subnet),
            gateway: IpAddr::V4(p.gateway),
            set: 0,
        }
    }

    /// The IPv6 range set of a dual-stack network (same directory, set 1).
    fn pool6(&self, p: &Plan) -> Option<ipam::Pool> {
        p.v6.map(|(s, g)| ipam::Pool {
            dir: p.data_dir.join(self.network),
            subnet: ipam::Subnet::V6(s),
            gateway: IpAddr::V6(g),
            set: 1,
        })
    }

    fn rules<'a>(
        &'a self,
        p: &Plan,
        table: &'a str,
        ip: Ipv4Addr,
        ip6: Option<Ipv6Addr>,
    ) -> nft::Rules<'a> {
        nft::Rules {
            table,
            ip,
            subnet: p.subnet,
            masquerade: p.masquerade,
            ports: self.ports,
            v6: p.v6.map(|(s, _)| (ip6.unwrap_or(Ipv6Addr::UNSPECIFIED), s)),
        }
    }
}

fn sysctl(path: &str, value: &str) -> Result<()> {
    if std::fs::read_to_string(path).is_ok_and(|v| v.trim() == value) {
        return Ok(());
    }
    std::fs::write(path, value).with_context(|| format!("set {path} to {value}"))
}

fn nl(what: String) -> impl FnOnce(nix::errno::Errno) -> anyhow::Error {
    move |e| anyhow!("{what}: {}", e.desc())
}

/// The bridge, made when missing, with the gateway address, up.
fn ensure_bridge(s: &mut Socket, network: &str, p: &Plan) -> Result<netlink::Link> {
    let b = &p.bridge;
    let l = match s.link(b)? {
        Some(l) => l,
        None => {
            match s.new_bridge(b) {
                Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                Err(e) => bail!("network {network}: create bridge {b}: {}", e.desc()),
            }
            s.link(b)?
                .with_context(|| format!("network {network}: bridge {b} vanished"))?
        }
    };
    if l.kind.as_deref() != Some("bridge") {
        bail!(
            "network {network}: link {b} exists and is not a bridge ({})",
            l.kind.as_deref().unwrap_or("no kind")
        );
    }
    match s.add_addr(l.index, p.gateway, p.subnet.prefix) {
        Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
        Err(e) => bail!(
            "network {network}: add {}/{} to bridge {b}: {}",
            p.gateway,
            p.subnet.prefix,
            e.desc()
        ),
    }
    if let Some((s6, g6)) = p.v6 {
        match s.add_addr6(l.index, g6, s6.prefix) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => bail!(
                "network {network}: add {g6}/{} to bridge {b}: {}",
                s6.prefix,
                e.desc()
            ),
        }
    }
    if !l.up {
        s.set_up(l.index)
            .map_err(nl(format!("network {network}: set bridge {b} up")))?;
    }
    Ok(l)
}

/// Attach: everything [`del`] removes, in the calling (host) network namespace and in `t.netns`.
/// Returns the CNI result. On an error what was made stays for the caller's [`del`].
pub fn add(p: &Plan, t: &Target) -> Result<Value> {
    let net = t.network;
    let table = t.table();
    let ip = match t.pool(p).allocate(net, t.container, t.ifname)? {
        IpAddr::V4(a) => a,
        IpAddr::V6(a) => bail!("network {net}: IPv6 address {a} from its IPv4 range"),
    };
    let ip6 = match t.pool6(p) {
        None => None,
        Some(p6) => match p6.allocate(net, t.container, t.ifname)? {
            IpAddr::V6(a) => Some(a),
            IpAddr::V4(a) => bail!("network {net}: IPv4 address {a} from its IPv6 range"),
        },
    };
    crate::fault::step("network attach: address allocated");
    let rules = t.rules(p, &table, ip, ip6);
    let batch = match rules.empty() {
        true => None,
        false => Some(
            rules
                .add_batch()
                .with_context(|| format!("network {net}"))?,
        ),
    };
    // the rules need only the address: the kernel commits them (waiting for RCU grace periods)
    // on a thread of this namespace while the links are made
    let (links, ruled) = std::thread::scope(|s| {
        let ruled = batch.as_ref().map(|b| {
            s.spawn(move || {
                let r = nft::apply(net, b);
                crate::fault::step("network attach: rules written");
                r
            })
        });
        let links = add_links(p, t, ip, ip6);
        (links, ruled.map_or(Ok(()), join))
    });
    let (br, hl, cl) = links?;
    ruled?;
    let hv = t.host_veth();
    let mut r = json!({
        "cniVersion": t.cni_version,
        "interfaces": [
            {"name": p.bridge, "mac": br.mac},
            {"name": hv, "mac": hl.mac},
            {"name": t.ifname, "mac": cl.mac, "sandbox": t.netns},
        ],
        "ips": [{"interface": 2, "address": format!("{ip}/{}", p.subnet.prefix),
                 "gateway": p.gateway.to_string()}],
        "dns": {},
    });
    if let (Some(a), Some((s6, g6))) = (ip6, p.v6) {
        r["ips"]
            .as_array_mut()
            .expect("ips")
            .push(json!({"interface": 2,
            "address": format!("{a}/{}", s6.prefix), "gateway": g6.to_string()}));
    }
    if p.default_route {
        r["routes"] = match p.v6 {
            None => json!([{"dst": "0.0.0.0/0"}]),
            Some(_) => json!([{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]),
        };
    }
    Ok(r)
}

/// The outcome of a scoped thread's work (a panic there is an error here).
fn join(h: std::thread::ScopedJoinHandle<'_, Result<()>>) -> Result<()> {
    h.join()
        .unwrap_or_else(|_| Err(anyhow!("the thread writing the nftables rules panicked")))
}

/// The bridge, the veth pair and the container side: (bridge, host end, container end).
fn add_links(
    p: &Plan,
    t: &Target,
    ip: Ipv4Addr,
    ip6: Option<Ipv6Addr>,
) -> Result<(netlink::Link, netlink::Link, netlink::Link)> {
    let net = t.network;
    let mut host = Socket::new()?;
    let br = ensure_bridge(&mut host, net, p)?;
    sysctl("/proc/sys/net/ipv4/ip_forward", "1").with_context(|| format!("network {net}"))?;
    if p.v6.is_some() {
        // as the bridge plugin with an IPv6 range: forwarding on in this namespace
        sysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1")
            .with_context(|| format!("network {net}"))?;
    }
    if !t.ports.is_empty() {
        sysctl(
            &format!("/proc/sys/net/ipv4/conf/{}/route_localnet", p.bridge),
            "1",
        )
        .with_context(|| format!("network {net}"))?;
    }
    let hv = t.host_veth();
    // a veth of that name is this attachment's, left by a husk killed mid-attach
    host.del_link(&hv)
        .map_err(nl(format!("network {net}: remove the stale {hv}")))?;
    let ns = std::fs::File::open(t.netns).with_context(|| format!("open {}", t.netns.display()))?;
    host.new_veth(&hv, br.index, t.ifname, ns.as_raw_fd())
        .map_err(|e| match e {
            nix::errno::Errno::EEXIST => anyhow!(
                "network {net}: container {} already has an interface {}",
                t.container,
                t.ifname
            ),
            e => anyhow!(
                "network {net}: create veth {hv} / {}: {}",
                t.ifname,
                e.desc()
            ),
        })?;
    let hl = host
        .link(&hv)?
        .with_context(|| format!("network {net}: veth {hv} vanished"))?;
    if p.hairpin {
        host.set_hairpin(hl.index)
            .map_err(nl(format!("network {net}: hairpin mode on {hv}")))?;
    }
    host.set_up(hl.index)
        .map_err(nl(format!("network {net}: set {hv} up")))?;
    crate::fault::step("network attach: veth made");

    let mut c = Socket::in_netns(t.netns)?;
    let lo = c
        .link("lo")?
        .with_context(|| format!("container {}: no lo", t.container))?;
    if !lo.up {
        c.set_up(lo.index)
            .map_err(nl(format!("container {}: set lo up", t.container)))?;
    }
    let cl = c.link(t.ifname)?.with_context(|| {
        format!(
            "network {net}: {} did not appear in container {}",
            t.ifname, t.container
        )
    })?;
    c.add_addr(cl.index, ip, p.subnet.prefix)
        .map_err(nl(format!(
            "network {net}: add {ip}/{} to {} of container {}",
            p.subnet.prefix, t.ifname, t.container
        )))?;
    if let (Some(a), Some((s6, _))) = (ip6, p.v6) {
        // no duplicate address detection: the address is husk's to give, and usable at once
        c.add_addr6(cl.index, a, s6.prefix).map_err(nl(format!(
            "network {net}: add {a}/{} to {} of container {}",
            s6.prefix, t.ifname, t.container
        )))?;
    }
    c.set_up(cl.index).map_err(nl(format!(
        "network {net}: set {} of container {} up",
        t.ifname, t.container
    )))?;
    if p.default_route {
        // a container already on another network keeps that network's default route (Docker
        // gives a container one gateway); this network's subnet is reached through its own
        // link all the same
        match c.add_default_route(cl.index, p.gateway) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => {
                return Err(nl(format!(
                    "network {net}: default route via {} in container {}",
                    p.gateway, t.container
                ))(e))
            }
        }
        if let Some((_, g6)) = p.v6 {
            match c.add_default_route6(cl.index, g6) {
                Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                Err(e) => {
                    return Err(nl(format!(
                        "network {net}: default route via {g6} in container {}",
                        t.container
                    ))(e))
                }
            }
        }
    }
    crate::fault::step("network attach: container side made");
    Ok((br, hl, cl))
}

/// Detach: the table, the veth (its peer goes with it) and the address allocation, each
/// whether or not it exists. The bridge stays, as the bridge plugin leaves it.
pub fn del(p: &Plan, t: &Target) -> Result<()> {
    let net = t.network;
    let table = t.table();
    let mut first: Option<anyhow::Error> = None;
    let batch = match t.rules(p, &table, Ipv4Addr::UNSPECIFIED, None).empty() {
        true => None,
        false => {
            let mut b = nft::delete_batch(&table);
            if p.v6.is_some() {
                b.extend(nft::delete_batch6(&table));
            }
            Some(b)
        }
    };
    let hv = t.host_veth();
    // the veth first, then the table: the veth's unregistering (under RTNL, which the
    // deletion here waits for) takes nf_tables' commit mutex in nf_tables' netdev notifier,
    // and the last close of the socket that deleted the table holds that mutex for an RCU
    // grace period (in the keeper, see nft::apply): the other order stalls the veth behind
    // it. The veth's own wait for RCU callbacks is left to the keeper too.
    let removed = Socket::new().and_then(|mut s| {
        s.del_link_unwaited(&hv)
            .map_err(nl(format!("network {net}: delete veth {hv}")))
    });
    let unruled = batch.as_ref().map_or(Ok(()), |b| nft::apply(net, b));
    if let Err(e) = unruled {
        first.get_or_insert(e);
    }
    if let Err(e) = removed {
        first.get_or_insert(e);
    }
    if let Err(e) = t.pool(p).release(t.container, t.ifname) {
        first.get_or_insert(e);
    }
    match first {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Check: the veth is on the bridge, the address is still allocated to the attachment, the
/// table is there when it should be.
pub fn check(p: &Plan, t: &Target, result: &Value) -> Result<()> {
    let net = t.network;
    let hv = t.host_veth();
    let mut s = Socket::new()?;
    let br = s
        .link(&p.bridge)?
        .with_context(|| format!("network {net}: bridge {} is missing", p.bridge))?;
    let l = s
        .link(&hv)?
        .with_context(|| format!("network {net}: veth {hv} is missing"))?;
    if l.master != Some(br.index) {
        bail!("network {net}: veth {hv} is not on bridge {}", p.bridge);
    }
    let want = result["ips"][0]["address"]
        .as_str()
        .and_then(|a| a.split('/').next())
        .and_then(|a| a.parse::<Ipv4Addr>().ok())
        .with_context(|| format!("network {net}: the recorded result has no address"))?;
    match t.pool(p).holds(t.container, t.ifname)? {
        Some(ip) if ip == IpAddr::V4(want) => {}
        _ => bail!(
            "network {net}: {want} is no longer allocated to container {}",
            t.container
        ),
    }
    let table = t.table();
    if !t.rules(p, &table, want, None).empty() && !nft::exists(&table)? {
        bail!("network {net}: nftables table ip {table} is missing");
    }
    let wants6 = p.masquerade || t.ports.iter().any(nft::dnat6);
    if p.v6.is_some() && wants6 && !nft::exists6(&table)? {
        bail!("network {net}: nftables table ip6 {table} is missing");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn husk_list(internal: bool) -> Value {
        let mut ipam = json!({"type": "host-local",
            "ranges": [[{"subnet": "10.89.0.0/24", "gateway": "10.89.0.1"}]],
            "dataDir": "/run/husk-network/ipam"});
        if !internal {
            ipam["routes"] = json!([{"dst": "0.0.0.0/0"}]);
        }
        json!({"cniVersion": "1.0.0", "name": "n", "plugins": [
            {"type": "bridge", "bridge": "husk0", "isGateway": true, "ipMasq": !internal,
             "hairpinMode": true, "ipam": ipam},
            {"type": "portmap", "capabilities": {"portMappings": true}},
            {"type": "firewall"}]})
    }

    #[test]
    fn husk_lists_are_native_and_others_are_not() {
        let p = plan(&husk_list(false)).unwrap();
        assert_eq!(p.bridge, "husk0");
        assert_eq!(p.gateway, Ipv4Addr::new(10, 89, 0, 1));
        assert!(p.masquerade && p.hairpin && p.default_route);
        let p = plan(&husk_list(true)).unwrap();
        assert!(!p.masquerade && !p.default_route);
        type Edit = Box<dyn Fn(&mut Value)>;
        let edits: Vec<Edit> = vec![
            Box::new(|v| v["plugins"][0]["mtu"] = json!(9000)),
            Box::new(|v| v["plugins"][0]["isGateway"] = json!(false)),
            Box::new(|v| v["plugins"][0]["ipam"]["type"] = json!("dhcp")),
            Box::new(|v| {
                v["plugins"][0]["ipam"]["ranges"][0][0]["rangeStart"] = json!("10.89.0.9")
            }),
            Box::new(|v| v["plugins"][0]["ipam"]["routes"] = json!([{"dst": "10.0.0.0/8"}])),
            Box::new(|v| v["plugins"][1]["snat"] = json!(false)),
            Box::new(|v| {
                v["plugins"].as_array_mut().unwrap().pop();
            }),
            Box::new(|v| {
                v["plugins"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"type": "tuning"}))
            }),
            Box::new(|v| v["plugins"][0]["ipam"]["ranges"][0][0]["gateway"] = json!("10.90.0.1")),
        ];
        for (i, e) in edits.iter().enumerate() {
            let mut v = husk_list(false);
            e(&mut v);
            assert!(plan(&v).is_none(), "edit {i}: {v}");
        }
        // dual stack: a second range set of IPv6, the ::/0 route beside 0.0.0.0/0
        let dual = |v: &mut Value| {
            v["plugins"][0]["ipam"]["ranges"]
                .as_array_mut()
                .unwrap()
                .push(json!([{"subnet": "fd00:89::/64", "gateway": "fd00:89::1"}]));
            v["plugins"][0]["ipam"]["routes"] = json!([{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]);
        };
        let mut v = husk_list(false);
        dual(&mut v);
        let p = plan(&v).unwrap();
        let (s6, g6) = p.v6.unwrap();
        assert_eq!(s6.to_string(), "fd00:89::/64");
        assert_eq!(g6, "fd00:89::1".parse::<Ipv6Addr>().unwrap());
        assert!(p.default_route);
        let edits6: Vec<Edit> = vec![
            // the IPv6 route without an IPv6 range, a range the driver does not do, the
            // families swapped, a gateway outside the subnet
            Box::new(|v| {
                v["plugins"][0]["ipam"]["ranges"]
                    .as_array_mut()
                    .unwrap()
                    .truncate(1)
            }),
            Box::new(|v| {
                v["plugins"][0]["ipam"]["ranges"][1][0]["rangeStart"] = json!("fd00:89::9")
            }),
            Box::new(|v| {
                v["plugins"][0]["ipam"]["ranges"]
                    .as_array_mut()
                    .unwrap()
                    .swap(0, 1)
            }),
            Box::new(|v| v["plugins"][0]["ipam"]["ranges"][1][0]["gateway"] = json!("fd00:90::1")),
        ];
        for (i, e) in edits6.iter().enumerate() {
            let mut v = husk_list(false);
            dual(&mut v);
            e(&mut v);
            assert!(plan(&v).is_none(), "dual-stack edit {i}: {v}");
        }
    }

    #[test]
    fn names_follow_from_the_attachment() {
        let t = Target {
            network: "n",
            container: "c1",
            ifname: "eth0",
            netns: Path::new("/x"),
            ports: &[],
            cni_version: "1.0.0",
        };
        let hv = t.host_veth();
        assert_eq!(hv.len(), 12);
        assert!(crate::sys::netlink::valid_ifname(&hv));
        assert_eq!(hv, t.host_veth());
        let other = Target {
            container: "c2",
            ..t
        };
        assert_ne!(other.host_veth(), hv);
        assert_ne!(other.table(), t.table());
    }
}
