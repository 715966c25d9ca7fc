//! The firewall side of a native attachment: one nftables table per attachment, `ip husk-HASH`
//! (HASH from the container id and the network, so detach and gc find it from the record alone),
//! made and removed each by ONE nf_tables batch sent over a NETLINK_NETFILTER socket (the
//! kernel applies a batch atomically: all of it or nothing). Nothing outside these tables is
//! touched, and no program runs: the messages are encoded here, byte for byte what `nft -f`
//! sends for the same rules (the tests hold the bytes nft 1.0.6 sent, `testdata/*.hex`, and
//! compare), with an ACK asked for each so every message's outcome is known.
//!
//! * `prerouting` and `output` (nat, dstnat): a published port to a local address (`fib daddr
//!   type local`, as portmap's `--dst-type LOCAL`), optionally only that of `hostIP`, is DNATed
//!   to the container;
//! * `postrouting` (nat, srcnat): masquerade of what the container sends out of its subnet
//!   (ipMasq), of its own published ports reached from itself (hairpin) and of connections from
//!   the host's loopback (portmap's SNAT for 127.0.0.0/8, with `route_localnet` on the bridge);
//! * on a dual-stack network, a table of the same name in family `ip6`, made and removed in the
//!   same batches, with the same chains for IPv6 (portmap's ip6tables rules): the published
//!   ports that are not bound to an IPv4 host address DNATed to the container's IPv6 address,
//!   but not those to `::1` (`ip6 daddr != ::1`; a port on `[::1]` alone has no rule), and in
//!   `postrouting` the hairpin and the container's IPv6 traffic out of its subnet. The kernel
//!   cannot DNAT `::1` (no `route_localnet` for IPv6): `[::1]:PORT` is a userland proxy's
//!   ([`crate::network::proxy`]).
//!
//! An attachment made through the CNI plugins gets one table too when its ports have `[::1]`
//! proxies: `ip6 husk-HASH` with only the guard that keeps portmap's DNAT off `::1`
//! ([`loopback_guard_batch`]).

use super::super::ports::PortMapping;
use super::netlink::Msg;
use crate::network::{Ipv4Net, Ipv6Net};
use crate::sys::netlink::{self as sys, SockProtocol, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE};
use anyhow::{anyhow, bail, Result};
use nix::errno::Errno;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

// <linux/netfilter/nfnetlink.h>
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 16;
const NFNL_MSG_BATCH_END: u16 = 17;
// <linux/netfilter/nf_tables.h>
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_TABLE_FLAGS: u16 = 2;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFT_REG_1: u32 = 1;
const NFT_REG_2: u32 = 2;
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
const NFT_CMP_EQ: u32 = 0;
const NFT_CMP_NEQ: u32 = 1;
const NFT_META_L4PROTO: u32 = 16;
const NFTA_FIB_F_DADDR: u32 = 2;
const NFT_FIB_RESULT_ADDRTYPE: u32 = 3;
const RTN_LOCAL: u32 = 2;
const NFT_NAT_DNAT: u32 = 1;
const NF_NAT_RANGE_PROTO_SPECIFIED: u32 = 2;
// <linux/netfilter.h>
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;
const NF_ACCEPT: u32 = 1;
const NF_INET_PRE_ROUTING: u32 = 0;
const NF_INET_LOCAL_OUT: u32 = 3;
const NF_INET_POST_ROUTING: u32 = 4;
const NF_IP_PRI_NAT_DST: i32 = -100;
const NF_IP_PRI_NAT_SRC: i32 = 100;
// offsets in the IPv4 header
const IP_SADDR: u32 = 12;
const IP_DADDR: u32 = 16;
// offsets in the IPv6 header
const IP6_SADDR: u32 = 8;
const IP6_DADDR: u32 = 24;

/// One expression of a rule: what the kernel evaluates, register 1 unless said.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expr {
    /// `fib daddr type` into register 1.
    FibDaddrType,
    /// `len` bytes at `offset` of header `base` into register 1.
    Payload {
        base: u32,
        offset: u32,
        len: u32,
    },
    /// Register 1 `==` / `!=` `data`.
    Cmp {
        op: u32,
        data: Vec<u8>,
    },
    /// The layer 4 protocol number into register 1.
    MetaL4proto,
    /// Register 1 = (register 1 & `mask`) ^ 0.
    Mask(Vec<u8>),
    /// `data` into register `reg`.
    Immediate {
        reg: u32,
        data: Vec<u8>,
    },
    /// DNAT (of this family) to the address in register 1 and the port in register 2.
    Dnat(u8),
    Masquerade,
}

impl Expr {
    fn encode(&self, m: &mut Msg) {
        let name = match self {
            Expr::FibDaddrType => "fib",
            Expr::Payload { .. } => "payload",
            Expr::Cmp { .. } => "cmp",
            Expr::MetaL4proto => "meta",
            Expr::Mask(_) => "bitwise",
            Expr::Immediate { .. } => "immediate",
            Expr::Dnat(_) => "nat",
            Expr::Masquerade => "masq",
        };
        m.begin(NFTA_LIST_ELEM)
            .str(NFTA_EXPR_NAME, name)
            .begin(NFTA_EXPR_DATA);
        // each expression's attributes in the order libnftnl writes them
        match self {
            Expr::FibDaddrType => {
                m.be32(3, NFTA_FIB_F_DADDR) // NFTA_FIB_FLAGS
                    .be32(2, NFT_FIB_RESULT_ADDRTYPE) // NFTA_FIB_RESULT
                    .be32(1, NFT_REG_1); // NFTA_FIB_DREG
            }
            Expr::Payload { base, offset, len } => {
                m.be32(1, NFT_REG_1) // NFTA_PAYLOAD_DREG
                    .be32(2, *base)
                    .be32(3, *offset)
                    .be32(4, *len);
            }
            Expr::Cmp { op, data } => {
                m.be32(1, NFT_REG_1) // NFTA_CMP_SREG
                    .be32(2, *op)
                    .begin(3) // NFTA_CMP_DATA
                    .attr(NFTA_DATA_VALUE, data)
                    .end();
            }
            Expr::MetaL4proto => {
                m.be32(2, NFT_META_L4PROTO) // NFTA_META_KEY
                    .be32(1, NFT_REG_1); // NFTA_META_DREG
            }
            Expr::Mask(mask) => {
                m.be32(1, NFT_REG_1) // NFTA_BITWISE_SREG
                    .be32(2, NFT_REG_1) // NFTA_BITWISE_DREG
                    .be32(3, mask.len() as u32) // NFTA_BITWISE_LEN
                    .begin(4) // NFTA_BITWISE_MASK
                    .attr(NFTA_DATA_VALUE, mask)
                    .end()
                    .begin(5) // NFTA_BITWISE_XOR
                    .attr(NFTA_DATA_VALUE, &vec![0; mask.len()])
                    .end();
            }
            Expr::Immediate { reg, data } => {
                m.be32(1, *reg) // NFTA_IMMEDIATE_DREG
                    .begin(2) // NFTA_IMMEDIATE_DATA
                    .attr(NFTA_DATA_VALUE, data)
                    .end();
            }
            Expr::Dnat(family) => {
                m.be32(1, NFT_NAT_DNAT) // NFTA_NAT_TYPE
                    .be32(2, *family as u32) // NFTA_NAT_FAMILY
                    .be32(3, NFT_REG_1) // NFTA_NAT_REG_ADDR_MIN
                    .be32(5, NFT_REG_2) // NFTA_NAT_REG_PROTO_MIN
                    .be32(7, NF_NAT_RANGE_PROTO_SPECIFIED); // NFTA_NAT_FLAGS
            }
            Expr::Masquerade => {}
        }
        m.end().end();
    }
}

/// An IPv4 or IPv6 network as nft compares it: its address bytes, its mask bytes, its prefix.
trait NetBytes {
    fn parts(&self) -> (Vec<u8>, Vec<u8>, u8);
}

impl NetBytes for Ipv4Net {
    fn parts(&self) -> (Vec<u8>, Vec<u8>, u8) {
        let m = self.mask().to_be_bytes().to_vec();
        (self.network().octets().to_vec(), m, self.prefix)
    }
}

impl NetBytes for Ipv6Net {
    fn parts(&self) -> (Vec<u8>, Vec<u8>, u8) {
        let m = self.mask().to_be_bytes().to_vec();
        (self.network().octets().to_vec(), m, self.prefix)
    }
}

/// `ip saddr|daddr` or `ip6 saddr|daddr` `(==|!=) net` (`offset` says which) as nft encodes
/// it: a prefix on a byte boundary compares only its bytes, any other prefix masks the whole
/// address first. None when it can never match (`!= 0.0.0.0/0`).
fn ip_match(offset: u32, net: impl NetBytes, eq: bool) -> Option<Vec<Expr>> {
    let (addr, mask, prefix) = net.parts();
    addr_match(offset, &addr, &mask, prefix, eq)
}

/// The match of [`ip_match`] over the network address `addr` (4 or 16
/// bytes), its `mask` (as long) and `prefix`.
fn addr_match(offset: u32, addr: &[u8], mask: &[u8], prefix: u8, eq: bool) -> Option<Vec<Expr>> {
    let op = if eq { NFT_CMP_EQ } else { NFT_CMP_NEQ };
    match prefix {
        0 if eq => Some(Vec::new()),
        0 => None,
        p if p % 8 == 0 => {
            let len = u32::from(p / 8);
            Some(vec![
                Expr::Payload {
                    base: NFT_PAYLOAD_NETWORK_HEADER,
                    offset,
                    len,
                },
                Expr::Cmp {
                    op,
                    data: addr[..len as usize].to_vec(),
                },
            ])
        }
        _ => Some(vec![
            Expr::Payload {
                base: NFT_PAYLOAD_NETWORK_HEADER,
                offset,
                len: addr.len() as u32,
            },
            Expr::Mask(mask.to_vec()),
            Expr::Cmp {
                op,
                data: addr.to_vec(),
            },
        ]),
    }
}

fn host(ip: Ipv4Addr) -> Ipv4Net {
    Ipv4Net {
        addr: ip,
        prefix: 32,
    }
}

fn host6(ip: Ipv6Addr) -> Ipv6Net {
    Ipv6Net {
        addr: ip,
        prefix: 128,
    }
}

/// One nf_tables message of a batch: type, flags, body, and what it does (for errors).
#[derive(Debug, Clone)]
pub struct Message {
    typ: u16,
    flags: u16,
    body: Vec<u8>,
    pub what: String,
}

/// `struct nfgenmsg`: family, version 0, resource id (network byte order).
fn nfgenmsg(family: u8, res_id: u16) -> [u8; 4] {
    let r = res_id.to_be_bytes();
    [family, 0, r[0], r[1]]
}

/// The family's name in nft's syntax (for the messages' descriptions).
fn family_name(family: u8) -> &'static str {
    if family == NFPROTO_IPV6 {
        "ip6"
    } else {
        "ip"
    }
}

fn message(family: u8, typ: u16, flags: u16, what: String, f: impl FnOnce(&mut Msg)) -> Message {
    let mut m = Msg::new(&nfgenmsg(family, 0));
    f(&mut m);
    Message {
        typ: (NFNL_SUBSYS_NFTABLES << 8) | typ,
        flags,
        body: m.b,
        what,
    }
}

fn add_table(family: u8, t: &str) -> Message {
    let f = family_name(family);
    message(
        family,
        NFT_MSG_NEWTABLE,
        0,
        format!("add table {f} {t}"),
        |m| {
            m.str(NFTA_TABLE_NAME, t).be32(NFTA_TABLE_FLAGS, 0);
        },
    )
}

fn del_table(family: u8, t: &str) -> Message {
    let f = family_name(family);
    message(
        family,
        NFT_MSG_DELTABLE,
        0,
        format!("delete table {f} {t}"),
        |m| {
            m.str(NFTA_TABLE_NAME, t);
        },
    )
}

/// A nat base chain, policy accept.
fn add_chain(family: u8, t: &str, chain: &str, hook: u32, priority: i32) -> Message {
    message(
        family,
        NFT_MSG_NEWCHAIN,
        NLM_F_CREATE,
        format!("add chain {} {t} {chain}", family_name(family)),
        |m| {
            m.str(NFTA_CHAIN_TABLE, t)
                .str(NFTA_CHAIN_NAME, chain)
                .str(NFTA_CHAIN_TYPE, "nat")
                .be32(NFTA_CHAIN_POLICY, NF_ACCEPT)
                .begin(NFTA_CHAIN_HOOK)
                .be32(NFTA_HOOK_HOOKNUM, hook)
                .be32(NFTA_HOOK_PRIORITY, priority as u32)
                .end();
        },
    )
}

fn add_rule(family: u8, t: &str, chain: &str, what: String, exprs: &[Expr]) -> Message {
    message(
        family,
        NFT_MSG_NEWRULE,
        NLM_F_CREATE | NLM_F_APPEND,
        format!("add rule {} {t} {chain} {what}", family_name(family)),
        |m| {
            m.str(NFTA_RULE_TABLE, t)
                .str(NFTA_RULE_CHAIN, chain)
                .begin(NFTA_RULE_EXPRESSIONS);
            for e in exprs {
                e.encode(m);
            }
            m.end();
        },
    )
}

/// The IP protocol number of a port mapping's protocol.
fn protocol_number(p: &str) -> Result<u8> {
    Ok(match p {
        "tcp" => 6,
        "udp" => 17,
        "sctp" => 132,
        other => bail!("published port protocol {other:?}: expected tcp, udp or sctp"),
    })
}

/// What the rules of one attachment are made of.
pub struct Rules<'a> {
    pub table: &'a str,
    pub ip: Ipv4Addr,
    pub subnet: Ipv4Net,
    pub masquerade: bool,
    pub ports: &'a [PortMapping],
    /// A dual-stack attachment's IPv6 address and subnet: its published ports over IPv6 and its
    /// masquerades are in a table of family ip6 of the same name.
    pub v6: Option<(Ipv6Addr, Ipv6Net)>,
}

impl Rules<'_> {
    /// True when the attachment needs no table at all.
    pub fn empty(&self) -> bool {
        !self.masquerade && self.ports.is_empty()
    }

    /// The `prerouting` and `output` chains of family `family` with a DNAT rule for each of
    /// `ports` to `addr` (4 or 16 bytes), a host address matched at `daddr` of the family's
    /// header.
    fn dnat_chains(
        &self,
        b: &mut Vec<Message>,
        family: u8,
        ports: &[&PortMapping],
        addr: &[u8],
        daddr: u32,
    ) -> Result<()> {
        let t = self.table;
        for (chain, hook) in [
            ("prerouting", NF_INET_PRE_ROUTING),
            ("output", NF_INET_LOCAL_OUT),
        ] {
            b.push(add_chain(family, t, chain, hook, NF_IP_PRI_NAT_DST));
            for m in ports {
                let mut e = vec![
                    Expr::FibDaddrType,
                    Expr::Cmp {
                        op: NFT_CMP_EQ,
                        data: RTN_LOCAL.to_ne_bytes().to_vec(),
                    },
                ];
                match m.dst() {
                    Some(IpAddr::V4(h)) => {
                        e.extend(ip_match(daddr, host(h), true).unwrap_or_default())
                    }
                    Some(IpAddr::V6(h)) => {
                        e.extend(ip_match(daddr, host6(h), true).unwrap_or_default())
                    }
                    // `ip6 daddr != ::1`: the loopback is the proxy's (super::super::proxy)
                    None if family == NFPROTO_IPV6 => e.extend(
                        ip_match(daddr, host6(Ipv6Addr::LOCALHOST), false).unwrap_or_default(),
                    ),
                    None => {}
                }
                e.extend(dport_dnat(m, family, addr, m.container_port)?);
                b.push(add_rule(family, t, chain, format!("dnat {m}"), &e));
            }
        }
        Ok(())
    }

    /// The batch that creates the table (a table left by an earlier run is replaced).
    pub fn add_batch(&self) -> Result<Vec<Message>> {
        let t = self.table;
        let ip = self.ip;
        let mut b = delete_batch(t);
        b.push(add_table(NFPROTO_IPV4, t));
        let ports4: Vec<&PortMapping> = self.ports.iter().filter(|m| m.on_v4()).collect();
        if !ports4.is_empty() {
            self.dnat_chains(&mut b, NFPROTO_IPV4, &ports4, &ip.octets(), IP_DADDR)?;
        }
        b.push(add_chain(
            NFPROTO_IPV4,
            t,
            "postrouting",
            NF_INET_POST_ROUTING,
            NF_IP_PRI_NAT_SRC,
        ));
        let mut masq = |what: &str, matches: &[(u32, Ipv4Net, bool)]| {
            let mut e = Vec::new();
            for &(offset, net, eq) in matches {
                match ip_match(offset, net, eq) {
                    Some(x) => e.extend(x),
                    None => return,
                }
            }
            e.push(Expr::Masquerade);
            b.push(add_rule(
                NFPROTO_IPV4,
                t,
                "postrouting",
                what.to_string(),
                &e,
            ));
        };
        if !ports4.is_empty() {
            masq(
                "masquerade (hairpin)",
                &[(IP_SADDR, host(ip), true), (IP_DADDR, host(ip), true)],
            );
            let lo = Ipv4Net {
                addr: Ipv4Addr::new(127, 0, 0, 0),
                prefix: 8,
            };
            masq(
                "masquerade (from loopback)",
                &[(IP_SADDR, lo, true), (IP_DADDR, host(ip), true)],
            );
        }
        if self.masquerade {
            let multicast = Ipv4Net {
                addr: Ipv4Addr::new(224, 0, 0, 0),
                prefix: 4,
            };
            masq(
                "masquerade (outbound)",
                &[
                    (IP_SADDR, host(ip), true),
                    (IP_DADDR, self.subnet, false),
                    (IP_DADDR, multicast, false),
                ],
            );
        }
        if let Some((ip6, subnet6)) = self.v6 {
            self.add_batch6(&mut b, ip6, subnet6)?;
        }
        Ok(b)
    }

    /// The table of family ip6 of a dual-stack attachment, when it needs one: its published
    /// ports over IPv6 and the masquerades.
    fn add_batch6(&self, b: &mut Vec<Message>, ip6: Ipv6Addr, subnet6: Ipv6Net) -> Result<()> {
        let t = self.table;
        let ports6: Vec<&PortMapping> = self.ports.iter().filter(|m| dnat6(m)).collect();
        if !self.masquerade && ports6.is_empty() {
            return Ok(());
        }
        b.extend(delete_batch6(t));
        b.push(add_table(NFPROTO_IPV6, t));
        if !ports6.is_empty() {
            self.dnat_chains(b, NFPROTO_IPV6, &ports6, &ip6.octets(), IP6_DADDR)?;
        }
        b.push(add_chain(
            NFPROTO_IPV6,
            t,
            "postrouting",
            NF_INET_POST_ROUTING,
            NF_IP_PRI_NAT_SRC,
        ));
        let mut masq = |what: &str, matches: &[(u32, Ipv6Net, bool)]| {
            let mut e = Vec::new();
            for &(offset, net, eq) in matches {
                e.extend(ip_match(offset, net, eq).unwrap_or_default());
            }
            e.push(Expr::Masquerade);
            b.push(add_rule(
                NFPROTO_IPV6,
                t,
                "postrouting",
                what.to_string(),
                &e,
            ));
        };
        if !ports6.is_empty() {
            // `ip6 saddr IP ip6 daddr IP masquerade` (nothing for `::1`: see the module's doc)
            masq(
                "masquerade (hairpin)",
                &[(IP6_SADDR, host6(ip6), true), (IP6_DADDR, host6(ip6), true)],
            );
        }
        if self.masquerade {
            // `ip6 saddr IP ip6 daddr != SUBNET ip6 daddr != ff00::/8 masquerade`
            let multicast6 = Ipv6Net {
                addr: Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0),
                prefix: 8,
            };
            masq(
                "masquerade (outbound)",
                &[
                    (IP6_SADDR, host6(ip6), true),
                    (IP6_DADDR, subnet6, false),
                    (IP6_DADDR, multicast6, false),
                ],
            );
        }
        Ok(())
    }
}

/// `PROTO dport HOSTPORT dnat to ADDR:port` of mapping `m` (`addr` of `family`: 4 or 16 bytes).
fn dport_dnat(m: &PortMapping, family: u8, addr: &[u8], port: u16) -> Result<Vec<Expr>> {
    Ok(vec![
        Expr::MetaL4proto,
        Expr::Cmp {
            op: NFT_CMP_EQ,
            data: vec![protocol_number(&m.protocol)?],
        },
        Expr::Payload {
            base: NFT_PAYLOAD_TRANSPORT_HEADER,
            offset: 2,
            len: 2,
        },
        Expr::Cmp {
            op: NFT_CMP_EQ,
            data: m.host_port.to_be_bytes().to_vec(),
        },
        Expr::Immediate {
            reg: NFT_REG_1,
            data: addr.to_vec(),
        },
        Expr::Immediate {
            reg: NFT_REG_2,
            data: port.to_be_bytes().to_vec(),
        },
        Expr::Dnat(family),
    ])
}

/// The priority of the `[::1]` guard's chain: dstnat - 10, before every nat chain of the
/// output hook at dstnat (portmap's, in iptables' `nat` table, either backend).
pub const GUARD_PRIORITY: i32 = NF_IP_PRI_NAT_DST - 10;

/// The batch that makes the `[::1]` guard of an attachment made through the CNI plugins:
/// table `ip6 T` (replaced when left by an earlier run) with a nat chain `output` at
/// [`GUARD_PRIORITY`] holding, for each of `ports` (those proxied), `ip6 daddr ::1 PROTO dport
/// P dnat to [::1]:P`. portmap DNATs every local address, `::1` too, and the kernel drops the
/// reply of such a connection on the bridge (see [`crate::network::proxy`]); this DNAT to the
/// connection's own destination settles it first (the kernel runs a hook's nat chains in
/// priority order only until one has set the connection's mapping), so portmap's chain never
/// sees it and it reaches the proxy listening on `[::1]:P`.
pub fn loopback_guard_batch(t: &str, ports: &[&PortMapping]) -> Result<Vec<Message>> {
    let mut b = delete_batch6(t);
    b.push(add_table(NFPROTO_IPV6, t));
    b.push(add_chain(
        NFPROTO_IPV6,
        t,
        "output",
        NF_INET_LOCAL_OUT,
        GUARD_PRIORITY,
    ));
    let lo = Ipv6Addr::LOCALHOST;
    for m in ports {
        let mut e = ip_match(IP6_DADDR, host6(lo), true).unwrap_or_default();
        e.extend(dport_dnat(m, NFPROTO_IPV6, &lo.octets(), m.host_port)?);
        b.push(add_rule(
            NFPROTO_IPV6,
            t,
            "output",
            format!("keep [::1] of {m} for its proxy"),
            &e,
        ));
    }
    Ok(b)
}

/// True when the ip6 table DNATs `m`: published on IPv6, and not on `[::1]` alone (the
/// proxy's only).
pub fn dnat6(m: &PortMapping) -> bool {
    m.on_v6() && m.host_ip != Some(IpAddr::V6(Ipv6Addr::LOCALHOST))
}

/// [`delete_batch`] for the table of family ip6 of a dual-stack attachment.
pub fn delete_batch6(t: &str) -> Vec<Message> {
    vec![add_table(NFPROTO_IPV6, t), del_table(NFPROTO_IPV6, t)]
}

/// The batch that removes table `t` whether or not it exists (adding an existing table
/// changes nothing, so the delete always has something to delete).
pub fn delete_batch(t: &str) -> Vec<Message> {
    vec![add_table(NFPROTO_IPV4, t), del_table(NFPROTO_IPV4, t)]
}

/// The messages of one transaction as they are sent: `batch` between BATCH_BEGIN and
/// BATCH_END (which ask for no ACK), each of its messages asking for one. The kernel answers
/// an error of the commit itself on BATCH_BEGIN's sequence number.
fn datagram(batch: &[Message]) -> Vec<(u16, u16, &[u8])> {
    const EDGE: [u8; 4] = [0, 0, 0, NFNL_SUBSYS_NFTABLES as u8]; // nfgenmsg, res_id = subsys
    let mut v = vec![(NFNL_MSG_BATCH_BEGIN, 0, &EDGE[..])];
    v.extend(
        batch
            .iter()
            .map(|m| (m.typ, m.flags | NLM_F_ACK, m.body.as_slice())),
    );
    v.push((NFNL_MSG_BATCH_END, 0, &EDGE[..]));
    v
}

/// Apply `batch` in the calling thread's network namespace, all or nothing.
pub fn apply(network: &str, batch: &[Message]) -> Result<()> {
    let mut s = sys::Socket::open(SockProtocol::NetlinkNetFilter)
        .map_err(|e| anyhow!("network {network}: nftables: {e:#}"))?;
    let msgs = datagram(batch);
    let done = s.exchange(&msgs, &mut Vec::new());
    close_later(s);
    done.map_err(|(i, e)| {
        let what = match i.checked_sub(1).and_then(|i| batch.get(i)) {
            Some(m) => m.what.as_str(),
            None => "commit",
        };
        let hint = match e {
            Errno::EOPNOTSUPP | Errno::ENOENT | Errno::EPROTONOSUPPORT => {
                " (is nf_tables with nat, fib and masquerade support in this kernel?)"
            }
            _ => "",
        };
        anyhow!("network {network}: nftables: {what}: {}{hint}", e.desc())
    })
}

/// Close `s` without waiting for the kernel. The last close of a NETLINK_NETFILTER socket
/// that sent a batch waits until nf_tables has freed that batch's transaction, after an RCU
/// grace period (`nft_rcv_nl_event` flushes the deferred destroy work on NETLINK_URELEASE):
/// 10-25 ms here, which is most of what writing the rules costs. The operation's keeper
/// ([`crate::network::keep::give`]) takes a duplicate, so its close, when it exits at the end
/// of the operation, is the last one, apart from husk. The commit itself is done and
/// acknowledged before this: nothing of the attachment depends on the keeper. Without one the
/// socket is closed here, waiting.
fn close_later(s: sys::Socket) {
    use std::os::fd::AsFd;
    crate::network::keep::give(s.as_fd());
}

/// True when table `t` of family ip exists in the calling thread's network namespace.
pub fn exists(t: &str) -> Result<bool> {
    exists_in(NFPROTO_IPV4, t)
}

/// [`exists`] for the table of family ip6 of a dual-stack attachment.
pub fn exists6(t: &str) -> Result<bool> {
    exists_in(NFPROTO_IPV6, t)
}

fn exists_in(family: u8, t: &str) -> Result<bool> {
    let mut s = sys::Socket::open(SockProtocol::NetlinkNetFilter)?;
    let mut m = Msg::new(&nfgenmsg(family, 0));
    m.str(NFTA_TABLE_NAME, t);
    match s.request((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE, 0, &m.b) {
        Ok(_) => Ok(true),
        Err(Errno::ENOENT) => Ok(false),
        Err(e) => Err(anyhow!(
            "nftables: look up table {} {t}: {}",
            family_name(family),
            e.desc()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::netlink::NLM_F_REQUEST;

    /// The datagram as bytes with sequence numbers from 0, as `nft -f` numbers its batch.
    fn bytes(batch: &[Message]) -> Vec<String> {
        let msgs: Vec<(u16, u16, &[u8])> = datagram(batch)
            .into_iter()
            .map(|(t, f, b)| (t, f | NLM_F_REQUEST, b))
            .collect();
        let all = sys::encode(&msgs, 0);
        let mut out = Vec::new();
        let mut b = &all[..];
        while b.len() >= 16 {
            let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
            out.push(b[..len].iter().map(|x| format!("{x:02x}")).collect());
            b = &b[sys::align4(len)..];
        }
        out
    }

    /// What nft 1.0.6 sent for `testdata/NAME.nft` (strace's dump of its sendmsg), one message
    /// a line in hex, with NLM_F_ACK set on each message between BEGIN and END: husk asks for
    /// an ACK per message, nft reads its errors without (the only difference).
    fn nft_sent(hex: &str) -> Vec<String> {
        let lines: Vec<&str> = hex.lines().collect();
        let n = lines.len();
        lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                if i == 0 || i + 1 == n {
                    return l.to_string();
                }
                let mut b: Vec<u8> = (0..l.len() / 2)
                    .map(|j| u8::from_str_radix(&l[2 * j..2 * j + 2], 16).unwrap())
                    .collect();
                let flags = u16::from_ne_bytes([b[6], b[7]]) | NLM_F_ACK;
                b[6..8].copy_from_slice(&flags.to_ne_bytes());
                b.iter().map(|x| format!("{x:02x}")).collect()
            })
            .collect()
    }

    fn net(s: &str) -> Ipv4Net {
        Ipv4Net::parse(s).unwrap()
    }

    #[test]
    fn batches_are_the_bytes_nft_sends() {
        // testdata/nft-ports-masquerade.nft: two published ports (one on a host IP, one udp),
        // masquerade of a /20 (the masked compare)
        let ports = crate::network::ports::parse("127.0.0.1:8080:80").unwrap();
        let mut all = ports.clone();
        all.extend(crate::network::ports::parse("5353:53/udp").unwrap());
        let r = Rules {
            table: "husk-t",
            ip: Ipv4Addr::new(10, 89, 0, 2),
            subnet: net("10.89.0.0/20"),
            masquerade: true,
            ports: &all,
            v6: None,
        };
        let got = bytes(&r.add_batch().unwrap());
        let want = nft_sent(include_str!("testdata/nft-ports-masquerade.hex"));
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, w, "message {i}");
        }
        // testdata/nft-masquerade.nft: masquerade only, a /16 (two bytes compared)
        let r = Rules {
            table: "husk-u",
            ip: Ipv4Addr::new(10, 88, 0, 7),
            subnet: net("10.88.0.0/16"),
            masquerade: true,
            ports: &[],
            v6: None,
        };
        assert_eq!(
            bytes(&r.add_batch().unwrap()),
            nft_sent(include_str!("testdata/nft-masquerade.hex"))
        );
        // testdata/nft-masquerade6.nft: a dual-stack attachment's table of family ip6 (after
        // the ip one, in the same batch), masquerade of a /64 (eight bytes compared)
        let dual = Rules {
            v6: Some((
                "fd00:89:1::7".parse().unwrap(),
                Ipv6Net::parse("fd00:89:1::/64").unwrap(),
            )),
            ..r
        };
        let b = dual.add_batch().unwrap();
        let (v4, v6) = b.split_at(r.add_batch().unwrap().len());
        assert_eq!(bytes(v4), bytes(&r.add_batch().unwrap()));
        assert_eq!(
            bytes(v6),
            nft_sent(include_str!("testdata/nft-masquerade6.hex"))
        );
        // testdata/nft-guard6.nft: the [::1] guard of an attachment through the plugins
        let mut ports = crate::network::ports::parse("8080:80").unwrap();
        ports.extend(crate::network::ports::parse("5353:53/udp").unwrap());
        let proxied: Vec<&PortMapping> = ports.iter().collect();
        assert_eq!(
            bytes(&loopback_guard_batch("husk-g", &proxied).unwrap()),
            nft_sent(include_str!("testdata/nft-guard6.hex"))
        );
        // testdata/nft-delete.nft
        assert_eq!(
            bytes(&delete_batch("husk-t")),
            nft_sent(include_str!("testdata/nft-delete.hex"))
        );
    }

    #[test]
    fn batches_say_what_each_message_does() {
        let ports = crate::network::ports::parse("127.0.0.1:8080:80").unwrap();
        let r = Rules {
            table: "husk-x",
            ip: Ipv4Addr::new(10, 89, 0, 2),
            subnet: net("10.89.0.0/24"),
            masquerade: true,
            ports: &ports,
            v6: None,
        };
        let what: Vec<String> = r.add_batch().unwrap().into_iter().map(|m| m.what).collect();
        assert_eq!(
            what[..3],
            [
                "add table ip husk-x",
                "delete table ip husk-x",
                "add table ip husk-x"
            ]
        );
        assert!(
            what.contains(&"add chain ip husk-x output".to_string()),
            "{what:?}"
        );
        assert!(
            what.iter()
                .any(|w| w.starts_with("add rule ip husk-x prerouting dnat 127.0.0.1:8080")),
            "{what:?}"
        );
        let internal = Rules {
            masquerade: false,
            ports: &[],
            ..r
        };
        assert!(internal.empty());
        // an unknown protocol is an error naming it, not a wrong rule
        let mut bad = ports.clone();
        bad[0].protocol = "icmp".into();
        let e = Rules { ports: &bad, ..r }.add_batch().unwrap_err();
        assert!(e.to_string().contains("\"icmp\""), "{e}");
    }

    #[test]
    fn dual_stack_ports_go_to_their_families() {
        let mut ports = Vec::new();
        for p in [
            "8080:80",
            "[::1]:8081:80",
            "127.0.0.1:8082:80",
            "[::]:8083:80/udp",
        ] {
            ports.extend(crate::network::ports::parse(p).unwrap());
        }
        let r = Rules {
            table: "husk-d",
            ip: Ipv4Addr::new(10, 89, 0, 2),
            subnet: net("10.89.0.0/24"),
            masquerade: false,
            ports: &ports,
            v6: Some((
                "fd00:89::2".parse().unwrap(),
                Ipv6Net::parse("fd00:89::/64").unwrap(),
            )),
        };
        let what: Vec<String> = r.add_batch().unwrap().into_iter().map(|m| m.what).collect();
        let dnat = |family: &str| -> Vec<&str> {
            let pre = format!("add rule {family} husk-d prerouting dnat ");
            what.iter()
                .filter_map(|w| w.strip_prefix(pre.as_str()))
                .collect()
        };
        assert_eq!(
            dnat("ip"),
            ["0.0.0.0:8080->80/tcp", "127.0.0.1:8082->80/tcp"],
            "{what:?}"
        );
        // [::1] alone is the proxy's; an internal network's ip6 table has the hairpin only
        assert_eq!(
            dnat("ip6"),
            ["0.0.0.0:8080->80/tcp", "[::]:8083->80/udp"],
            "{what:?}"
        );
        assert!(what.contains(&"add rule ip6 husk-d postrouting masquerade (hairpin)".to_string()));
        assert!(!what
            .iter()
            .any(|w| w.contains("ip6") && w.contains("outbound")));
        // a port on [::1] alone makes no ip6 table
        let only = crate::network::ports::parse("[::1]:8081:80").unwrap();
        let b = Rules { ports: &only, ..r }.add_batch().unwrap();
        assert!(!b.iter().any(|m| m.what.starts_with("add table ip6")));
    }

    #[test]
    fn address_matches_follow_the_prefix() {
        let e = ip_match(IP_DADDR, net("10.0.0.0/8"), true).unwrap();
        assert_eq!(
            e,
            vec![
                Expr::Payload {
                    base: NFT_PAYLOAD_NETWORK_HEADER,
                    offset: IP_DADDR,
                    len: 1
                },
                Expr::Cmp {
                    op: NFT_CMP_EQ,
                    data: vec![10]
                }
            ]
        );
        let e = ip_match(IP_SADDR, net("10.89.16.0/21"), false).unwrap();
        assert_eq!(e[1], Expr::Mask(vec![255, 255, 248, 0]));
        assert_eq!(
            e[2],
            Expr::Cmp {
                op: NFT_CMP_NEQ,
                data: vec![10, 89, 16, 0]
            }
        );
        assert_eq!(ip_match(IP_DADDR, net("0.0.0.0/0"), true), Some(vec![]));
        // IPv6: the same rule over 16 bytes
        let n6 = |s: &str| Ipv6Net::parse(s).unwrap();
        let e = ip_match(IP6_DADDR, n6("fd00:89::/60"), false).unwrap();
        assert_eq!(
            e[0],
            Expr::Payload {
                base: NFT_PAYLOAD_NETWORK_HEADER,
                offset: IP6_DADDR,
                len: 16
            }
        );
        let mut mask = vec![0xff; 7];
        mask.push(0xf0);
        mask.extend([0; 8]);
        assert_eq!(e[1], Expr::Mask(mask));
        let e = ip_match(IP6_SADDR, n6("fd00:89:1::/64"), true).unwrap();
        assert_eq!(
            e[1],
            Expr::Cmp {
                op: NFT_CMP_EQ,
                data: vec![0xfd, 0, 0, 0x89, 0, 1, 0, 0]
            }
        );
        assert_eq!(ip_match(IP_DADDR, net("0.0.0.0/0"), false), None);
    }

    /// In a network namespace of a thread's own (root): a batch goes in whole, an error names
    /// the message and leaves nothing, the delete batch removes the table and runs again.
    #[test]
    fn batches_apply_in_a_namespace_of_their_own() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipping batches_apply_in_a_namespace_of_their_own: needs root");
            return;
        }
        std::thread::spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            // the keeper ends with the test (it holds sockets of this namespace)
            let _serial = crate::network::keep::serial();
            let _keeper = crate::network::keep::Scope::enter();
            let ports = crate::network::ports::parse("8080:80").unwrap();
            let r = Rules {
                table: "husk-unit",
                ip: Ipv4Addr::new(10, 89, 0, 2),
                subnet: net("10.89.0.0/24"),
                masquerade: true,
                ports: &ports,
                v6: None,
            };
            assert!(!exists("husk-unit").unwrap());
            let batch = r.add_batch().unwrap();
            apply("n", &batch).unwrap();
            assert!(exists("husk-unit").unwrap());
            // again: the old table is replaced, not doubled
            apply("n", &batch).unwrap();
            // a rule for a chain the batch does not make: the error names it, and the batch's
            // other messages (a new table) are not applied either
            let mut bad = delete_batch("husk-other");
            bad.push(add_table(NFPROTO_IPV4, "husk-other"));
            bad.push(add_rule(
                NFPROTO_IPV4,
                "husk-other",
                "nochain",
                "masquerade".into(),
                &[Expr::Masquerade],
            ));
            let e = apply("n", &bad).unwrap_err().to_string();
            assert!(
                e.contains("add rule ip husk-other nochain masquerade") && e.contains("network n"),
                "{e}"
            );
            assert!(!exists("husk-other").unwrap());
            apply("n", &delete_batch("husk-unit")).unwrap();
            assert!(!exists("husk-unit").unwrap());
            apply("n", &delete_batch("husk-unit")).unwrap();
        })
        .join()
        .unwrap();
    }
}
