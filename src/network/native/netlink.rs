//! The rtnetlink requests the native bridge driver makes, on top of the runtime's request / ACK
//! loop ([`crate::sys::netlink::Socket`]; raw messages through nix: a dozen message types with
//! fixed layouts, which the `netlink-packet-route` family of crates would bring with their own
//! version churn and nothing the driver needs beyond the encoding). The socket is bound to the
//! network namespace it was opened in, so the container side is driven from a socket opened by
//! a thread that joined the container's namespace (see [`Socket::in_netns`]). [`Msg`] builds
//! the nested attributes of these requests and of the nf_tables messages ([`super::nft`]).

use crate::sys::netlink::{self as sys, align4, attrs, NLM_F_CREATE, NLM_F_EXCL};
use anyhow::{anyhow, Context, Result};
use nix::errno::Errno;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, RawFd};
use std::path::Path;

const NLA_F_NESTED: u16 = 0x8000;

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_SETLINK: u16 = 19;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;

const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MASTER: u16 = 10;
const IFLA_PROTINFO: u16 = 12;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFLA_BRPORT_MODE: u16 = 4;

const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;

const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RTN_UNICAST: u8 = 1;

const IFF_UP: u32 = 0x1;
const AF_BRIDGE: u8 = 7;

/// A netlink message body under construction (a fixed header, then attributes, nested ones
/// with NLA_F_NESTED and their length filled in at [`Msg::end`]).
pub struct Msg {
    pub b: Vec<u8>,
    open: Vec<usize>,
}

impl Msg {
    pub fn new(header: &[u8]) -> Msg {
        Msg {
            b: header.to_vec(),
            open: Vec::new(),
        }
    }

    pub fn attr(&mut self, typ: u16, data: &[u8]) -> &mut Msg {
        self.b
            .extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
        self.b.extend_from_slice(&typ.to_ne_bytes());
        self.b.extend_from_slice(data);
        self.b.resize(align4(self.b.len()), 0);
        self
    }

    /// A NUL-terminated string.
    pub fn str(&mut self, typ: u16, s: &str) -> &mut Msg {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.attr(typ, &v)
    }

    /// A 32-bit number in network byte order (nf_tables' attributes).
    pub fn be32(&mut self, typ: u16, n: u32) -> &mut Msg {
        self.attr(typ, &n.to_be_bytes())
    }

    pub fn begin(&mut self, typ: u16) -> &mut Msg {
        self.open.push(self.b.len());
        self.b.extend_from_slice(&[0, 0]);
        self.b
            .extend_from_slice(&(typ | NLA_F_NESTED).to_ne_bytes());
        self
    }

    /// Raw bytes inside the open attribute (a nested message header).
    pub fn raw(&mut self, data: &[u8]) -> &mut Msg {
        self.b.extend_from_slice(data);
        self
    }

    pub fn end(&mut self) -> &mut Msg {
        let at = self.open.pop().expect("an open attribute");
        let len = (self.b.len() - at) as u16;
        self.b[at..at + 2].copy_from_slice(&len.to_ne_bytes());
        self.b.resize(align4(self.b.len()), 0);
        self
    }
}

fn ifinfomsg(family: u8, index: i32, flags: u32, change: u32) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0] = family;
    b[4..8].copy_from_slice(&index.to_ne_bytes());
    b[8..12].copy_from_slice(&flags.to_ne_bytes());
    b[12..16].copy_from_slice(&change.to_ne_bytes());
    b
}

/// A link as RTM_GETLINK reports it.
#[derive(Debug, Clone)]
pub struct Link {
    pub index: i32,
    pub mac: String,
    pub up: bool,
    pub master: Option<i32>,
    pub kind: Option<String>,
}

/// A NETLINK_ROUTE socket with the driver's requests.
pub struct Socket(sys::Socket);

impl Socket {
    /// A socket in the calling thread's network namespace.
    pub fn new() -> Result<Socket> {
        sys::Socket::new().map(Socket)
    }

    /// A socket in the network namespace `ns` (a pin or /proc/PID/ns/net): opened by a thread
    /// that joins the namespace and ends there, so the caller's namespace never changes.
    pub fn in_netns(ns: &Path) -> Result<Socket> {
        let f = std::fs::File::open(ns).with_context(|| format!("open {}", ns.display()))?;
        let shown = ns.display().to_string();
        std::thread::spawn(move || -> Result<Socket> {
            nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| anyhow!("enter the network namespace {shown}: {}", e.desc()))?;
            Socket::new()
        })
        .join()
        .map_err(|_| {
            anyhow!(
                "the thread opening a netlink socket in {} panicked",
                ns.display()
            )
        })?
    }

    fn request(&mut self, typ: u16, flags: u16, body: &[u8]) -> nix::Result<Vec<Vec<u8>>> {
        self.0.request(typ, flags, body)
    }

    /// The link named `name`, None when there is none.
    pub fn link(&mut self, name: &str) -> Result<Option<Link>> {
        let mut m = Msg::new(&ifinfomsg(0, 0, 0, 0));
        m.str(IFLA_IFNAME, name);
        let r = match self.request(RTM_GETLINK, 0, &m.b) {
            Ok(r) => r,
            Err(Errno::ENODEV) => return Ok(None),
            Err(e) => return Err(anyhow!("look up link {name}: {}", e.desc())),
        };
        let Some(p) = r.first().filter(|p| p.len() >= 16) else {
            return Ok(None);
        };
        let index = i32::from_ne_bytes([p[4], p[5], p[6], p[7]]);
        let flags = u32::from_ne_bytes([p[8], p[9], p[10], p[11]]);
        let mut l = Link {
            index,
            mac: String::new(),
            up: flags & IFF_UP != 0,
            master: None,
            kind: None,
        };
        for (t, d) in attrs(&p[16..]) {
            match t {
                IFLA_ADDRESS => {
                    l.mac = d
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<Vec<_>>()
                        .join(":")
                }
                IFLA_MASTER if d.len() == 4 => {
                    l.master = Some(i32::from_ne_bytes([d[0], d[1], d[2], d[3]]))
                }
                IFLA_LINKINFO => {
                    for (it, id) in attrs(d) {
                        if it == IFLA_INFO_KIND {
                            let s = id.split(|b| *b == 0).next().unwrap_or_default();
                            l.kind = Some(String::from_utf8_lossy(s).into_owned());
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(Some(l))
    }

    /// Create a bridge named `name` (EEXIST when a link of that name exists).
    pub fn new_bridge(&mut self, name: &str) -> nix::Result<()> {
        let mut m = Msg::new(&ifinfomsg(0, 0, 0, 0));
        m.str(IFLA_IFNAME, name)
            .begin(IFLA_LINKINFO)
            .str(IFLA_INFO_KIND, "bridge")
            .end();
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &m.b)
            .map(drop)
    }

    /// Create a veth pair: `host` here, enslaved to `master`, and its peer `peer` directly in
    /// the network namespace of `peer_ns` (so the peer never has a name in this namespace).
    pub fn new_veth(
        &mut self,
        host: &str,
        master: i32,
        peer: &str,
        peer_ns: RawFd,
    ) -> nix::Result<()> {
        let mut m = Msg::new(&ifinfomsg(0, 0, 0, 0));
        m.str(IFLA_IFNAME, host)
            .attr(IFLA_MASTER, &(master as u32).to_ne_bytes())
            .begin(IFLA_LINKINFO)
            .str(IFLA_INFO_KIND, "veth")
            .begin(IFLA_INFO_DATA)
            .begin(VETH_INFO_PEER)
            .raw(&ifinfomsg(0, 0, 0, 0))
            .str(IFLA_IFNAME, peer)
            .attr(IFLA_NET_NS_FD, &(peer_ns as u32).to_ne_bytes())
            .end()
            .end()
            .end();
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &m.b)
            .map(drop)
    }

    /// Set link `index` up.
    pub fn set_up(&mut self, index: i32) -> nix::Result<()> {
        let m = ifinfomsg(0, index, IFF_UP, IFF_UP);
        self.request(RTM_NEWLINK, 0, &m).map(drop)
    }

    /// Turn hairpin mode on for bridge port `index` (a frame may leave by the port it came in).
    pub fn set_hairpin(&mut self, index: i32) -> nix::Result<()> {
        let mut m = Msg::new(&ifinfomsg(AF_BRIDGE, index, 0, 0));
        m.begin(IFLA_PROTINFO).attr(IFLA_BRPORT_MODE, &[1u8]).end();
        self.request(RTM_SETLINK, 0, &m.b).map(drop)
    }

    /// Delete the link named `name`; Ok(false) when there was none.
    pub fn del_link(&mut self, name: &str) -> nix::Result<bool> {
        let mut m = Msg::new(&ifinfomsg(0, 0, 0, 0));
        m.str(IFLA_IFNAME, name);
        match self.request(RTM_DELLINK, 0, &m.b) {
            Ok(_) => Ok(true),
            Err(Errno::ENODEV) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Delete the link named `name` like [`Socket::del_link`], returning once it is gone from
    /// the namespace but without waiting for the kernel to free it. An RTM_DELLINK does its
    /// work under RTNL (the links leave the namespace's list, go down, leave the bridge, lose
    /// their addresses and routes), then, with RTNL released, waits in `netdev_run_todo` for
    /// every pending RCU callback (`rcu_barrier`, a full grace period: 10-15 ms here) and for
    /// the last references before freeing the device, and only then answers. The operation's
    /// keeper (a grandchild holding only what it is given, [`crate::network::keep`]) sends the
    /// request and waits that wait, apart from husk. This socket looks the link up (an
    /// RTNL-free request) until it is gone or the keeper has answered, then deletes the link
    /// itself: that request takes RTNL, so it returns ENODEV only after the keeper's deletion
    /// left RTNL, and it does the whole deletion (and reports its error) when the keeper could
    /// not, was killed or did not run. Either way, on Ok the link and its veth peer are no
    /// longer in any namespace.
    pub fn del_link_unwaited(&mut self, name: &str) -> nix::Result<bool> {
        let index = match self.link(name) {
            Ok(None) => return Ok(false),
            Ok(Some(l)) => l.index,
            Err(_) => return self.del_link(name),
        };
        if let Ok(done) = spawn_del_link(index) {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            let mut fds = [nix::poll::PollFd::new(
                done.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            let step =
                nix::sys::time::TimeSpec::from_duration(std::time::Duration::from_micros(200));
            while std::time::Instant::now() < deadline {
                match nix::poll::ppoll(&mut fds, Some(step), None) {
                    // EOF: the keeper's send returned, or the keeper is gone
                    Ok(n) if n > 0 => break,
                    Ok(_) | Err(Errno::EINTR) => {}
                    Err(_) => break,
                }
                if matches!(self.link(name), Ok(None)) {
                    break;
                }
            }
        }
        // gone: ENODEV once RTNL is free; else the deletion here
        self.del_link(name).map(|_| true)
    }

    /// Add `ip/prefix` to link `index` (EEXIST when it is there).
    pub fn add_addr(&mut self, index: i32, ip: Ipv4Addr, prefix: u8) -> nix::Result<()> {
        let mut h = vec![libc::AF_INET as u8, prefix, 0, 0];
        h.extend_from_slice(&(index as u32).to_ne_bytes());
        let mut m = Msg::new(&h);
        m.attr(IFA_LOCAL, &ip.octets())
            .attr(IFA_ADDRESS, &ip.octets());
        if prefix < 31 {
            let bcast = u32::from(ip) | (u32::MAX >> prefix);
            m.attr(IFA_BROADCAST, &bcast.to_be_bytes());
        }
        self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &m.b)
            .map(drop)
    }

    /// Add `ip/prefix` to link `index` without duplicate address detection (IFA_F_NODAD: usable
    /// at once, not tentative; EEXIST when it is there).
    pub fn add_addr6(&mut self, index: i32, ip: Ipv6Addr, prefix: u8) -> nix::Result<()> {
        const IFA_F_NODAD: u8 = 0x02;
        let mut h = vec![libc::AF_INET6 as u8, prefix, IFA_F_NODAD, 0];
        h.extend_from_slice(&(index as u32).to_ne_bytes());
        let mut m = Msg::new(&h);
        m.attr(IFA_LOCAL, &ip.octets())
            .attr(IFA_ADDRESS, &ip.octets());
        self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &m.b)
            .map(drop)
    }

    /// Add the IPv6 default route via `gw` on link `index`.
    pub fn add_default_route6(&mut self, index: i32, gw: Ipv6Addr) -> nix::Result<()> {
        self.add_default_route_via(libc::AF_INET6, &gw.octets(), index)
    }

    /// Add the default route via `gw` on link `index`.
    pub fn add_default_route(&mut self, index: i32, gw: Ipv4Addr) -> nix::Result<()> {
        self.add_default_route_via(libc::AF_INET, &gw.octets(), index)
    }

    /// The default route of `family` via the gateway address `gw` (4 or 16 bytes) on `index`.
    fn add_default_route_via(&mut self, family: i32, gw: &[u8], index: i32) -> nix::Result<()> {
        // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags(u32)
        let mut h = vec![
            family as u8,
            0,
            0,
            0,
            RT_TABLE_MAIN,
            RTPROT_BOOT,
            0,
            RTN_UNICAST,
        ];
        h.extend_from_slice(&0u32.to_ne_bytes());
        let mut m = Msg::new(&h);
        m.attr(RTA_GATEWAY, gw)
            .attr(RTA_OIF, &(index as u32).to_ne_bytes());
        self.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, &m.b)
            .map(drop)
    }
}

/// Have the operation's keeper ([`crate::network::keep::send_on`]) send an RTM_DELLINK for
/// link `index` on a netlink socket of the calling thread's network namespace. By index, not
/// name: indexes are not handed out again (they are allocated cyclically), so a request that
/// runs late finds nothing rather than a link made since under the same name. Returns the read
/// end of a pipe whose write end only the keeper holds: it reads EOF once the kernel has
/// answered the keeper (or the keeper is gone).
fn spawn_del_link(index: i32) -> nix::Result<std::os::fd::OwnedFd> {
    let s = sys::Socket::new().map_err(|_| Errno::EIO)?;
    // no ACK asked: nothing reads the answer
    let body = ifinfomsg(0, index, 0, 0);
    let req = sys::encode(&[(RTM_DELLINK, sys::NLM_F_REQUEST, &body)], 1);
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    if !crate::network::keep::send_on(s.as_fd(), &req, w.as_fd()) {
        return Err(Errno::ECHILD);
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_attributes_carry_their_length() {
        let mut m = Msg::new(&ifinfomsg(0, 0, 0, 0));
        m.str(IFLA_IFNAME, "veth1")
            .begin(IFLA_LINKINFO)
            .str(IFLA_INFO_KIND, "veth")
            .begin(IFLA_INFO_DATA)
            .attr(7, &[1, 2, 3])
            .end()
            .end();
        assert_eq!(m.b.len() % 4, 0);
        let top = attrs(&m.b[16..]);
        assert_eq!(top.len(), 2);
        assert_eq!(top[0], (IFLA_IFNAME, &b"veth1\0"[..]));
        assert_eq!(top[1].0, IFLA_LINKINFO);
        let inner = attrs(top[1].1);
        assert_eq!(inner[0], (IFLA_INFO_KIND, &b"veth\0"[..]));
        assert_eq!(inner[1].0, IFLA_INFO_DATA);
        assert_eq!(attrs(inner[1].1), vec![(7, &[1u8, 2, 3][..])]);
    }

    /// A veth pair in a network namespace of a thread's own: after `del_link_unwaited` both
    /// ends are gone at once (the kernel's RCU wait left to the keeper), and a second call
    /// finds nothing.
    #[test]
    fn unwaited_delete_returns_with_both_ends_gone() {
        if !nix::unistd::geteuid().is_root() {
            let why = "needs root (a network namespace, a veth pair)";
            assert!(
                std::env::var_os("CI").is_none_or(|v| v != "true"),
                "{why}, and under CI=true a root test that cannot run is a failure"
            );
            crate::testing::skip("unwaited_delete_returns_with_both_ends_gone", why);
            return;
        }
        std::thread::spawn(|| {
            // this thread only: the process's namespace is never touched
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            // the keeper ends with the test (it holds sockets of this namespace)
            let _serial = crate::network::keep::serial();
            let _keeper = crate::network::keep::Scope::enter();
            let mut s = Socket::new().unwrap();
            for round in 0..3 {
                let mut m = Msg::new(&ifinfomsg(0, 0, 0, 0));
                m.str(IFLA_IFNAME, "vethunw0")
                    .begin(IFLA_LINKINFO)
                    .str(IFLA_INFO_KIND, "veth")
                    .begin(IFLA_INFO_DATA)
                    .begin(VETH_INFO_PEER)
                    .raw(&ifinfomsg(0, 0, 0, 0))
                    .str(IFLA_IFNAME, "vethunw1")
                    .end()
                    .end()
                    .end();
                s.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &m.b)
                    .unwrap();
                let l = s.link("vethunw0").unwrap().unwrap();
                s.set_up(l.index).unwrap();
                assert_eq!(s.del_link_unwaited("vethunw0"), Ok(true), "round {round}");
                assert!(s.link("vethunw0").unwrap().is_none(), "round {round}");
                assert!(s.link("vethunw1").unwrap().is_none(), "round {round}");
                assert_eq!(s.del_link_unwaited("vethunw0"), Ok(false), "round {round}");
            }
        })
        .join()
        .unwrap();
    }

    #[test]
    fn loopback_is_found_and_a_missing_link_is_none() {
        let mut s = Socket::new().unwrap();
        let lo = s.link("lo").unwrap().unwrap();
        assert!(lo.index > 0);
        assert!(s.link("no-such-dev-x").unwrap().is_none());
    }
}
