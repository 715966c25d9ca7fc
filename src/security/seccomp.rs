//! OCI seccomp profile -> classic BPF, and installation with seccomp(2).
//!
//! We generate the BPF ourselves instead of using `seccompiler`: seccompiler 0.5 builds one filter
//! for one architecture with a single match action, while OCI profiles need a per-rule action and
//! errno, several architectures in one program (x86_64 + x32 + i386 share a host), and runc's
//! "-ENOSYS for syscalls newer than the profile" stub.
//!
//! Program layout:
//! ```text
//!   ld  [arch]
//!   jeq AUDIT_ARCH_<a1> -> A1 ; jeq AUDIT_ARCH_<a2> -> A2 ; ...
//!   ret <bad-arch action>                 (an architecture not listed: libseccomp's KILL)
//! A1: ld [nr]
//!   binary search over sorted, merged syscall-number ranges (about log2(ranges) jumps)
//!   leaf: ret <action>  |  rule chain: per rule the ANDed argument checks, then ret <action>
//! ```
//! x86_64 and x32 share AUDIT_ARCH_X86_64; x32 numbers carry bit 30, so both live in one search
//! tree over the 32-bit number space. Jumps farther than 255 instructions get `ja` trampolines.
//!
//! How rules combine (the native ABI always present, same-index conditions split, the first
//! unconditional rule of a syscall winning, conflicts refused) follows libseccomp as runc uses
//! it; ARCHITECTURE.md ("Seccomp") has the list, and `oracle.rs` checks it against libseccomp.

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

use super::ruletree::{AddError, ApiArg, ApiOp, Block, Blocks, SysTree, WordOp};
use super::syscall_table;
use std::os::fd::{FromRawFd, OwnedFd};

// seccomp return values (linux/seccomp.h).
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_KILL_THREAD: u32 = 0x0000_0000;
const RET_TRAP: u32 = 0x0003_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_TRACE: u32 = 0x7ff0_0000;
const RET_USER_NOTIF: u32 = 0x7fc0_0000;
const RET_LOG: u32 = 0x7ffc_0000;
const RET_ALLOW: u32 = 0x7fff_0000;

/// Action for a syscall from an architecture the profile does not list. libseccomp's default
/// `SCMP_FLTATR_ACT_BADARCH` is SCMP_ACT_KILL (kill the thread), which runc keeps.
pub const BAD_ARCH_ACTION: u32 = RET_KILL_THREAD;

// seccomp(2) filter flags.
const FLAG_TSYNC: u32 = 1;
const FLAG_LOG: u32 = 2;
const FLAG_SPEC_ALLOW: u32 = 4;
/// Return a notification fd from seccomp(2) (set when a rule is SCMP_ACT_NOTIFY).
pub const FLAG_NEW_LISTENER: u32 = 8;
/// With TSYNC and NEW_LISTENER: a thread that cannot be synchronised is ESRCH, not the return
/// value (which is the listener fd).
const FLAG_TSYNC_ESRCH: u32 = 16;
/// Linux 5.19: a notifying syscall waits killably once the agent has received it.
pub const FLAG_WAIT_KILLABLE_RECV: u32 = 32;

// AUDIT_ARCH_* (linux/audit.h).
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;

const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// BPF_MAXINSNS.
pub const MAX_INSNS: usize = 4096;

// Classic BPF opcodes (linux/filter.h).
const BPF_LD_W_ABS: u16 = 0x20; // BPF_LD (0) | BPF_W (0) | BPF_ABS (0x20)
const BPF_ALU_AND_K: u16 = 0x04 | 0x50; // BPF_ALU | BPF_AND | BPF_K
const BPF_JMP_JA: u16 = 0x05; // BPF_JMP | BPF_JA
const BPF_JEQ_K: u16 = 0x05 | 0x10;
const BPF_JGT_K: u16 = 0x05 | 0x20;
const BPF_JGE_K: u16 = 0x05 | 0x30;
const BPF_RET_K: u16 = 0x06;

// struct seccomp_data offsets.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARGS: u32 = 16;

/// A compiled filter: the BPF program and the seccomp(2) flags to install it with.
#[derive(Clone, Debug)]
pub struct Program {
    pub insns: Vec<libc::sock_filter>,
    pub flags: u32,
}

/// A syscall ABI we have a number table for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Abi {
    X86_64,
    X32,
    I386,
    Aarch64,
    Arm,
    Riscv64,
    S390x,
    Ppc64le,
}

// AUDIT_ARCH_* of the other ABIs (linux/audit.h: EM_* | 64BIT | LE).
const AUDIT_ARCH_ARM: u32 = 0x4000_0028;
const AUDIT_ARCH_RISCV64: u32 = 0xc000_00f3;
const AUDIT_ARCH_S390X: u32 = 0x8000_0016;
const AUDIT_ARCH_PPC64LE: u32 = 0xc000_0015;

impl Abi {
    pub const ALL: [Abi; 8] = [
        Abi::X86_64,
        Abi::X32,
        Abi::I386,
        Abi::Aarch64,
        Abi::Arm,
        Abi::Riscv64,
        Abi::S390x,
        Abi::Ppc64le,
    ];

    /// The ABI of the build target (libseccomp's SCMP_ARCH_NATIVE).
    pub fn native() -> Option<Abi> {
        if cfg!(target_arch = "x86_64") {
            Some(Abi::X86_64)
        } else if cfg!(target_arch = "aarch64") {
            Some(Abi::Aarch64)
        } else if cfg!(target_arch = "x86") {
            Some(Abi::I386)
        } else if cfg!(target_arch = "arm") {
            Some(Abi::Arm)
        } else if cfg!(target_arch = "riscv64") {
            Some(Abi::Riscv64)
        } else if cfg!(target_arch = "s390x") {
            Some(Abi::S390x)
        } else if cfg!(all(target_arch = "powerpc64", target_endian = "little")) {
            Some(Abi::Ppc64le)
        } else {
            None
        }
    }

    pub fn audit_arch(self) -> u32 {
        match self {
            Abi::X86_64 | Abi::X32 => AUDIT_ARCH_X86_64,
            Abi::I386 => AUDIT_ARCH_I386,
            Abi::Aarch64 => AUDIT_ARCH_AARCH64,
            Abi::Arm => AUDIT_ARCH_ARM,
            Abi::Riscv64 => AUDIT_ARCH_RISCV64,
            Abi::S390x => AUDIT_ARCH_S390X,
            Abi::Ppc64le => AUDIT_ARCH_PPC64LE,
        }
    }

    /// This ABI's column in `syscall_table::SYSCALLS`.
    fn column(self) -> usize {
        match self {
            Abi::X86_64 => 0,
            Abi::I386 => 1,
            Abi::X32 => 2,
            Abi::Aarch64 => 3,
            Abi::Arm => 4,
            Abi::Riscv64 => 5,
            Abi::S390x => 6,
            Abi::Ppc64le => 7,
        }
    }

    /// The slice of the 32-bit syscall-number space this ABI owns under its AUDIT_ARCH.
    fn domain(self) -> (u32, u32) {
        match self {
            Abi::X86_64 => (0, X32_SYSCALL_BIT - 1),
            Abi::X32 => (X32_SYSCALL_BIT, u32::MAX),
            _ => (0, u32::MAX),
        }
    }

    /// Arguments are 32 bits wide (libseccomp compares only the low word, values truncated).
    pub fn args32(self) -> bool {
        matches!(self, Abi::X32 | Abi::I386 | Abi::Arm)
    }

    /// `struct seccomp_data` is laid out in this ABI's byte order (the kernel's).
    pub fn big_endian(self) -> bool {
        matches!(self, Abi::S390x)
    }

    /// Every (name, number) this ABI has, sorted by name.
    pub fn entries(self) -> impl Iterator<Item = (&'static str, u32)> {
        let col = self.column();
        syscall_table::SYSCALLS
            .iter()
            .map(move |(n, nrs)| (*n, nrs[col]))
            .filter(|(_, nr)| *nr != syscall_table::NONE)
    }

    /// Every syscall name this ABI has.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        self.entries().map(|(n, _)| n)
    }

    /// Number of `name` in this ABI, or None if the ABI has no such syscall.
    pub fn lookup(self, name: &str) -> Option<u32> {
        resolve(name).and_then(|nrs| self.pick(nrs))
    }

    fn pick(self, nrs: &[u32; syscall_table::ABIS]) -> Option<u32> {
        Some(nrs[self.column()]).filter(|nr| *nr != syscall_table::NONE)
    }
}

/// One syscall name of a rule, resolved.
#[derive(Clone)]
struct Target {
    /// The name as the profile gives it (for messages).
    name: String,
    /// Its numbers in every ABI (None: no ABI has it, e.g. i386-only `send`).
    nrs: Option<&'static [u32; syscall_table::ABIS]>,
    /// On i386, (multiplexer syscall, sub-call) when it is also reachable through socketcall(2)
    /// or ipc(2).
    i386_mux: Option<(u32, u32)>,
}

/// i386 multiplexes the socket and SysV IPC calls through socketcall(2) and ipc(2); like
/// libseccomp, a rule on e.g. `socket` also applies to `socketcall` with arg0 == SYS_SOCKET.
pub(crate) fn i386_mux(name: &str) -> Option<(u32, u32)> {
    const SOCKETCALL: u32 = 102;
    const IPC: u32 = 117;
    // linux/net.h SYS_* (1-based, in order).
    const SOCK: [&str; 20] = [
        "socket",
        "bind",
        "connect",
        "listen",
        "accept",
        "getsockname",
        "getpeername",
        "socketpair",
        "send",
        "recv",
        "sendto",
        "recvfrom",
        "shutdown",
        "setsockopt",
        "getsockopt",
        "sendmsg",
        "recvmsg",
        "accept4",
        "recvmmsg",
        "sendmmsg",
    ];
    // linux/ipc.h call numbers.
    const SYSV: [(&str, u32); 12] = [
        ("semop", 1),
        ("semget", 2),
        ("semctl", 3),
        ("semtimedop", 4),
        ("msgsnd", 11),
        ("msgrcv", 12),
        ("msgget", 13),
        ("msgctl", 14),
        ("shmat", 21),
        ("shmdt", 22),
        ("shmget", 23),
        ("shmctl", 24),
    ];
    if let Some(i) = SOCK.iter().position(|n| *n == name) {
        return Some((SOCKETCALL, i as u32 + 1));
    }
    SYSV.iter()
        .find(|(n, _)| *n == name)
        .map(|(_, k)| (IPC, *k))
}

/// A syscall's numbers in every ABI (one binary search for all of them).
fn resolve(name: &str) -> Option<&'static [u32; syscall_table::ABIS]> {
    let t = syscall_table::SYSCALLS;
    t.binary_search_by(|(n, _)| (*n).cmp(name))
        .ok()
        .map(|i| &t[i].1)
}

fn abi_of(a: Arch) -> Option<Abi> {
    match a {
        Arch::ScmpArchNative => Abi::native(),
        Arch::ScmpArchX86_64 => Some(Abi::X86_64),
        Arch::ScmpArchX86 => Some(Abi::I386),
        Arch::ScmpArchX32 => Some(Abi::X32),
        Arch::ScmpArchAarch64 => Some(Abi::Aarch64),
        Arch::ScmpArchArm => Some(Abi::Arm),
        Arch::ScmpArchRiscv64 => Some(Abi::Riscv64),
        Arch::ScmpArchS390x => Some(Abi::S390x),
        Arch::ScmpArchPpc64le => Some(Abi::Ppc64le),
        _ => None,
    }
}

fn action_value(act: LinuxSeccompAction, errno: Option<u32>, field: &str) -> Result<u32> {
    let data = |e: Option<u32>| -> Result<u32> {
        let e = e.unwrap_or(libc::EPERM as u32);
        if e > 0xffff {
            bail!("{field}: errnoRet {e} does not fit in 16 bits");
        }
        Ok(e)
    };
    // config-linux.md "Seccomp": when the action doesn't support an errno, the runtime MUST
    // print an error and fail.
    if errno.is_some()
        && !matches!(
            act,
            LinuxSeccompAction::ScmpActErrno | LinuxSeccompAction::ScmpActTrace
        )
    {
        bail!("{field}: errnoRet is only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not {act:?}");
    }
    Ok(match act {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => RET_KILL_THREAD,
        LinuxSeccompAction::ScmpActKillProcess => RET_KILL_PROCESS,
        LinuxSeccompAction::ScmpActTrap => RET_TRAP,
        LinuxSeccompAction::ScmpActErrno => RET_ERRNO | data(errno)?,
        LinuxSeccompAction::ScmpActTrace => RET_TRACE | data(errno)?,
        LinuxSeccompAction::ScmpActLog => RET_LOG,
        LinuxSeccompAction::ScmpActAllow => RET_ALLOW,
        LinuxSeccompAction::ScmpActNotify => RET_USER_NOTIF,
    })
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Rule {
    /// The conditions as libseccomp receives them, at most one per argument.
    conds: Vec<ApiArg>,
    action: u32,
    /// Index of the profile entry the rule comes from (for messages).
    origin: usize,
}

/// What a syscall-number range does.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Body {
    Ret(u32),
    /// libseccomp's rule tree for the syscall, as blocks (`ruletree`); `big_endian`: the ABI's
    /// `seccomp_data` byte order.
    Tree {
        blocks: Blocks,
        big_endian: bool,
    },
}

/// Compile an OCI seccomp profile.
pub fn compile(s: &LinuxSeccomp) -> Result<Program> {
    let default = action_value(
        s.default_action(),
        s.default_errno_ret(),
        "linux.seccomp.defaultAction",
    )?;

    // User notification (SCMP_ACT_NOTIFY): the filter is installed with NEW_LISTENER and the
    // listener fd goes to the agent at listenerPath. After the install the process still
    // writes to the runtime (its fd on the sync channel, with sendmsg(2), then Ready or an
    // error, with write(2)); a notifying write or sendmsg could never reach the agent, which
    // gets the fd only after that, so both are refused (runc: write, and the default action).
    if s.default_action() == LinuxSeccompAction::ScmpActNotify {
        bail!("linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be used as default action");
    }
    let mut notify = false;
    for (i, sc) in s.syscalls().iter().flatten().enumerate() {
        if sc.action() != LinuxSeccompAction::ScmpActNotify {
            continue;
        }
        notify = true;
        if let Some(n) = sc
            .names()
            .iter()
            .find(|n| matches!(n.as_str(), "write" | "sendmsg"))
        {
            bail!(
                "linux.seccomp.syscalls[{i}]: SCMP_ACT_NOTIFY cannot be used for the {n} syscall"
            );
        }
    }
    if notify
        && s.listener_path()
            .as_ref()
            .is_none_or(|p| p.as_os_str().is_empty())
    {
        bail!("linux.seccomp.listenerPath is not set: SCMP_ACT_NOTIFY needs the unix socket of a seccomp agent");
    }
    // (listenerPath without a NOTIFY rule is never used; runc accepts it, and so do we.)

    let mut flags = if notify { FLAG_NEW_LISTENER } else { 0 };
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync if notify => {
                FLAG_TSYNC | FLAG_TSYNC_ESRCH
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => FLAG_SPEC_ALLOW,
            // Only meaningful with a notification listener: libseccomp sets it only together
            // with NEW_LISTENER (the kernel refuses it alone).
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv if notify => {
                FLAG_WAIT_KILLABLE_RECV
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => 0,
        };
    }

    // Architectures -> ABIs. Like libseccomp (a filter always starts with the native
    // architecture and runc adds the listed ones to it), the native ABI is always filtered,
    // whether the profile lists it or not.
    let mut abis: Vec<Abi> = Vec::new();
    if let Some(n) = Abi::native() {
        abis.push(n);
    }
    let native_be = Abi::native().is_some_and(Abi::big_endian);
    for (i, a) in s.architectures().iter().flatten().enumerate() {
        if let Some(abi) = abi_of(*a) {
            // libseccomp puts only architectures of one byte order in a filter (EDOM).
            if abi.big_endian() != native_be {
                bail!(
                    "linux.seccomp.architectures[{i}]: {a:?} has the other byte order than this host's; one filter cannot hold both"
                );
            }
            if !abis.contains(&abi) {
                abis.push(abi);
            }
        }
        // Architectures we have no syscall table for (mips, loongarch64, ...) cannot run on
        // the hosts husk is built for and get the bad-arch action like any unlisted one.
    }
    if abis.is_empty() {
        bail!(
            "linux.seccomp.architectures: none of {:?} is supported (known: x86_64, x86, x32, aarch64, arm, riscv64, s390x, ppc64le)",
            s.architectures()
        );
    }

    // runc's -ENOSYS stub: unless the default action is permissive or already ENOSYS, syscalls
    // numbered above the highest one the profile names return ENOSYS, so that libcs fall back
    // from syscalls newer than the profile (clone3, ...) instead of failing with EPERM.
    let enosys_stub = !matches!(default, RET_ALLOW | RET_LOG)
        && default & 0xffff_0000 != RET_TRACE
        && !(s.default_action() == LinuxSeccompAction::ScmpActErrno
            && s.default_errno_ret() == Some(libc::ENOSYS as u32));
    let enosys = RET_ERRNO | libc::ENOSYS as u32;

    // Parse rules once (arch independent), keeping spec order. A rule with two conditions on
    // one argument cannot be given to libseccomp (one comparison per argument per rule), so
    // runc gives each of its conditions a rule of its own: they are ORed, not ANDed.
    // (libseccomp multiplexes the socket and SysV IPC calls on ppc64 and s390x too.)
    let want_i386 = abis
        .iter()
        .any(|a| matches!(a, Abi::I386 | Abi::Ppc64le | Abi::S390x));
    let mut parsed: Vec<(Vec<Target>, Rule)> = Vec::new();
    for (i, sc) in s.syscalls().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        let action = action_value(sc.action(), sc.errno_ret(), &field)?;
        let mut conds = Vec::new();
        for (j, a) in sc.args().iter().flatten().enumerate() {
            if a.index() > 5 {
                bail!(
                    "{field}.args[{j}]: index {} out of range (0..=5)",
                    a.index()
                );
            }
            let op = match a.op() {
                LinuxSeccompOperator::ScmpCmpNe => ApiOp::Ne,
                LinuxSeccompOperator::ScmpCmpLt => ApiOp::Lt,
                LinuxSeccompOperator::ScmpCmpLe => ApiOp::Le,
                LinuxSeccompOperator::ScmpCmpEq => ApiOp::Eq,
                LinuxSeccompOperator::ScmpCmpGe => ApiOp::Ge,
                LinuxSeccompOperator::ScmpCmpGt => ApiOp::Gt,
                LinuxSeccompOperator::ScmpCmpMaskedEq => ApiOp::MaskedEq,
            };
            let (mask, datum) = if op == ApiOp::MaskedEq {
                (a.value(), a.value_two().unwrap_or(0))
            } else {
                (u64::MAX, a.value())
            };
            conds.push(ApiArg {
                index: a.index() as u32,
                op,
                mask,
                datum,
            });
        }
        // Unknown names are skipped, as libseccomp/runc do.
        let targets: Vec<Target> = sc
            .names()
            .iter()
            .map(|n| Target {
                nrs: resolve(n),
                i386_mux: if want_i386 { i386_mux(n) } else { None },
                name: n.clone(),
            })
            .filter(|t| t.nrs.is_some() || t.i386_mux.is_some())
            .collect();
        let mut seen = [false; 6];
        let same_index = conds.iter().any(|c| {
            let dup = seen[c.index as usize];
            seen[c.index as usize] = true;
            dup
        });
        if same_index {
            for c in conds {
                let rule = Rule {
                    conds: vec![c],
                    action,
                    origin: i,
                };
                parsed.push((targets.clone(), rule));
            }
        } else {
            conds.sort_by_key(|c| c.index);
            let rule = Rule {
                conds,
                action,
                origin: i,
            };
            parsed.push((targets, rule));
        }
    }

    // Per AUDIT_ARCH, segments covering the whole 32-bit number space.
    let mut arch_blocks: Vec<(u32, Vec<(u32, Body)>)> = Vec::new();
    for &abi in &abis {
        let audit = abi.audit_arch();
        if arch_blocks.iter().any(|(a, _)| *a == audit) {
            continue;
        }
        let mut segs = Vec::new();
        // ABIs sharing this AUDIT_ARCH, in number order (x86_64 then x32).
        let single = [abi];
        let sharing: &[Abi] = if audit == AUDIT_ARCH_X86_64 {
            &[Abi::X86_64, Abi::X32]
        } else {
            &single
        };
        for &sub in sharing {
            if abis.contains(&sub) {
                abi_segments(
                    sub,
                    &parsed,
                    default,
                    enosys_stub.then_some(enosys),
                    &mut segs,
                )?;
            } else {
                push_seg(&mut segs, sub.domain().0, Body::Ret(BAD_ARCH_ACTION));
                if sub == Abi::X32 {
                    // Syscall -1 (a tracer's "skip") is not an x32 call: libseccomp gives it
                    // the default action.
                    push_seg(&mut segs, u32::MAX, Body::Ret(default));
                }
            }
        }
        arch_blocks.push((audit, segs));
    }

    let insns = codegen(&arch_blocks);
    if insns.len() > MAX_INSNS {
        bail!(
            "linux.seccomp: compiled filter has {} instructions, more than the kernel's {MAX_INSNS}",
            insns.len()
        );
    }
    Ok(Program { insns, flags })
}

/// Append `(start, body)` unless it continues an identical simple body.
fn push_seg(segs: &mut Vec<(u32, Body)>, start: u32, body: Body) {
    // A later segment starting at the same number replaces the earlier one.
    if segs.last().is_some_and(|(s, _)| *s == start) {
        segs.pop();
    }
    if let Some((_, last)) = segs.last() {
        if matches!(body, Body::Ret(_)) && *last == body {
            return;
        }
    }
    segs.push((start, body));
}

fn abi_segments(
    abi: Abi,
    parsed: &[(Vec<Target>, Rule)],
    default: u32,
    enosys: Option<u32>,
    segs: &mut Vec<(u32, Body)>,
) -> Result<()> {
    let (lo, hi) = abi.domain();
    // (number, profile entry, target index, rule index, i386 multiplexer sub-call or 0): runc
    // adds an entry's rules name by name, and for each name its split rules in order, so a
    // syscall's tree gets them in (entry, name, split rule) order. Unique keys: an unstable
    // sort keeps that order.
    let mut hits: Vec<(u32, u32, u32, u32, u32)> = Vec::with_capacity(512);
    let mut max_nr: Option<u32> = None;
    for (ri, (targets, rule)) in parsed.iter().enumerate() {
        // A rule whose action is the default changes nothing; runc does not add it (its names
        // still count for the -ENOSYS stub).
        let keep = rule.action != default;
        for (ti, t) in targets.iter().enumerate() {
            // Syscalls this arch lacks are skipped, as libseccomp/runc do.
            if let Some(nr) = t.nrs.and_then(|n| abi.pick(n)) {
                max_nr = Some(max_nr.map_or(nr, |m| m.max(nr)));
                if keep {
                    hits.push((nr, rule.origin as u32, ti as u32, ri as u32, 0));
                }
            }
            if let (Abi::I386 | Abi::Ppc64le | Abi::S390x, Some((mux, sub)), true) =
                (abi, t.i386_mux, keep)
            {
                hits.push((mux, rule.origin as u32, ti as u32, ri as u32, sub));
            }
        }
    }
    hits.sort_unstable();
    push_seg(segs, lo, Body::Ret(default));
    let mut i = 0;
    // (origin, action) of the rules added to the current syscall, for messages
    let mut added: Vec<(usize, u32)> = Vec::new();
    while i < hits.len() {
        let nr = hits[i].0;
        let end = i + hits[i..].iter().take_while(|h| h.0 == nr).count();
        // The common case: a first rule without conditions decides the syscall, whatever
        // follows (libseccomp keeps an unconditional entry as it is).
        let (_, _, _, r0, sub0) = hits[i];
        let first = &parsed[r0 as usize].1;
        if sub0 == 0 && first.conds.is_empty() {
            push_seg(segs, nr, Body::Ret(first.action));
            if nr < hi {
                push_seg(segs, nr + 1, Body::Ret(default));
            }
            i = end;
            continue;
        }
        let mut tree = SysTree::new();
        added.clear();
        for &(_, _, ti, ri, sub) in &hits[i..end] {
            let (ti, ri) = (ti as usize, ri as usize);
            let rule = &parsed[ri].1;
            let muxed: Vec<ApiArg>;
            let conds = if sub == 0 {
                &rule.conds
            } else {
                // The multiplexed form: arg0 selects the call (libseccomp replaces any arg0
                // condition; the others stay as given).
                let sel = ApiArg {
                    index: 0,
                    op: ApiOp::Eq,
                    mask: u64::MAX,
                    datum: sub as u64,
                };
                muxed = std::iter::once(sel)
                    .chain(rule.conds.iter().filter(|c| c.index != 0).copied())
                    .collect();
                &muxed
            };
            let name = &parsed[ri].0[ti].name;
            if let Err(e) = tree.add(conds, rule.action, !abi.args32()) {
                return Err(tree_error(e, rule, name, abi, &added));
            }
            added.push((rule.origin, rule.action));
            #[cfg(test)]
            if std::env::var_os("HUSK_ORACLE_TREE").is_some() {
                eprintln!(
                    "{abi:?} nr {nr} after syscalls[{}]:\n{}",
                    rule.origin,
                    tree.dump()
                );
            }
        }
        let body = match tree.decision(default) {
            Ok(Err(action)) => Body::Ret(action),
            Ok(Ok(blocks)) => Body::Tree {
                blocks,
                big_endian: abi.big_endian(),
            },
            Err(e) => {
                let (_, _, ti, ri, _) = hits[end - 1];
                let (ti, ri) = (ti as usize, ri as usize);
                return Err(tree_error(
                    e,
                    &parsed[ri].1,
                    &parsed[ri].0[ti].name,
                    abi,
                    &added,
                ));
            }
        };
        push_seg(segs, nr, body);
        if nr < hi {
            push_seg(segs, nr + 1, Body::Ret(default));
        }
        i = end;
    }
    if let (Some(e), Some(m)) = (enosys, max_nr) {
        if m < hi {
            push_seg(segs, m + 1, Body::Ret(e));
        }
    }
    Ok(())
}

/// The error for a rule libseccomp cannot add to a syscall's rule tree.
fn tree_error(
    e: AddError,
    rule: &Rule,
    name: &str,
    abi: Abi,
    added: &[(usize, u32)],
) -> anyhow::Error {
    let list = |v: Vec<usize>| -> String {
        let mut v = v;
        v.dedup();
        v.iter()
            .map(|o| format!("syscalls[{o}]"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let others: Vec<usize> = added
        .iter()
        .filter(|(o, a)| *a != rule.action && *o != rule.origin)
        .map(|(o, _)| *o)
        .collect();
    let earlier = list(if others.is_empty() {
        added.iter().map(|(o, _)| *o).collect()
    } else {
        others
    });
    let i = rule.origin;
    match e {
        AddError::Exists => anyhow::anyhow!(
            "linux.seccomp.syscalls[{i}]: its conditions on {name} ({abi:?}) overlap those of \
             {earlier} with another action, in a way libseccomp refuses (EEXIST: it cannot add \
             them to its rule tree for {name}); runc fails on such a profile"
        ),
        AddError::Loops => anyhow::anyhow!(
            "linux.seccomp.syscalls[{i}]: libseccomp never finishes adding its conditions on \
             {name} ({abi:?}) to those of {earlier} (its rule tree for {name} loops); runc hangs \
             on such a profile"
        ),
        AddError::TooLong => anyhow::anyhow!(
            "linux.seccomp.syscalls[{i}]: libseccomp takes too long adding its conditions on \
             {name} ({abi:?}) to those of {earlier} (merging its rule tree for {name} grows \
             exponentially with such overlapping rules); simplify the rules for {name}"
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Assembler with symbolic labels and automatic long-jump trampolines.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Label(usize);

#[derive(Clone, Copy, Debug)]
enum Ins {
    Ld(u32),
    And(u32),
    Ret(u32),
    J {
        code: u16,
        k: u32,
        t: Label,
        f: Label,
    },
    Ja(Label),
    Mark(Label),
}

struct Asm {
    code: Vec<Ins>,
    labels: usize,
}

impl Asm {
    fn label(&mut self) -> Label {
        self.labels += 1;
        Label(self.labels - 1)
    }
    fn push(&mut self, i: Ins) {
        self.code.push(i);
    }
    fn mark(&mut self, l: Label) {
        self.code.push(Ins::Mark(l));
    }

    fn positions(&self) -> (Vec<usize>, Vec<usize>) {
        let mut label_pos = vec![usize::MAX; self.labels];
        let mut pos = Vec::with_capacity(self.code.len());
        let mut p = 0;
        for i in &self.code {
            pos.push(p);
            match i {
                Ins::Mark(l) => label_pos[l.0] = p,
                _ => p += 1,
            }
        }
        (pos, label_pos)
    }

    fn finish(mut self) -> Vec<libc::sock_filter> {
        loop {
            let (pos, lp) = self.positions();
            let mut out: Vec<Ins> = Vec::with_capacity(self.code.len() + 8);
            let mut changed = false;
            for (idx, ins) in self.code.iter().enumerate() {
                if let Ins::J { code, k, t, f } = *ins {
                    let far = |l: Label| lp[l.0] - pos[idx] - 1 > 255;
                    if far(t) || far(f) {
                        changed = true;
                        let (nt, nf) = (Label(self.labels), Label(self.labels + 1));
                        self.labels += 2;
                        let t2 = if far(t) { nt } else { t };
                        let f2 = if far(f) { nf } else { f };
                        out.push(Ins::J {
                            code,
                            k,
                            t: t2,
                            f: f2,
                        });
                        if far(t) {
                            out.push(Ins::Mark(nt));
                            out.push(Ins::Ja(t));
                        }
                        if far(f) {
                            out.push(Ins::Mark(nf));
                            out.push(Ins::Ja(f));
                        }
                        continue;
                    }
                }
                out.push(*ins);
            }
            self.code = out;
            if !changed {
                break;
            }
        }
        let (pos, lp) = self.positions();
        let mut v = Vec::with_capacity(self.code.len());
        for (idx, ins) in self.code.iter().enumerate() {
            let rel = |l: Label| -> usize {
                let d = lp[l.0];
                assert!(d != usize::MAX && d > pos[idx], "BPF jumps must go forward");
                d - pos[idx] - 1
            };
            let sf = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
            match *ins {
                Ins::Mark(_) => {}
                Ins::Ld(off) => v.push(sf(BPF_LD_W_ABS, 0, 0, off)),
                Ins::And(k) => v.push(sf(BPF_ALU_AND_K, 0, 0, k)),
                Ins::Ret(k) => v.push(sf(BPF_RET_K, 0, 0, k)),
                Ins::Ja(l) => v.push(sf(BPF_JMP_JA, 0, 0, rel(l) as u32)),
                Ins::J { code, k, t, f } => {
                    let short =
                        |d: usize| u8::try_from(d).expect("far jump left without a trampoline");
                    v.push(sf(code, short(rel(t)), short(rel(f)), k))
                }
            }
        }
        v
    }
}

fn codegen(blocks: &[(u32, Vec<(u32, Body)>)]) -> Vec<libc::sock_filter> {
    let mut a = Asm {
        code: Vec::new(),
        labels: 0,
    };
    a.push(Ins::Ld(OFF_ARCH));
    let entry: Vec<Label> = blocks.iter().map(|_| a.label()).collect();
    for (i, (audit, _)) in blocks.iter().enumerate() {
        let next = a.label();
        a.push(Ins::J {
            code: BPF_JEQ_K,
            k: *audit,
            t: entry[i],
            f: next,
        });
        a.mark(next);
    }
    a.push(Ins::Ret(BAD_ARCH_ACTION));
    for (i, (_, segs)) in blocks.iter().enumerate() {
        a.mark(entry[i]);
        a.push(Ins::Ld(OFF_NR));
        tree(&mut a, segs);
    }
    a.finish()
}

/// Binary search over `segs` (sorted starts, covering everything from segs[0].0 upwards).
/// Expects the syscall number in A.
fn tree(a: &mut Asm, segs: &[(u32, Body)]) {
    if segs.len() == 1 {
        body(a, &segs[0].1);
        return;
    }
    let mid = segs.len() / 2;
    let (left, right) = (a.label(), a.label());
    a.push(Ins::J {
        code: BPF_JGE_K,
        k: segs[mid].0,
        t: right,
        f: left,
    });
    a.mark(left);
    tree(a, &segs[..mid]);
    a.mark(right);
    tree(a, &segs[mid..]);
}

fn body(a: &mut Asm, b: &Body) {
    match b {
        Body::Ret(k) => a.push(Ins::Ret(*k)),
        Body::Tree { blocks, big_endian } => {
            // Blocks in an order where every jump goes forward; they clobber A with argument
            // words, and nothing after them needs nr.
            let order = blocks.order();
            let mut labels = vec![None; blocks.blocks.len()];
            for &b in &order {
                labels[b as usize] = Some(a.label());
            }
            let label = |b: u32| labels[b as usize].expect("every successor is ordered");
            for &b in &order {
                a.mark(label(b));
                match blocks.blocks[b as usize] {
                    Block::Ret(k) => a.push(Ins::Ret(k)),
                    Block::Cmp {
                        arg,
                        hi,
                        op,
                        mask,
                        datum,
                        t,
                        f,
                    } => {
                        let base = OFF_ARGS + 8 * arg;
                        a.push(Ins::Ld(base + if hi != *big_endian { 4 } else { 0 }));
                        if mask != u32::MAX {
                            a.push(Ins::And(mask));
                        }
                        let code = match op {
                            WordOp::Eq | WordOp::MaskedEq => BPF_JEQ_K,
                            WordOp::Gt => BPF_JGT_K,
                            WordOp::Ge => BPF_JGE_K,
                        };
                        a.push(Ins::J {
                            code,
                            k: datum,
                            t: label(t),
                            f: label(f),
                        });
                    }
                }
            }
        }
    }
}

/// Install with seccomp(2) so that flags apply. Needs no_new_privs or CAP_SYS_ADMIN.
/// Install `p` in the calling thread; with FLAG_NEW_LISTENER, returns the listener fd.
pub fn install(p: &Program) -> Result<Option<OwnedFd>> {
    let prog = libc::sock_fprog {
        len: p.insns.len() as u16,
        filter: p.insns.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` points at `p.insns`, which outlives the call; the kernel copies the program.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            p.flags as libc::c_ulong,
            &prog as *const libc::sock_fprog,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error()).context(format!(
            "installing the seccomp filter (seccomp(SECCOMP_SET_MODE_FILTER, flags {:#x}))",
            p.flags
        ));
    }
    if p.flags & FLAG_NEW_LISTENER != 0 {
        // SAFETY: with NEW_LISTENER the kernel returns a new fd (close-on-exec) that nothing
        // else owns.
        return Ok(Some(unsafe { OwnedFd::from_raw_fd(r as i32) }));
    }
    if r > 0 {
        // TSYNC: another thread could not be synchronised.
        bail!("installing the seccomp filter: thread {r} could not be synchronised (TSYNC)");
    }
    Ok(None)
}

/// Whether the kernel knows the seccomp(2) filter flags `flags`: with a NULL program a known
/// flag set fails with EFAULT, an unknown one with EINVAL (runc's and libseccomp's probe).
pub fn kernel_has_flags(flags: u32) -> bool {
    // SAFETY: a NULL program is never dereferenced: the call fails before installing anything.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags as libc::c_ulong,
            std::ptr::null::<libc::sock_fprog>(),
        )
    };
    r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EFAULT)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A classic-BPF interpreter for the subset the compiler emits, over a `seccomp_data`.
    pub(crate) fn run(p: &Program, nr: u32, arch: u32, args: [u64; 6]) -> u32 {
        // The kernel fills seccomp_data in its own byte order: big-endian for s390x.
        let be = arch == AUDIT_ARCH_S390X;
        let b32 = |v: u32| if be { v.to_be_bytes() } else { v.to_le_bytes() };
        let b64 = |v: u64| if be { v.to_be_bytes() } else { v.to_le_bytes() };
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&b32(nr));
        data[4..8].copy_from_slice(&b32(arch));
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&b64(*a));
        }
        let insns = &p.insns;
        assert!(!insns.is_empty() && insns.len() <= MAX_INSNS);
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let i = insns[pc];
            let jump = |cond: bool| pc + 1 + if cond { i.jt } else { i.jf } as usize;
            pc = match i.code {
                BPF_LD_W_ABS => {
                    let k = i.k as usize;
                    assert!(k % 4 == 0 && k + 4 <= data.len());
                    let w: [u8; 4] = data[k..k + 4].try_into().unwrap();
                    acc = if be {
                        u32::from_be_bytes(w)
                    } else {
                        u32::from_le_bytes(w)
                    };
                    pc + 1
                }
                BPF_ALU_AND_K => {
                    acc &= i.k;
                    pc + 1
                }
                BPF_JMP_JA => pc + 1 + i.k as usize,
                BPF_JEQ_K => jump(acc == i.k),
                BPF_JGT_K => jump(acc > i.k),
                BPF_JGE_K => jump(acc >= i.k),
                BPF_RET_K => return i.k,
                c => panic!("unexpected opcode {c:#x}"),
            };
            assert!(pc < insns.len(), "jump out of the program");
        }
    }

    fn compile_json(v: serde_json::Value) -> Result<Program> {
        compile(&serde_json::from_value(v).unwrap())
    }

    const X: u32 = AUDIT_ARCH_X86_64;
    const NOARGS: [u64; 6] = [0; 6];
    fn nr(abi: Abi, name: &str) -> u32 {
        abi.lookup(name).unwrap()
    }

    #[test]
    fn tables_are_sorted_and_sane() {
        for abi in [Abi::X86_64, Abi::X32, Abi::I386, Abi::Aarch64] {
            let t: Vec<_> = abi.entries().collect();
            assert!(t.windows(2).all(|w| w[0].0 < w[1].0), "{abi:?} not sorted");
            assert!(t.len() > 250);
        }
        assert_eq!(nr(Abi::X86_64, "read"), 0);
        assert_eq!(nr(Abi::X86_64, "mkdir"), 83);
        assert_eq!(nr(Abi::I386, "mkdir"), 39);
        assert_eq!(nr(Abi::X32, "read"), X32_SYSCALL_BIT);
        assert_eq!(nr(Abi::Aarch64, "openat"), 56);
        assert_eq!(Abi::Aarch64.lookup("mkdir"), None);
    }

    /// The kernel's name of a syscall entry point (`__x64_sys_<name>` in /proc/kallsyms) ->
    /// the syscall's name in the tables, or None for entry points no x86 table has.
    #[cfg(target_arch = "x86_64")]
    fn kernel_syscall_name(k: &str) -> Option<String> {
        // Built on x86 but in no x86 syscall table: the -ENOSYS entry, a generic gethostname
        // and sync_file_range2 (other architectures' calls), and the send/recv that i386
        // reaches only through socketcall(2).
        const NOT_X86: [&str; 5] = [
            "ni_syscall",
            "gethostname",
            "sync_file_range2",
            "send",
            "recv",
        ];
        const ALIASES: [(&str, &str); 20] = [
            ("newuname", "uname"),
            ("newstat", "stat"),
            ("newlstat", "lstat"),
            ("newfstat", "fstat"),
            ("umount", "umount2"),
            ("oldumount", "umount"),
            ("llseek", "_llseek"),
            ("mmap_pgoff", "mmap2"),
            ("old_readdir", "readdir"),
            ("old_getrlimit", "getrlimit"),
            ("old_msgctl", "msgctl"),
            ("old_semctl", "semctl"),
            ("old_shmctl", "shmctl"),
            ("stime32", "stime"),
            ("time32", "time"),
            ("utime32", "utime"),
            ("clock_adjtime32", "clock_adjtime"),
            ("clock_gettime32", "clock_gettime"),
            ("clock_settime32", "clock_settime"),
            ("timer_gettime32", "timer_gettime"),
        ];
        const ALIASES2: [(&str, &str); 3] = [
            ("timer_settime32", "timer_settime"),
            ("timerfd_gettime32", "timerfd_gettime"),
            ("timerfd_settime32", "timerfd_settime"),
        ];
        if NOT_X86.contains(&k) {
            return None;
        }
        if let Some((_, n)) = ALIASES.iter().chain(&ALIASES2).find(|(a, _)| *a == k) {
            return Some((*n).to_owned());
        }
        // i386's 32-bit time_t variants (futex_time32 is i386's futex), its 16-bit uid calls
        // (chown16 is i386's chown) and its split 64-bit argument wrappers (ia32_pread64).
        let n = k.strip_suffix("_time32").unwrap_or(k);
        let n = n.strip_prefix("ia32_").unwrap_or(n);
        let uid16 = n.strip_suffix("16").filter(|b| {
            ["uid", "gid", "groups", "own"]
                .iter()
                .any(|x| b.ends_with(x))
        });
        Some(uid16.unwrap_or(n).to_owned())
    }

    /// Every syscall the running kernel has is in the table (x86_64, x32 or i386 column): its
    /// entry points are the `__x64_sys_*` symbols of /proc/kallsyms (one per SYSCALL_DEFINE,
    /// i386's included under IA32 emulation); weak ones (`W`) are the -ENOSYS stubs of calls
    /// this kernel was built without (COND_SYSCALL) and are left out. Names are shown to any
    /// user; the test cannot run where kallsyms is unreadable or hides them.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn table_knows_every_syscall_of_the_running_kernel() {
        const TEST: &str = "table_knows_every_syscall_of_the_running_kernel";
        let cannot = |why: String| {
            assert!(
                std::env::var_os("CI").is_none_or(|v| v != "true"),
                "{TEST}: {why}, and under CI=true a test that cannot run is a failure"
            );
            crate::testing::skip(TEST, &why);
        };
        let text = match std::fs::read_to_string("/proc/kallsyms") {
            Ok(t) => t,
            Err(e) => return cannot(format!("cannot read /proc/kallsyms: {e}")),
        };
        let mut kernel: Vec<&str> = text
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace().skip(1);
                match (f.next(), f.next()) {
                    (Some(t), Some(name)) if t != "W" && t != "w" => Some(name),
                    _ => None,
                }
            })
            .filter_map(|s| s.strip_prefix("__x64_sys_"))
            // compiler-split parts: __x64_sys_setitimer.cold
            .map(|s| s.split('.').next().unwrap_or(s))
            .collect();
        kernel.sort_unstable();
        kernel.dedup();
        if kernel.len() < 300 {
            return cannot(format!(
                "/proc/kallsyms shows {} __x64_sys_* symbols (names hidden, or not an x86_64 \
                 kernel with CONFIG_KALLSYMS_ALL)",
                kernel.len()
            ));
        }
        let known = |n: &str| {
            [Abi::X86_64, Abi::X32, Abi::I386]
                .iter()
                .any(|a| a.lookup(n).is_some())
        };
        let missing: Vec<String> = kernel
            .iter()
            .filter_map(|k| kernel_syscall_name(k).map(|n| (k, n)))
            .filter(|(_, n)| !known(n))
            .map(|(k, n)| {
                if **k == n {
                    n
                } else {
                    format!("{n} (kernel: {k})")
                }
            })
            .collect();
        assert!(
            missing.is_empty(),
            "the running kernel ({}) has syscalls the table (src/security/syscall_table.rs) \
             lacks: {missing:?}",
            std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
        );
        eprintln!(
            "{} kernel syscall entry points, all in the table",
            kernel.len()
        );
    }

    #[test]
    fn errno_ret_only_with_errno_or_trace() {
        let mut p: LinuxSeccomp = serde_json::from_value(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ALLOW", "errnoRet": 5}]
        }))
        .unwrap();
        let e = compile(&p).unwrap_err().to_string();
        assert!(
            e.contains("linux.seccomp.syscalls[0]") && e.contains("errnoRet"),
            "{e}"
        );
        p = serde_json::from_value(json!({"defaultAction": "SCMP_ACT_KILL", "defaultErrnoRet": 1}))
            .unwrap();
        let e = compile(&p).unwrap_err().to_string();
        assert!(e.contains("defaultAction"), "{e}");
    }

    #[test]
    fn default_allow_and_errno_with_custom_errno() {
        let p = compile_json(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 38,
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [
                {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["kill"], "action": "SCMP_ACT_KILL_PROCESS"},
                {"names": ["tkill"], "action": "SCMP_ACT_KILL"},
                {"names": ["getpid"], "action": "SCMP_ACT_TRAP"},
                {"names": ["getppid"], "action": "SCMP_ACT_LOG"},
                {"names": ["gettid"], "action": "SCMP_ACT_TRACE", "errnoRet": 7},
                {"names": ["no_such_syscall_xyz", "close"], "action": "SCMP_ACT_ALLOW"}
            ]
        }))
        .unwrap();
        let r = |n: &str| run(&p, nr(Abi::X86_64, n), X, NOARGS);
        assert_eq!(r("read"), RET_ALLOW);
        assert_eq!(r("write"), RET_ALLOW);
        assert_eq!(r("close"), RET_ALLOW, "unknown name must not drop the rest");
        assert_eq!(r("mkdir"), RET_ERRNO | 13);
        assert_eq!(r("rmdir"), RET_ERRNO | libc::EPERM as u32);
        assert_eq!(r("kill"), RET_KILL_PROCESS);
        assert_eq!(r("tkill"), RET_KILL_THREAD);
        assert_eq!(r("getpid"), RET_TRAP);
        assert_eq!(r("getppid"), RET_LOG);
        assert_eq!(r("gettid"), RET_TRACE | 7);
        // Default, with defaultErrnoRet, for an unlisted one below the highest listed.
        assert_eq!(r("open"), RET_ERRNO | 38);
        assert_eq!(run(&p, 1, X, NOARGS), RET_ALLOW);
        // x32 and i386 are not listed: bad-arch action.
        assert_eq!(run(&p, nr(Abi::X32, "read"), X, NOARGS), BAD_ARCH_ACTION);
        assert_eq!(run(&p, 3, AUDIT_ARCH_I386, NOARGS), BAD_ARCH_ACTION);
    }

    #[test]
    fn enosys_stub_above_the_highest_listed_syscall() {
        let p = compile_json(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["read", "mkdirat"], "action": "SCMP_ACT_ALLOW"}]
        }))
        .unwrap();
        let m = nr(Abi::X86_64, "mkdirat");
        assert_eq!(run(&p, m, X, NOARGS), RET_ALLOW);
        assert_eq!(run(&p, m - 1, X, NOARGS), RET_ERRNO | 1);
        assert_eq!(run(&p, m + 1, X, NOARGS), RET_ERRNO | libc::ENOSYS as u32);
        assert_eq!(
            run(&p, 0x3fff_ffff, X, NOARGS),
            RET_ERRNO | libc::ENOSYS as u32
        );
        // Permissive default: no stub.
        let p = compile_json(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO"}]
        }))
        .unwrap();
        assert_eq!(run(&p, 0, X, NOARGS), RET_ERRNO | 1);
        assert_eq!(run(&p, 500, X, NOARGS), RET_ALLOW);
    }

    #[test]
    fn every_operator_on_64_bit_values() {
        let big: u64 = 0x0000_0001_0000_0005; // hi word 1, lo word 5
        let rule = |op: &str, v: u64, v2: Option<u64>| {
            let mut a = json!({"index": 2, "value": v, "op": op});
            if let Some(v2) = v2 {
                a["valueTwo"] = json!(v2);
            }
            compile_json(json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{"names": ["ioctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": 99,
                              "args": [a]}]
            }))
            .unwrap()
        };
        let io = nr(Abi::X86_64, "ioctl");
        let check = |p: &Program, arg: u64| {
            let mut args = [0u64; 6];
            args[2] = arg;
            run(p, io, X, args) == RET_ERRNO | 99
        };
        // Values around `big` that differ only in the hi word or only in the lo word.
        let cases = [
            0u64,
            5,
            big - 1,
            big,
            big + 1,
            0x0000_0002_0000_0000,
            0x0000_0000_ffff_ffff,
            u64::MAX,
        ];
        type Cmp = fn(u64, u64) -> bool;
        let ops: [(&str, Cmp); 6] = [
            ("SCMP_CMP_EQ", |a, b| a == b),
            ("SCMP_CMP_NE", |a, b| a != b),
            ("SCMP_CMP_LT", |a, b| a < b),
            ("SCMP_CMP_LE", |a, b| a <= b),
            ("SCMP_CMP_GT", |a, b| a > b),
            ("SCMP_CMP_GE", |a, b| a >= b),
        ];
        for (op, f) in ops {
            let p = rule(op, big, None);
            for &c in &cases {
                assert_eq!(check(&p, c), f(c, big), "{op} arg={c:#x} value={big:#x}");
            }
        }
        // MASKED_EQ: (arg & value) == valueTwo, over both words.
        let (mask, want) = (0x0000_00f0_0000_00ffu64, 0x0000_0010_0000_0002u64);
        let p = rule("SCMP_CMP_MASKED_EQ", mask, Some(want));
        for &c in &[
            0x0000_0010_0000_0002u64,
            0xffff_ff1f_ffff_ff02,
            0x0000_0010_0000_0003,
            0x0000_0020_0000_0002,
            0,
        ] {
            assert_eq!(check(&p, c), c & mask == want, "MASKED_EQ arg={c:#x}");
        }
        // Other syscalls untouched.
        assert_eq!(run(&p, io + 1, X, NOARGS), RET_ALLOW);
    }

    #[test]
    fn args_are_anded_and_unconditional_replaces_conditional() {
        let rules = json!([
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
            {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
             "args": [{"index": 0, "value": 10, "op": "SCMP_CMP_GT"},
                      {"index": 1, "value": 3, "op": "SCMP_CMP_LE"}]}
        ]);
        let profile = |rules: serde_json::Value| {
            compile_json(json!({
                "defaultAction": "SCMP_ACT_ERRNO",
                "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": rules
            }))
            .unwrap()
        };
        let n = nr(Abi::X86_64, "personality");
        let p = profile(rules.clone());
        let r = |a0, a1| run(&p, n, X, [a0, a1, 0, 0, 0, 0]);
        assert_eq!(r(8, 0), RET_ALLOW);
        assert_eq!(r(11, 3), RET_ERRNO | 22);
        assert_eq!(r(11, 4), RET_ERRNO | 1, "second arg fails: AND");
        assert_eq!(r(9, 0), RET_ERRNO | 1, "first arg fails: AND");
        // An unconditional rule replaces the conditional ones wherever it stands, and the
        // first unconditional rule of a syscall wins over later ones (libseccomp's db).
        let mut with = rules.as_array().unwrap().clone();
        with.insert(
            1,
            json!({"names": ["personality"], "action": "SCMP_ACT_LOG"}),
        );
        with.push(json!({"names": ["personality"], "action": "SCMP_ACT_TRAP"}));
        let p = profile(serde_json::Value::Array(with));
        for (a0, a1) in [(8, 0), (11, 3), (9, 0)] {
            assert_eq!(run(&p, n, X, [a0, a1, 0, 0, 0, 0]), RET_LOG);
        }
    }

    /// Issue 11 point 1: two conditions on one argument are alternatives (runc splits the rule),
    /// not an AND that can never hold.
    #[test]
    fn same_index_conditions_are_alternatives() {
        let p = compile_json(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                          "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                                   {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]}]
        }))
        .unwrap();
        let n = nr(Abi::X86_64, "personality");
        assert_eq!(run(&p, n, X, [1, 0, 0, 0, 0, 0]), RET_ERRNO | 1);
        assert_eq!(run(&p, n, X, [2, 0, 0, 0, 0, 0]), RET_ERRNO | 1);
        assert_eq!(run(&p, n, X, [3, 0, 0, 0, 0, 0]), RET_ALLOW);
    }

    /// Issue 11 point 2: `[{mkdir, arg1 == 0755 -> LOG}, {mkdir -> ERRNO}]` is ERRNO for every
    /// mkdir; identical conditions with two actions are refused.
    #[test]
    fn rule_order_and_conflicts() {
        let p = compile_json(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [
                {"names": ["mkdir"], "action": "SCMP_ACT_LOG",
                 "args": [{"index": 1, "value": 0o755, "op": "SCMP_CMP_EQ"}]},
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}
            ]
        }))
        .unwrap();
        let m = nr(Abi::X86_64, "mkdir");
        assert_eq!(run(&p, m, X, [0, 0o755, 0, 0, 0, 0]), RET_ERRNO | 1);
        assert_eq!(run(&p, m, X, [0, 0o700, 0, 0, 0, 0]), RET_ERRNO | 1);
        let e = compile_json(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["mkdir"], "action": "SCMP_ACT_LOG",
                 "args": [{"index": 1, "value": 1, "op": "SCMP_CMP_EQ"}]},
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 1, "value": 1, "op": "SCMP_CMP_EQ"}]}
            ]
        }))
        .unwrap_err();
        assert!(
            format!("{e:#}").contains("linux.seccomp.syscalls[1]"),
            "{e:#}"
        );
    }

    /// Conditional rules of one syscall that overlap with different actions are decided by
    /// libseccomp's rule tree, not by profile order (each expectation checked against
    /// libseccomp 2.5.4's database by the oracle).
    #[test]
    fn overlapping_rules_decide_as_libseccomps_tree() {
        let p = compile_json(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_GE"}]},
                {"names": ["read"], "action": "SCMP_ACT_LOG",
                 "args": [{"index": 0, "value": 2, "op": "SCMP_CMP_LE"}]}
            ]
        }))
        .unwrap();
        let r = |a0: u64| run(&p, 0, X, [a0, 0, 0, 0, 0, 0]);
        // 1 and 2 match both rules: the LE node sorts before the GE node on the low word
        assert_eq!(r(0), RET_LOG);
        assert_eq!(r(1), RET_LOG);
        assert_eq!(r(2), RET_LOG);
        assert_eq!(r(3), RET_ERRNO | 1);
        assert_eq!(r(1 << 32), RET_ERRNO | 1);
        // Two GE rules share their high-word node, which takes the action of the larger value.
        let p = compile_json(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_KILL_PROCESS",
                 "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_GE"}]},
                {"names": ["read"], "action": "SCMP_ACT_TRAP",
                 "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_GE"}]}
            ]
        }))
        .unwrap();
        let r = |a0: u64| run(&p, 0, X, [a0, 0, 0, 0, 0, 0]);
        assert_eq!(r(0), RET_KILL_PROCESS);
        assert_eq!(r(1), RET_TRAP);
        assert_eq!(r(1 << 32), RET_TRAP);
        // A rule extending another's condition with another action is kept beside it.
        let p = compile_json(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_KILL_PROCESS",
                 "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]},
                {"names": ["read"], "action": "SCMP_ACT_TRAP",
                 "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                          {"index": 1, "value": 1, "op": "SCMP_CMP_EQ"}]}
            ]
        }))
        .unwrap();
        assert_eq!(run(&p, 0, X, [1, 0, 0, 0, 0, 0]), RET_KILL_PROCESS);
        assert_eq!(run(&p, 0, X, [2, 1, 0, 0, 0, 0]), RET_ALLOW);
    }

    /// Overlaps libseccomp cannot put in its tree (EEXIST) are refused naming both entries;
    /// rules on which its insertion never returns (runc hangs) are refused too.
    #[test]
    fn tree_conflicts_and_loops_are_refused() {
        let e = compile_json(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_KILL_PROCESS",
                 "args": [{"index": 1, "value": 1, "op": "SCMP_CMP_LE"},
                          {"index": 0, "value": 0, "op": "SCMP_CMP_GE"}]},
                {"names": ["read"], "action": "SCMP_ACT_TRAP",
                 "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_GE"}]}
            ]
        }))
        .unwrap_err();
        let e = format!("{e:#}");
        assert!(
            e.contains("linux.seccomp.syscalls[1]")
                && e.contains("syscalls[0]")
                && e.contains("read")
                && e.contains("EEXIST"),
            "{e}"
        );
        let e = compile_json(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {"names": ["fchmodat"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 2, "value": u64::MAX, "op": "SCMP_CMP_LT"},
                          {"index": 1, "value": 0o755, "op": "SCMP_CMP_LE"},
                          {"index": 0, "value": 0, "op": "SCMP_CMP_NE"}]},
                {"names": ["fchmodat"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 2, "value": 0xffff_ffffu64, "op": "SCMP_CMP_GE"},
                          {"index": 0, "value": 0, "op": "SCMP_CMP_NE"}]}
            ]
        }))
        .unwrap_err();
        let e = format!("{e:#}");
        assert!(
            e.contains("linux.seccomp.syscalls[1]")
                && e.contains("fchmodat")
                && e.contains("never finishes"),
            "{e}"
        );
    }

    /// Issue 11 point 5: the native ABI is filtered even when the profile lists only others.
    #[test]
    fn native_arch_is_always_kept() {
        let p = compile_json(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
        }))
        .unwrap();
        if let Some(n) = Abi::native() {
            let m = nr(n, "mkdirat");
            assert_eq!(run(&p, m, n.audit_arch(), NOARGS), RET_ALLOW);
            if let Some(m) = n.lookup("mkdir") {
                assert_eq!(run(&p, m, n.audit_arch(), NOARGS), RET_ERRNO | 1);
            }
        }
    }

    #[test]
    fn multi_arch_uses_each_arch_numbers() {
        let p = compile_json(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5},
                         {"names": ["read"], "action": "SCMP_ACT_ALLOW"}]
        }))
        .unwrap();
        let e5 = RET_ERRNO | 5;
        assert_eq!(run(&p, 83, X, NOARGS), e5);
        assert_eq!(run(&p, 39, AUDIT_ARCH_I386, NOARGS), e5);
        assert_eq!(run(&p, 83, AUDIT_ARCH_I386, NOARGS), RET_ERRNO | 1);
        assert_eq!(run(&p, 3, AUDIT_ARCH_I386, NOARGS), RET_ALLOW);
        assert_eq!(run(&p, 0, AUDIT_ARCH_I386, NOARGS), RET_ERRNO | 1);
        assert_eq!(run(&p, X32_SYSCALL_BIT | 83, X, NOARGS), e5);
        assert_eq!(run(&p, X32_SYSCALL_BIT, X, NOARGS), RET_ALLOW);
        assert_eq!(run(&p, 34, AUDIT_ARCH_AARCH64, NOARGS), e5);
        assert_eq!(run(&p, 63, AUDIT_ARCH_AARCH64, NOARGS), RET_ALLOW);
        // An arch nobody listed (arm).
        assert_eq!(run(&p, 3, 0x4000_0028, NOARGS), BAD_ARCH_ACTION);
        // x32 only: x86_64 numbers are bad-arch under the shared AUDIT_ARCH.
        let p = compile_json(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X32"],
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
        }))
        .unwrap();
        assert_eq!(run(&p, X32_SYSCALL_BIT | 83, X, NOARGS), RET_ERRNO | 1);
        assert_eq!(run(&p, X32_SYSCALL_BIT | 84, X, NOARGS), RET_ALLOW);
        // The native x86_64 ABI is kept (libseccomp always has it).
        if Abi::native() == Some(Abi::X86_64) {
            assert_eq!(run(&p, 83, X, NOARGS), RET_ERRNO | 1);
        }
    }

    #[test]
    fn i386_socketcall_and_ipc_multiplexing() {
        let p = compile_json(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [
                {"names": ["socket", "send"], "action": "SCMP_ACT_ERRNO", "errnoRet": 97},
                {"names": ["shmget"], "action": "SCMP_ACT_ERRNO", "errnoRet": 12}
            ]
        }))
        .unwrap();
        let i = |nr: u32, a0: u64| run(&p, nr, AUDIT_ARCH_I386, [a0, 0, 0, 0, 0, 0]);
        assert_eq!(i(nr(Abi::I386, "socket"), 0), RET_ERRNO | 97);
        assert_eq!(i(102, 1), RET_ERRNO | 97, "socketcall(SYS_SOCKET)");
        assert_eq!(i(102, 9), RET_ERRNO | 97, "socketcall(SYS_SEND)");
        assert_eq!(i(102, 3), RET_ALLOW, "socketcall(SYS_CONNECT)");
        assert_eq!(i(117, 23), RET_ERRNO | 12, "ipc(SHMGET)");
        assert_eq!(i(117, 21), RET_ALLOW, "ipc(SHMAT)");
        assert_eq!(i(nr(Abi::I386, "shmget"), 0), RET_ERRNO | 12);
        // x86_64 has no multiplexers: its number 102 is getuid.
        assert_eq!(run(&p, 102, X, [1, 0, 0, 0, 0, 0]), RET_ALLOW);
    }

    #[test]
    fn notify_rules_listener_and_flags() {
        let notify = |extra: serde_json::Value| {
            let mut v = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "listenerPath": "/run/agent.sock",
                "syscalls": [{"names": ["mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
            });
            for (k, x) in extra.as_object().unwrap() {
                v[k] = x.clone();
            }
            compile_json(v)
        };
        let p = notify(json!({})).unwrap();
        assert_eq!(p.flags, FLAG_NEW_LISTENER);
        if Abi::native() == Some(Abi::X86_64) {
            assert_eq!(run(&p, 258, X, NOARGS), RET_USER_NOTIF, "mkdirat");
            assert_eq!(run(&p, 83, X, NOARGS), RET_ALLOW, "mkdir");
        }
        let p = notify(json!({"flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
                                         "SECCOMP_FILTER_FLAG_TSYNC"]}))
        .unwrap();
        assert_eq!(
            p.flags,
            FLAG_NEW_LISTENER | FLAG_WAIT_KILLABLE_RECV | FLAG_TSYNC | FLAG_TSYNC_ESRCH
        );
        // without a NOTIFY rule: no listener, WAIT_KILLABLE_RECV ignored (as libseccomp),
        // listenerPath accepted and unused (as runc)
        let p = compile_json(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": "/run/agent.sock",
            "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
            "syscalls": [{"names": ["mkdirat"], "action": "SCMP_ACT_ERRNO"}]
        }))
        .unwrap();
        assert_eq!(p.flags, 0);
        let e = notify(json!({"listenerPath": null})).unwrap_err();
        assert!(
            e.to_string()
                .contains("linux.seccomp.listenerPath is not set"),
            "{e:#}"
        );
        let e = notify(json!({"listenerPath": ""})).unwrap_err();
        assert!(e.to_string().contains("listenerPath is not set"), "{e:#}");
        for name in ["write", "sendmsg"] {
            let e = notify(json!({"syscalls": [
                {"names": ["mkdirat"], "action": "SCMP_ACT_NOTIFY"},
                {"names": ["read", name], "action": "SCMP_ACT_NOTIFY"}]}))
            .unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("linux.seccomp.syscalls[1]: SCMP_ACT_NOTIFY cannot be used for the {name} syscall")
            );
        }
    }

    #[test]
    fn rejections_and_flags() {
        assert!(compile_json(json!({"defaultAction": "SCMP_ACT_NOTIFY"}))
            .unwrap_err()
            .to_string()
            .contains(
                "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be used as default action"
            ));
        let e = compile_json(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                          "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]
        }))
        .unwrap_err();
        assert!(
            format!("{e:#}").contains("linux.seccomp.syscalls[0].args[0]"),
            "{e:#}"
        );
        let p = compile_json(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                      "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]
        }))
        .unwrap();
        assert_eq!(p.flags, FLAG_TSYNC | FLAG_LOG | FLAG_SPEC_ALLOW);
        // No architectures: native only.
        if Abi::native() == Some(Abi::X86_64) {
            assert_eq!(run(&p, 0, X, NOARGS), RET_ALLOW);
            assert_eq!(run(&p, 0, AUDIT_ARCH_I386, NOARGS), BAD_ARCH_ACTION);
        }
    }

    /// 30 syscalls, each with a 6-argument rule (errno k+1) and a 1-argument rule (errno 100+k).
    pub(crate) fn far_jump_profile() -> (Vec<&'static str>, serde_json::Value) {
        // Not the i386 socketcall/ipc calls: their multiplexed forms would make the two rules
        // of a name overlap.
        let names: Vec<&str> = Abi::X86_64
            .names()
            .filter(|n| i386_mux(n).is_none())
            .take(30)
            .collect();
        let mut rules = Vec::new();
        for (k, name) in names.iter().enumerate() {
            let k = k as u64;
            let args: Vec<_> = (0..6)
                .map(|i| json!({"index": i, "value": k + i + 1, "op": "SCMP_CMP_EQ"}))
                .collect();
            rules.push(json!({"names": [name], "action": "SCMP_ACT_ERRNO",
                              "errnoRet": k + 1, "args": args}));
            rules.push(
                json!({"names": [name], "action": "SCMP_ACT_ERRNO", "errnoRet": 100 + k,
                              "args": [{"index": 0, "value": 1000 + k, "op": "SCMP_CMP_EQ"}]}),
            );
        }
        let v = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": rules
        });
        (names, v)
    }

    /// Long rule chains push jump targets beyond 255 instructions: trampolines must be used and
    /// every path must still reach the right action.
    #[test]
    fn far_jumps_use_trampolines() {
        let (names, v) = far_jump_profile();
        let p = compile_json(v).unwrap();
        assert!(p.insns.len() > 1000, "{}", p.insns.len());
        assert!(
            p.insns.iter().any(|i| i.code == BPF_JMP_JA),
            "no trampolines"
        );
        for (k, name) in names.iter().enumerate() {
            let k = k as u64;
            for abi in [Abi::X86_64, Abi::I386] {
                let Some(n) = abi.lookup(name) else { continue };
                let arch = abi.audit_arch();
                let all: [u64; 6] = std::array::from_fn(|i| k + i as u64 + 1);
                assert_eq!(run(&p, n, arch, all), RET_ERRNO | (k as u32 + 1), "{name}");
                let mut almost = all;
                almost[5] += 1;
                assert_eq!(run(&p, n, arch, almost), RET_ALLOW, "{name}");
                assert_eq!(
                    run(&p, n, arch, [1000 + k, 0, 0, 0, 0, 0]),
                    RET_ERRNO | (100 + k as u32)
                );
            }
        }
    }

    /// A Docker-default-like profile: every x86_64/x86/x32 syscall name allowed, a few with
    /// argument rules, must stay well under the kernel's limit and far jumps must be correct.
    #[test]
    fn large_profile_compiles_small_and_correct() {
        let mut names: Vec<&str> = Abi::X86_64.names().collect();
        names.retain(|n| !["personality", "clone", "clone3", "mkdir", "reboot"].contains(n));
        let p = compile_json(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                {"names": names, "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 4294967295u64, "op": "SCMP_CMP_EQ"}]},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 2114060288u64, "valueTwo": 0,
                           "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
            ]
        }))
        .unwrap();
        eprintln!("docker-like profile: {} instructions", p.insns.len());
        assert!(p.insns.len() < 1500, "{} instructions", p.insns.len());

        // With all-zero arguments the personality(0) and clone(flags 0) rules allow.
        for (name, n) in Abi::X86_64.entries() {
            let want = match name {
                "mkdir" | "reboot" => RET_ERRNO | 1,
                "clone3" => RET_ERRNO | 38,
                _ => RET_ALLOW,
            };
            assert_eq!(run(&p, n, X, NOARGS), want, "x86_64 {name}");
        }
        for (name, n) in Abi::I386.entries() {
            let want = match name {
                "mkdir" | "reboot" => RET_ERRNO | 1,
                "clone3" => RET_ERRNO | 38,
                _ if Abi::X86_64.lookup(name).is_some() => RET_ALLOW,
                _ => continue,
            };
            assert_eq!(run(&p, n, AUDIT_ARCH_I386, NOARGS), want, "i386 {name}");
        }
        let pers = nr(Abi::X86_64, "personality");
        let clone = nr(Abi::X86_64, "clone");
        assert_eq!(run(&p, pers, X, [8, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(run(&p, pers, X, [0xffff_ffff, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(run(&p, pers, X, [9, 0, 0, 0, 0, 0]), RET_ERRNO | 1);
        assert_eq!(run(&p, clone, X, [0x11, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(
            run(&p, clone, X, [0x1000_0000, 0, 0, 0, 0, 0]),
            RET_ERRNO | 1
        );
        // i386 compares 32-bit args only (the high word is ignored, as libseccomp does)...
        let pers32 = nr(Abi::I386, "personality");
        let i386 = |a0: u64| run(&p, pers32, AUDIT_ARCH_I386, [a0, 0, 0, 0, 0, 0]);
        assert_eq!(i386(0xffff_ffff), RET_ALLOW);
        assert_eq!(i386(0x5_0000_0008), RET_ALLOW);
        assert_eq!(i386(9), RET_ERRNO | 1);
        // ...while x86_64 compares all 64 bits.
        assert_eq!(
            run(&p, pers, X, [0x5_0000_0008, 0, 0, 0, 0, 0]),
            RET_ERRNO | 1
        );
        // Newer than anything listed: ENOSYS.
        assert_eq!(run(&p, 1000, X, NOARGS), RET_ERRNO | 38);
    }
}
