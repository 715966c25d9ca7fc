//! Device access rules: the spec's `linux.resources.devices` plus runc's built-in allow list,
//! reduced with the cgroup v1 kernel semantics to a default policy and a list of exceptions, then
//! written as v1 `devices.allow`/`devices.deny` lines or compiled into a cgroup v2
//! BPF_PROG_TYPE_CGROUP_DEVICE program. `linux.devices` grants no access: those entries are
//! nodes to create; only `linux.resources.devices` and the built-in list decide access.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use anyhow::{anyhow, bail, Result};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

pub const ACC_MKNOD: u8 = 1;
pub const ACC_READ: u8 = 2;
pub const ACC_WRITE: u8 = 4;
pub const ACC_ALL: u8 = 7;

/// One rule. `kind` is 'a', 'b' or 'c'; None major/minor is the wildcard "*".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    pub kind: char,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: u8,
}

impl Rule {
    const fn dev(kind: char, major: Option<u32>, minor: Option<u32>, access: u8) -> Rule {
        Rule {
            allow: true,
            kind,
            major,
            minor,
            access,
        }
    }

    /// The v1 line: "c 1:3 rwm", "c 136:* rwm", "a".
    pub fn v1_line(&self) -> String {
        if self.kind == 'a' {
            return "a *:* rwm".to_string();
        }
        let num = |v: Option<u32>| v.map_or_else(|| "*".to_string(), |n| n.to_string());
        format!(
            "{} {}:{} {}",
            self.kind,
            num(self.major),
            num(self.minor),
            access_str(self.access)
        )
    }
}

pub fn access_str(a: u8) -> String {
    let mut s = String::with_capacity(3);
    if a & ACC_READ != 0 {
        s.push('r');
    }
    if a & ACC_WRITE != 0 {
        s.push('w');
    }
    if a & ACC_MKNOD != 0 {
        s.push('m');
    }
    s
}

fn parse_access(s: &str) -> Result<u8> {
    let mut a = 0;
    for c in s.chars() {
        a |= match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => bail!("invalid access {s:?}"),
        };
    }
    Ok(a)
}

/// runc's `specconv.AllowedDevices` (runc 1.1), appended after the spec's rules (so the spec
/// cannot take them away), as runc does; except that a rule whose node (see
/// [`default_node_path`]) the spec redefines in `linux.devices` is left out, as runc's
/// `createDevices` drops that default (rules and node alike).
pub const DEFAULT_ALLOWED: &[Rule] = &[
    Rule::dev('c', None, None, ACC_MKNOD),
    Rule::dev('b', None, None, ACC_MKNOD),
    Rule::dev('c', Some(1), Some(3), ACC_ALL), // /dev/null
    Rule::dev('c', Some(1), Some(8), ACC_ALL), // /dev/random
    Rule::dev('c', Some(1), Some(7), ACC_ALL), // /dev/full
    Rule::dev('c', Some(5), Some(0), ACC_ALL), // /dev/tty
    Rule::dev('c', Some(1), Some(5), ACC_ALL), // /dev/zero
    Rule::dev('c', Some(1), Some(9), ACC_ALL), // /dev/urandom
    Rule::dev('c', Some(136), None, ACC_ALL),  // /dev/pts/*
    Rule::dev('c', Some(5), Some(2), ACC_ALL), // /dev/ptmx
    Rule::dev('c', Some(10), Some(200), ACC_ALL), // /dev/net/tun
];

/// Convert one spec rule. `i` is its index, for the error message.
pub fn from_spec(i: usize, d: &LinuxDeviceCgroup) -> Result<Rule> {
    let field = format!("linux.resources.devices[{i}]");
    let kind = match d.typ() {
        None | Some(LinuxDeviceType::A) => 'a',
        Some(LinuxDeviceType::B) => 'b',
        Some(LinuxDeviceType::C) => 'c',
        // runc's stringToCgroupDeviceRune accepts only a, b and c
        Some(t) => bail!("{field}.type: invalid cgroup device type {:?}", t.as_str()),
    };
    let num = |v: Option<i64>, what: &str| -> Result<Option<u32>> {
        match v {
            None => Ok(None),
            Some(n) if n < 0 => Ok(None), // -1 is the wildcard in runc's configs
            Some(n) => u32::try_from(n)
                .map(Some)
                .map_err(|_| anyhow!("{field}.{what}: {n} out of range")),
        }
    };
    let access = match d.access().as_deref() {
        None | Some("") => ACC_ALL,
        Some(s) => parse_access(s).map_err(|e| anyhow!("{field}.access: {e}"))?,
    };
    Ok(Rule {
        allow: d.allow(),
        kind,
        major: num(d.major(), "major")?,
        minor: num(d.minor(), "minor")?,
        access,
    })
}

/// The device node runc's default list creates for a [`DEFAULT_ALLOWED`] rule (its
/// `AllowedDevices` entries that have a `Path`); None for the rules without a node (mknod of any
/// device, pts, ptmx, tun).
pub fn default_node_path(r: &Rule) -> Option<&'static str> {
    match (r.kind, r.major, r.minor) {
        ('c', Some(1), Some(3)) => Some("/dev/null"),
        ('c', Some(1), Some(8)) => Some("/dev/random"),
        ('c', Some(1), Some(7)) => Some("/dev/full"),
        ('c', Some(5), Some(0)) => Some("/dev/tty"),
        ('c', Some(1), Some(5)) => Some("/dev/zero"),
        ('c', Some(1), Some(9)) => Some("/dev/urandom"),
        _ => None,
    }
}

/// The state the cgroup v1 kernel code keeps: a default and a list of exceptions to it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    pub default_allow: bool,
    /// Rules whose `allow` is !default_allow.
    pub exceptions: Vec<Rule>,
}

impl Policy {
    /// Apply rules in order with the kernel's devcgroup_update_access semantics: an "a" rule
    /// resets everything; otherwise a rule of the default's polarity removes access from an
    /// exactly matching exception, and one of the other polarity adds (merges) an exception.
    /// Starts from default deny, like runc's emulator (a whitelist).
    ///
    /// Like runc's emulator (and unlike the v1 kernel, which silently ignores it), a removal
    /// that would have to punch a hole into a wildcard exception is an error: denying
    /// "c 1:3 rwm" after allowing "c *:* rwm" would otherwise leave /dev/null allowed.
    pub fn build<'a>(rules: impl IntoIterator<Item = &'a Rule>) -> Result<Policy> {
        let mut p = Policy::default();
        for r in rules {
            if r.kind == 'a' {
                p.default_allow = r.allow;
                p.exceptions.clear();
                continue;
            }
            let same = |e: &Rule| e.kind == r.kind && e.major == r.major && e.minor == r.minor;
            if r.allow == p.default_allow {
                let wider = p.exceptions.iter().find(|e| {
                    e.kind == r.kind
                        && !same(e)
                        && (e.major.is_none() || e.major == r.major)
                        && (e.minor.is_none() || e.minor == r.minor)
                        && e.access & r.access != 0
                });
                if let Some(w) = wider {
                    bail!(
                        "{} rule \"{}\" cannot punch a hole into the wildcard {} rule \"{}\" \
                         (not supported by the devices cgroup)",
                        if r.allow { "allow" } else { "deny" },
                        r.v1_line(),
                        if w.allow { "allow" } else { "deny" },
                        w.v1_line()
                    );
                }
                if let Some(pos) = p.exceptions.iter().position(same) {
                    p.exceptions[pos].access &= !r.access;
                    if p.exceptions[pos].access == 0 {
                        p.exceptions.remove(pos);
                    }
                }
            } else if let Some(e) = p.exceptions.iter_mut().find(|e| same(e)) {
                e.access |= r.access;
            } else {
                p.exceptions.push(*r);
            }
        }
        Ok(p)
    }

    /// The state a v1 `devices.list` shows. None when it cannot be known: in allow-by-default
    /// mode the kernel prints only "a *:* rwm" and hides the exceptions.
    pub fn from_v1_list(text: &str) -> Option<Policy> {
        let mut p = Policy::default();
        for l in text.lines().filter(|l| !l.trim().is_empty()) {
            let mut f = l.split_whitespace();
            let kind = f.next()?.chars().next()?;
            let (ma, mi) = f.next()?.split_once(':')?;
            let access = parse_access(f.next()?).ok()?;
            if kind == 'a' {
                return None;
            }
            let num = |s: &str| -> Option<Option<u32>> {
                if s == "*" {
                    Some(None)
                } else {
                    s.parse().ok().map(Some)
                }
            };
            p.exceptions.push(Rule {
                allow: true,
                kind,
                major: num(ma)?,
                minor: num(mi)?,
                access,
            });
        }
        Some(p)
    }

    /// The writes that take a v1 devices cgroup from `current` (as read from devices.list) to
    /// this state without a moment of deny-all, as runc's emulator transition does for a
    /// running container: when both are allow-lists, grant what is new first, then take away
    /// what is gone. Otherwise the full reset of [`Policy::v1_writes`].
    pub fn v1_transition(&self, current: Option<&Policy>) -> Vec<(&'static str, String)> {
        let cur = match current {
            Some(c) if !c.default_allow && !self.default_allow => c,
            _ => return self.v1_writes(),
        };
        let key = |a: &Rule, b: &Rule| a.kind == b.kind && a.major == b.major && a.minor == b.minor;
        let mut w = Vec::new();
        for t in &self.exceptions {
            let have = cur
                .exceptions
                .iter()
                .find(|c| key(c, t))
                .map_or(0, |c| c.access);
            let add = t.access & !have;
            if add != 0 {
                w.push(("devices.allow", Rule { access: add, ..*t }.v1_line()));
            }
        }
        for c in &cur.exceptions {
            let keep = self
                .exceptions
                .iter()
                .find(|t| key(c, t))
                .map_or(0, |t| t.access);
            let drop = c.access & !keep;
            if drop != 0 {
                w.push((
                    "devices.deny",
                    Rule {
                        access: drop,
                        allow: false,
                        ..*c
                    }
                    .v1_line(),
                ));
            }
        }
        w
    }

    /// The writes that put a fresh v1 devices cgroup into this state, in order:
    /// (file, line). First the reset ("a" to devices.deny for a default-deny policy), then one
    /// line per exception.
    pub fn v1_writes(&self) -> Vec<(&'static str, String)> {
        let (reset, exc) = if self.default_allow {
            ("devices.allow", "devices.deny")
        } else {
            ("devices.deny", "devices.allow")
        };
        let mut w = Vec::with_capacity(self.exceptions.len() + 1);
        w.push((reset, "a".to_string()));
        for e in &self.exceptions {
            w.push((exc, e.v1_line()));
        }
        w
    }

    /// Allow everything, nothing excepted.
    pub fn is_allow_all(&self) -> bool {
        self.default_allow && self.exceptions.is_empty()
    }

    /// The eBPF program (cgroup v2) enforcing this policy.
    pub fn bpf_program(&self) -> Vec<Insn> {
        let mut p = Vec::with_capacity(8 + self.exceptions.len() * 8);
        // struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
        // access_type = (access << 16) | type
        p.push(Insn::ldx_w(2, 1, 0));
        p.push(Insn::alu32_k(BPF_AND, 2, 0xffff)); // r2 = type
        p.push(Insn::ldx_w(3, 1, 0));
        p.push(Insn::alu32_k(BPF_RSH, 3, 16)); // r3 = access
        p.push(Insn::ldx_w(4, 1, 4)); // r4 = major
        p.push(Insn::ldx_w(5, 1, 8)); // r5 = minor
        let verdict = i32::from(!self.default_allow);
        for e in self.exceptions.iter().rev() {
            let mut block = Vec::with_capacity(8);
            let ty = if e.kind == 'b' {
                BPF_DEVCG_DEV_BLOCK
            } else {
                BPF_DEVCG_DEV_CHAR
            };
            block.push(Insn::jne_k(2, ty, 0));
            if e.access & ACC_ALL != ACC_ALL {
                block.push(Insn::mov32_x(1, 3));
                block.push(Insn::alu32_k(BPF_AND, 1, i32::from(e.access)));
                if self.default_allow {
                    // a deny exception matches any overlap (kernel: match_exception_partial)
                    block.push(Insn::jeq_k(1, 0, 0));
                } else {
                    // an allow exception must cover all of the request (match_exception)
                    block.push(Insn::jne_x(1, 3, 0));
                }
            }
            if let Some(m) = e.major {
                block.push(Insn::jne_k(4, m as i32, 0));
            }
            if let Some(m) = e.minor {
                block.push(Insn::jne_k(5, m as i32, 0));
            }
            block.push(Insn::mov64_k(0, verdict));
            block.push(Insn::exit());
            let n = block.len();
            for (i, ins) in block.iter_mut().enumerate() {
                if ins.is_jump() {
                    // jump past this block: target = n, from i+1
                    ins.off = (n - i - 1) as i16;
                }
            }
            p.extend(block);
        }
        p.push(Insn::mov64_k(0, i32::from(self.default_allow)));
        p.push(Insn::exit());
        p
    }
}

const BPF_DEVCG_DEV_BLOCK: i32 = 1;
const BPF_DEVCG_DEV_CHAR: i32 = 2;
const BPF_AND: u8 = 0x50;
const BPF_RSH: u8 = 0x70;

/// struct bpf_insn.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst_reg (low nibble) | src_reg << 4
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            regs: (dst & 0xf) | (src << 4),
            off,
            imm,
        }
    }
    /// dst = *(u32 *)(src + off)
    fn ldx_w(dst: u8, src: u8, off: i16) -> Insn {
        Insn::new(0x61, dst, src, off, 0)
    }
    fn alu32_k(op: u8, dst: u8, imm: i32) -> Insn {
        Insn::new(0x04 | op, dst, 0, 0, imm)
    }
    fn mov32_x(dst: u8, src: u8) -> Insn {
        Insn::new(0xbc, dst, src, 0, 0)
    }
    fn mov64_k(dst: u8, imm: i32) -> Insn {
        Insn::new(0xb7, dst, 0, 0, imm)
    }
    fn jne_k(dst: u8, imm: i32, off: i16) -> Insn {
        Insn::new(0x55, dst, 0, off, imm)
    }
    fn jeq_k(dst: u8, imm: i32, off: i16) -> Insn {
        Insn::new(0x15, dst, 0, off, imm)
    }
    fn jne_x(dst: u8, src: u8, off: i16) -> Insn {
        Insn::new(0x5d, dst, src, off, 0)
    }
    fn exit() -> Insn {
        Insn::new(0x95, 0, 0, 0, 0)
    }
    fn is_jump(&self) -> bool {
        matches!(self.code, 0x15 | 0x55 | 0x5d)
    }
}

// ---------------------------------------------------------------- bpf(2)

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// union bpf_attr, large enough for every command used here; the kernel checks that bytes past
/// the command's struct are zero, so it is always zero-initialised.
#[repr(C, align(8))]
struct BpfAttr([u8; 128]);

impl BpfAttr {
    fn new() -> BpfAttr {
        BpfAttr([0; 128])
    }
    fn put_u32(&mut self, off: usize, v: u32) {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
    }
    fn put_u64(&mut self, off: usize, v: u64) {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
    }
    fn get_u32(&self, off: usize) -> u32 {
        u32::from_ne_bytes(self.0[off..off + 4].try_into().unwrap_or([0; 4]))
    }
}

fn bpf(cmd: libc::c_long, attr: &mut BpfAttr) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a valid, initialised, 8-aligned buffer of the size passed; every pointer
    // stored inside it (instructions, license, log, id array) points to memory that outlives
    // this call, as the callers below guarantee.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut BpfAttr,
            std::mem::size_of::<BpfAttr>(),
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: the bpf syscall just returned this new file descriptor and nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

/// Load a cgroup device program; on a verifier error the log is included.
pub fn load_program(insns: &[Insn]) -> Result<OwnedFd> {
    let license = b"Apache\0";
    let mut log = vec![0u8; 16 * 1024];
    let mut a = BpfAttr::new();
    a.put_u32(0, BPF_PROG_TYPE_CGROUP_DEVICE);
    a.put_u32(4, insns.len() as u32);
    a.put_u64(8, insns.as_ptr() as u64);
    a.put_u64(16, license.as_ptr() as u64);
    a.put_u32(24, 1); // log_level
    a.put_u32(28, log.len() as u32);
    a.put_u64(32, log.as_mut_ptr() as u64);
    match bpf(BPF_PROG_LOAD, &mut a) {
        Ok(fd) => Ok(owned(fd)),
        Err(e) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(0);
            let msg = String::from_utf8_lossy(&log[..end]);
            Err(anyhow!(
                "loading the device cgroup eBPF program: {}{}{}",
                super::util::errstr(&e),
                if msg.is_empty() { "" } else { ": " },
                msg.trim()
            ))
        }
    }
}

/// Ids of the device programs attached to the cgroup.
fn query(cgroup: BorrowedFd<'_>) -> std::io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut a = BpfAttr::new();
    a.put_u32(0, cgroup.as_raw_fd() as u32);
    a.put_u32(4, BPF_CGROUP_DEVICE);
    a.put_u64(16, ids.as_mut_ptr() as u64);
    a.put_u32(24, ids.len() as u32);
    bpf(BPF_PROG_QUERY, &mut a)?;
    let n = a.get_u32(24) as usize;
    ids.truncate(n.min(64));
    Ok(ids)
}

/// Attach `prog` to the cgroup (BPF_F_ALLOW_MULTI) and then detach every device program that
/// was attached before, so the cgroup is never without a filter while it is replaced.
pub fn attach_replacing(cgroup: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> Result<()> {
    let old = query(cgroup).unwrap_or_default();
    let mut a = BpfAttr::new();
    a.put_u32(0, cgroup.as_raw_fd() as u32);
    a.put_u32(4, prog.as_raw_fd() as u32);
    a.put_u32(8, BPF_CGROUP_DEVICE);
    a.put_u32(12, BPF_F_ALLOW_MULTI);
    bpf(BPF_PROG_ATTACH, &mut a).map_err(|e| {
        anyhow!(
            "attaching the device cgroup eBPF program: {}",
            super::util::errstr(&e)
        )
    })?;
    detach_ids(cgroup, &old)
}

#[cfg(test)]
/// How many device programs are attached to the cgroup directory (for tests and diagnostics).
pub fn attached_count(cgroup: BorrowedFd<'_>) -> Result<usize> {
    query(cgroup)
        .map(|v| v.len())
        .map_err(|e| anyhow!("querying device programs: {}", super::util::errstr(&e)))
}

/// Detach every device program from the cgroup (for an allow-all policy on update).
pub fn detach_all(cgroup: BorrowedFd<'_>) -> Result<()> {
    let old = query(cgroup).unwrap_or_default();
    detach_ids(cgroup, &old)
}

fn detach_ids(cgroup: BorrowedFd<'_>, ids: &[u32]) -> Result<()> {
    for &id in ids {
        let mut g = BpfAttr::new();
        g.put_u32(0, id);
        let pfd = match bpf(BPF_PROG_GET_FD_BY_ID, &mut g) {
            Ok(fd) => owned(fd),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => {
                return Err(anyhow!(
                    "getting device program {id}: {}",
                    super::util::errstr(&e)
                ))
            }
        };
        let mut d = BpfAttr::new();
        d.put_u32(0, cgroup.as_raw_fd() as u32);
        d.put_u32(4, pfd.as_raw_fd() as u32);
        d.put_u32(8, BPF_CGROUP_DEVICE);
        if let Err(e) = bpf(BPF_PROG_DETACH, &mut d) {
            if e.raw_os_error() != Some(libc::ENOENT) {
                return Err(anyhow!(
                    "detaching old device program {id}: {}",
                    super::util::errstr(&e)
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

    fn r(allow: bool, kind: char, major: Option<u32>, minor: Option<u32>, access: u8) -> Rule {
        Rule {
            allow,
            kind,
            major,
            minor,
            access,
        }
    }

    #[test]
    fn v1_lines() {
        assert_eq!(
            r(true, 'c', Some(1), Some(3), ACC_ALL).v1_line(),
            "c 1:3 rwm"
        );
        assert_eq!(
            r(true, 'c', Some(136), None, ACC_ALL).v1_line(),
            "c 136:* rwm"
        );
        assert_eq!(r(true, 'b', None, None, ACC_MKNOD).v1_line(), "b *:* m");
        assert_eq!(
            r(false, 'c', Some(5), Some(1), ACC_READ | ACC_WRITE).v1_line(),
            "c 5:1 rw"
        );
    }

    #[test]
    fn spec_conversion() {
        let d = LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()
            .unwrap();
        assert_eq!(
            from_spec(0, &d).unwrap(),
            r(false, 'a', None, None, ACC_ALL)
        );
        let d = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::C)
            .major(10)
            .minor(229)
            .access("rw")
            .build()
            .unwrap();
        assert_eq!(
            from_spec(0, &d).unwrap(),
            r(true, 'c', Some(10), Some(229), ACC_READ | ACC_WRITE)
        );
        let d = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::P)
            .build()
            .unwrap();
        let e = from_spec(3, &d).unwrap_err().to_string();
        assert!(e.contains("linux.resources.devices[3].type"), "{e}");
        let d = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .access("rx")
            .build()
            .unwrap();
        assert!(from_spec(0, &d).is_err());
    }

    #[test]
    fn policy_default_runc_spec() {
        // runc spec: deny all, then runc's defaults appended
        let mut rules = vec![r(false, 'a', None, None, ACC_ALL)];
        rules.extend_from_slice(DEFAULT_ALLOWED);
        let p = Policy::build(&rules).unwrap();
        assert!(!p.default_allow);
        assert_eq!(p.exceptions.len(), DEFAULT_ALLOWED.len());
        let w = p.v1_writes();
        assert_eq!(w[0], ("devices.deny", "a".to_string()));
        assert_eq!(w[1], ("devices.allow", "c *:* m".to_string()));
        assert_eq!(w[3], ("devices.allow", "c 1:3 rwm".to_string()));
    }

    #[test]
    fn policy_refuses_holes_in_wildcards() {
        let e = Policy::build(&[
            r(false, 'a', None, None, ACC_ALL),
            r(true, 'c', None, None, ACC_ALL),
            r(false, 'c', Some(1), Some(3), ACC_WRITE),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("\"c 1:3 w\"") && e.contains("\"c *:* rwm\""),
            "{e}"
        );
        // blacklist: allowing one device inside a wildcard deny
        assert!(Policy::build(&[
            r(true, 'a', None, None, ACC_ALL),
            r(false, 'b', Some(8), None, ACC_ALL),
            r(true, 'b', Some(8), Some(0), ACC_READ),
        ])
        .is_err());
        // no overlap in access: fine (mknod-only wildcard, deny of rw)
        assert!(Policy::build(&[
            r(true, 'c', None, None, ACC_MKNOD),
            r(false, 'c', Some(1), Some(3), ACC_READ | ACC_WRITE),
        ])
        .is_ok());
    }

    #[test]
    fn v1_transitions() {
        let list = "c 1:3 rwm\nc 136:* rwm\nc *:* m\nc 1:5 r\n";
        let cur = Policy::from_v1_list(list).unwrap();
        assert_eq!(cur.exceptions.len(), 4);
        assert_eq!(cur.exceptions[1], r(true, 'c', Some(136), None, ACC_ALL));
        assert!(Policy::from_v1_list("a *:* rwm\n").is_none());
        assert_eq!(Policy::from_v1_list("").unwrap(), Policy::default());
        let target = Policy::build(&[
            r(false, 'a', None, None, ACC_ALL),
            r(true, 'c', Some(1), Some(3), ACC_ALL),
            r(true, 'c', None, None, ACC_MKNOD),
            r(true, 'c', Some(1), Some(5), ACC_ALL),
            r(true, 'c', Some(10), Some(200), ACC_READ),
        ])
        .unwrap();
        assert_eq!(
            target.v1_transition(Some(&cur)),
            vec![
                ("devices.allow", "c 1:5 wm".to_string()),
                ("devices.allow", "c 10:200 r".to_string()),
                ("devices.deny", "c 136:* rwm".to_string()),
            ]
        );
        // nothing to do when equal
        assert!(cur.v1_transition(Some(&cur)).is_empty());
        // unknown current state or a default change: full reset
        assert_eq!(target.v1_transition(None), target.v1_writes());
        let allow_all = Policy::build(&[r(true, 'a', None, None, ACC_ALL)]).unwrap();
        assert_eq!(
            allow_all.v1_transition(Some(&cur)),
            vec![("devices.allow", "a".to_string())]
        );
    }

    #[test]
    fn policy_semantics() {
        // allow all then deny one: blacklist with one exception
        let p = Policy::build(&[
            r(true, 'a', None, None, ACC_ALL),
            r(false, 'c', Some(1), Some(3), ACC_WRITE),
        ])
        .unwrap();
        assert!(p.default_allow);
        assert_eq!(
            p.exceptions,
            vec![r(false, 'c', Some(1), Some(3), ACC_WRITE)]
        );
        assert_eq!(
            p.v1_writes(),
            vec![
                ("devices.allow", "a".to_string()),
                ("devices.deny", "c 1:3 w".to_string())
            ]
        );
        // whitelist: allow r, allow w merge; deny w removes w; deny r removes rule
        let p = Policy::build(&[
            r(true, 'c', Some(1), Some(3), ACC_READ),
            r(true, 'c', Some(1), Some(3), ACC_WRITE),
        ])
        .unwrap();
        assert_eq!(
            p.exceptions,
            vec![r(true, 'c', Some(1), Some(3), ACC_READ | ACC_WRITE)]
        );
        let p = Policy::build(&[
            r(true, 'c', Some(1), Some(3), ACC_ALL),
            r(false, 'c', Some(1), Some(3), ACC_ALL),
        ])
        .unwrap();
        assert!(p.exceptions.is_empty() && !p.default_allow);
        // a later "a" resets
        let p = Policy::build(&[
            r(true, 'c', Some(1), Some(3), ACC_ALL),
            r(true, 'a', None, None, ACC_ALL),
        ])
        .unwrap();
        assert!(p.is_allow_all());
        assert!(!Policy::build(&[]).unwrap().default_allow);
    }

    /// Run the generated program in a tiny interpreter over the instructions it uses.
    fn run(prog: &[Insn], ty: u32, access: u32, major: u32, minor: u32) -> u64 {
        let ctx = [(access << 16) | ty, major, minor];
        let mut reg = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let dst = (i.regs & 0xf) as usize;
            let src = (i.regs >> 4) as usize;
            pc += 1;
            match i.code {
                0x61 => {
                    assert_eq!(src, 1);
                    reg[dst] = u64::from(ctx[(i.off / 4) as usize]);
                }
                0x54 => reg[dst] = u64::from((reg[dst] as u32) & (i.imm as u32)),
                0x74 => reg[dst] = u64::from((reg[dst] as u32) >> i.imm),
                0xbc => reg[dst] = u64::from(reg[src] as u32),
                0xb7 => reg[dst] = i.imm as i64 as u64,
                0x55 => {
                    if reg[dst] != i.imm as i64 as u64 {
                        pc += i.off as usize;
                    }
                }
                0x15 => {
                    if reg[dst] == i.imm as i64 as u64 {
                        pc += i.off as usize;
                    }
                }
                0x5d => {
                    if reg[dst] != reg[src] {
                        pc += i.off as usize;
                    }
                }
                0x95 => return reg[0],
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    #[test]
    fn bpf_program_whitelist() {
        let mut rules = vec![r(false, 'a', None, None, ACC_ALL)];
        rules.extend_from_slice(DEFAULT_ALLOWED);
        rules.push(r(true, 'b', Some(8), Some(0), ACC_READ));
        let prog = Policy::build(&rules).unwrap().bpf_program();
        let (c, b) = (2, 1);
        let (rd, wr, mk) = (2, 4, 1);
        assert_eq!(run(&prog, c, rd | wr, 1, 3), 1); // /dev/null rw
        assert_eq!(run(&prog, c, rd, 1, 4), 0); // /dev/port
        assert_eq!(run(&prog, c, mk, 99, 99), 1); // mknod any char
        assert_eq!(run(&prog, c, rd | mk, 99, 99), 0);
        assert_eq!(run(&prog, c, rd | wr, 136, 7), 1); // pts
        assert_eq!(run(&prog, b, rd, 8, 0), 1);
        assert_eq!(run(&prog, b, rd | wr, 8, 0), 0);
        assert_eq!(run(&prog, b, rd, 8, 1), 0);
    }

    #[test]
    fn bpf_program_blacklist() {
        let prog = Policy::build(&[
            r(true, 'a', None, None, ACC_ALL),
            r(false, 'c', Some(1), None, ACC_WRITE),
        ])
        .unwrap()
        .bpf_program();
        assert_eq!(run(&prog, 2, 4, 1, 3), 0);
        assert_eq!(run(&prog, 2, 2, 1, 3), 1);
        assert_eq!(run(&prog, 2, 6, 1, 9), 0);
        assert_eq!(run(&prog, 1, 4, 1, 3), 1);
        assert_eq!(
            Policy::build(&[r(true, 'a', None, None, 7)])
                .unwrap()
                .bpf_program()
                .len(),
            8
        );
    }
}
