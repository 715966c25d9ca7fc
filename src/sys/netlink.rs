//! A minimal rtnetlink client (NETLINK_ROUTE over a nix socket): find a link by name, list its
//! addresses, set it up or down, move and rename it into another network namespace, add an
//! address. Only what `linux.netDevices` needs; every request asks for an ACK and errors carry
//! the kernel's errno. The request / ACK loop ([`Socket::exchange`]: several messages in one
//! datagram, one answer awaited per message asking for it) is also the network companion's
//! (`network::native`: its own rtnetlink requests and nf_tables batches on a NETLINK_NETFILTER
//! socket); their encodings live there, not here.

use anyhow::{anyhow, Result};
use nix::errno::Errno;
pub use nix::sys::socket::SockProtocol;
use nix::sys::socket::{
    bind, recv, send, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockType,
};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

// <linux/netlink.h>
pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_EXCL: u16 = 0x200;
pub const NLM_F_CREATE: u16 = 0x400;
pub const NLM_F_APPEND: u16 = 0x800;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 0x2;
const NLMSG_DONE: u16 = 0x3;
// <linux/rtnetlink.h>
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
// <linux/if_link.h>
const IFLA_IFNAME: u16 = 3;
const IFLA_NET_NS_FD: u16 = 28;
// <linux/if_addr.h>
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const IFA_FLAGS: u16 = 8;
pub const IFA_F_PERMANENT: u32 = 0x80;
pub const RT_SCOPE_UNIVERSE: u8 = 0;
const IFF_UP: u32 = 0x1;

pub const NLMSG_HDRLEN: usize = 16;

/// An address of a link, as RTM_GETADDR reports it (the attributes kept to add it again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    pub family: u8,
    pub prefixlen: u8,
    pub scope: u8,
    pub flags: u32,
    pub local: Option<Vec<u8>>,
    pub address: Option<Vec<u8>>,
    pub broadcast: Option<Vec<u8>>,
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ip = self.local.as_ref().or(self.address.as_ref());
        match ip.map(|b| b.as_slice()) {
            Some(&[a, b, c, d]) => write!(
                f,
                "{}/{}",
                std::net::Ipv4Addr::new(a, b, c, d),
                self.prefixlen
            ),
            Some(b) if b.len() == 16 => {
                let mut o = [0u8; 16];
                o.copy_from_slice(b);
                write!(f, "{}/{}", std::net::Ipv6Addr::from(o), self.prefixlen)
            }
            _ => write!(f, "?/{}", self.prefixlen),
        }
    }
}

pub struct Socket {
    fd: OwnedFd,
    seq: u32,
}

impl std::os::fd::AsFd for Socket {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

pub fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn attr(buf: &mut Vec<u8>, typ: u16, data: &[u8]) {
    let len = 4 + data.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&typ.to_ne_bytes());
    buf.extend_from_slice(data);
    buf.resize(align4(buf.len()), 0);
}

fn ifinfomsg(index: i32, flags: u32, change: u32) -> Vec<u8> {
    let mut b = vec![0u8; 16]; // family AF_UNSPEC, pad, type 0
    b[4..8].copy_from_slice(&index.to_ne_bytes());
    b[8..12].copy_from_slice(&flags.to_ne_bytes());
    b[12..16].copy_from_slice(&change.to_ne_bytes());
    b
}

/// (type, payload) of each attribute in `b`.
pub fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let typ = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
        if len < 4 || len > b.len() {
            break;
        }
        out.push((typ, &b[4..len]));
        b = &b[align4(len).min(b.len())..];
    }
    out
}

/// Encode `msgs` (type, flags, body) as one datagram of netlink messages numbered from `seq`
/// (each header: length, type, flags, sequence number, port 0; each message padded to 4 bytes).
pub fn encode(msgs: &[(u16, u16, &[u8])], seq: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(msgs.iter().map(|x| NLMSG_HDRLEN + align4(x.2.len())).sum());
    for (i, (typ, flags, body)) in msgs.iter().enumerate() {
        m.extend_from_slice(&((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&typ.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&seq.wrapping_add(i as u32).to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(body);
        m.resize(align4(m.len()), 0);
    }
    m
}

impl Socket {
    /// A NETLINK_ROUTE socket in the calling thread's network namespace (close-on-exec).
    pub fn new() -> Result<Socket> {
        Socket::open(SockProtocol::NetlinkRoute)
    }

    /// A netlink socket of family `proto` in the calling thread's network namespace.
    pub fn open(proto: SockProtocol) -> Result<Socket> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            proto,
        )
        .map_err(|e| anyhow!("netlink socket: {}", e.desc()))?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))
            .map_err(|e| anyhow!("netlink bind: {}", e.desc()))?;
        Ok(Socket { fd, seq: 0 })
    }

    /// Send one request asking for an ACK; return the payloads of the replies (for a dump)
    /// after the ACK / DONE.
    pub fn request(&mut self, typ: u16, flags: u16, body: &[u8]) -> nix::Result<Vec<Vec<u8>>> {
        let mut replies = Vec::new();
        self.exchange(&[(typ, flags | NLM_F_ACK, body)], &mut replies)
            .map_err(|(_, e)| e)?;
        Ok(replies)
    }

    /// Send `msgs` in one datagram (NLM_F_REQUEST added to each) and read until every message
    /// that asks for an ACK is answered (ACK or DONE); the payloads of other replies to them
    /// go to `replies`. The first error the kernel reports for any of them ends the exchange
    /// as (index of the message, errno).
    pub fn exchange(
        &mut self,
        msgs: &[(u16, u16, &[u8])],
        replies: &mut Vec<Vec<u8>>,
    ) -> Result<(), (usize, Errno)> {
        let first = self.seq.wrapping_add(1);
        self.seq = self.seq.wrapping_add(msgs.len() as u32);
        let msgs: Vec<(u16, u16, &[u8])> = msgs
            .iter()
            .map(|&(t, f, b)| (t, f | NLM_F_REQUEST, b))
            .collect();
        let mut pending: Vec<bool> = msgs.iter().map(|m| m.1 & NLM_F_ACK != 0).collect();
        let mut left = pending.iter().filter(|p| **p).count();
        send(
            self.fd.as_raw_fd(),
            &encode(&msgs, first),
            MsgFlags::empty(),
        )
        .map_err(|e| (0, e))?;
        let mut buf = vec![0u8; 64 * 1024];
        while left > 0 {
            let n = recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()).map_err(|e| (0, e))?;
            let mut b = &buf[..n];
            while b.len() >= NLMSG_HDRLEN {
                let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
                let mtyp = u16::from_ne_bytes([b[4], b[5]]);
                let mseq = u32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
                if len < NLMSG_HDRLEN || len > b.len() {
                    return Err((0, Errno::EBADMSG));
                }
                let payload = &b[NLMSG_HDRLEN..len];
                let i = mseq.wrapping_sub(first) as usize;
                if i < msgs.len() {
                    let answered = match mtyp {
                        NLMSG_ERROR => {
                            let code = payload
                                .get(..4)
                                .map(|c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
                                .unwrap_or(-libc::EBADMSG);
                            if code != 0 {
                                return Err((i, Errno::from_raw(-code)));
                            }
                            true
                        }
                        NLMSG_DONE => true,
                        _ => {
                            replies.push(payload.to_vec());
                            false
                        }
                    };
                    if answered && pending[i] {
                        pending[i] = false;
                        left -= 1;
                    }
                }
                b = &b[align4(len).min(b.len())..];
            }
        }
        Ok(())
    }

    /// The index of the link named `name`.
    pub fn link_index(&mut self, name: &str) -> nix::Result<i32> {
        let mut body = ifinfomsg(0, 0, 0);
        attr(&mut body, IFLA_IFNAME, &nul_terminated(name));
        let r = self.request(RTM_GETLINK, 0, &body)?;
        let first = r.first().ok_or(nix::errno::Errno::ENODEV)?;
        let idx = first.get(4..8).ok_or(nix::errno::Errno::EBADMSG)?;
        Ok(i32::from_ne_bytes([idx[0], idx[1], idx[2], idx[3]]))
    }

    /// Every address of link `index`.
    pub fn addresses(&mut self, index: i32) -> nix::Result<Vec<Addr>> {
        let body = vec![0u8; 8]; // ifaddrmsg, AF_UNSPEC: every family
        let mut out = Vec::new();
        for p in self.request(RTM_GETADDR, NLM_F_DUMP, &body)? {
            if p.len() < 8 {
                continue;
            }
            let idx = u32::from_ne_bytes([p[4], p[5], p[6], p[7]]) as i32;
            if idx != index {
                continue;
            }
            let mut a = Addr {
                family: p[0],
                prefixlen: p[1],
                flags: p[2] as u32,
                scope: p[3],
                local: None,
                address: None,
                broadcast: None,
            };
            for (t, d) in attrs(&p[8..]) {
                match t {
                    IFA_LOCAL => a.local = Some(d.to_vec()),
                    IFA_ADDRESS => a.address = Some(d.to_vec()),
                    IFA_BROADCAST => a.broadcast = Some(d.to_vec()),
                    IFA_FLAGS if d.len() == 4 => {
                        a.flags = u32::from_ne_bytes([d[0], d[1], d[2], d[3]])
                    }
                    _ => {}
                }
            }
            out.push(a);
        }
        Ok(out)
    }

    /// Set link `index` up or down.
    pub fn set_up(&mut self, index: i32, up: bool) -> nix::Result<()> {
        let body = ifinfomsg(index, if up { IFF_UP } else { 0 }, IFF_UP);
        self.request(RTM_NEWLINK, 0, &body).map(drop)
    }

    /// Move link `index` into the network namespace `netns` under the name `name`, in one
    /// request (no window in which the name could clash in either namespace).
    pub fn move_to_netns(&mut self, index: i32, name: &str, netns: RawFd) -> nix::Result<()> {
        let mut body = ifinfomsg(index, 0, 0);
        attr(&mut body, IFLA_IFNAME, &nul_terminated(name));
        attr(&mut body, IFLA_NET_NS_FD, &(netns as u32).to_ne_bytes());
        self.request(RTM_NEWLINK, 0, &body).map(drop)
    }

    /// Delete link `index` (a virtual device: a bridge, a veth and its peer).
    pub fn del_link(&mut self, index: i32) -> nix::Result<()> {
        let body = ifinfomsg(index, 0, 0);
        self.request(RTM_DELLINK, 0, &body).map(drop)
    }

    /// Add `a` to link `index`.
    pub fn add_address(&mut self, index: i32, a: &Addr) -> nix::Result<()> {
        let mut body = vec![a.family, a.prefixlen, 0, a.scope];
        body.extend_from_slice(&(index as u32).to_ne_bytes());
        if let Some(l) = &a.local {
            attr(&mut body, IFA_LOCAL, l);
        }
        if let Some(x) = &a.address {
            attr(&mut body, IFA_ADDRESS, x);
        }
        if let Some(b) = &a.broadcast {
            attr(&mut body, IFA_BROADCAST, b);
        }
        self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &body)
            .map(drop)
    }
}

fn nul_terminated(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// The kernel's rule for an interface name (`dev_valid_name`): 1 to 15 bytes, not `.` or `..`,
/// no `/`, `:` or whitespace.
pub fn valid_ifname(n: &str) -> bool {
    !n.is_empty()
        && n.len() < 16
        && n != "."
        && n != ".."
        && !n
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0)
}

/// Errors of these requests as text.
pub fn errtext(e: nix::errno::Errno) -> String {
    e.desc().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_round_trip() {
        let mut b = Vec::new();
        attr(&mut b, IFLA_IFNAME, b"eth0\0");
        attr(&mut b, IFLA_NET_NS_FD, &7u32.to_ne_bytes());
        assert_eq!(b.len() % 4, 0);
        let a = attrs(&b);
        assert_eq!(a.len(), 2);
        assert_eq!(a[0], (IFLA_IFNAME, &b"eth0\0"[..]));
        assert_eq!(a[1].1, &7u32.to_ne_bytes()[..]);
        // a truncated attribute ends the walk instead of reading past the buffer
        assert!(attrs(&[9, 0, 1, 0, 1]).is_empty());
    }

    #[test]
    fn interface_names() {
        for ok in ["eth0", "dummy0", "a", "x-y_z.1", "fifteen-chars-x"] {
            assert!(valid_ifname(ok), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a:b", "a b", "sixteen-chars-xx"] {
            assert!(!valid_ifname(bad), "{bad}");
        }
    }

    #[test]
    fn loopback_is_found() {
        // every network namespace has `lo`, index 1 in a new one; no privilege needed
        let mut s = Socket::new().unwrap();
        assert!(s.link_index("lo").unwrap() > 0);
        assert_eq!(
            s.link_index("no-such-dev-x").unwrap_err(),
            nix::errno::Errno::ENODEV
        );
    }
}
