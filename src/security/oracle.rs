//! Test-only oracle: every profile is also built with libseccomp itself (as runc builds it:
//! same calls, same splitting of same-index conditions, same skipping of default-action rules
//! and unknown names). libseccomp's decision for a point is taken from its rule database as it
//! renders it (`seccomp_export_pfc`, parsed and run here), and from its exported BPF for the
//! ABI dispatch the database does not show; husk's program runs in the interpreter of
//! `seccomp::tests`. Over a grid of (architecture, syscall number, arguments) they must agree.
//! Profiles: every seccomp fixture, the engine default profiles in tests/data/seccomp, and
//! seeded random ones (HUSK_ORACLE_SEED reruns a seed). A difference fails the test and prints
//! the profile and the first differing input.
//!
//! husk models libseccomp's rule tree node for node (`ruletree.rs`), so its decisions must equal
//! the database's everywhere, also where rules of one syscall overlap with different actions
//! (the tree then decides by its shape, and refuses some profiles with EEXIST: husk must refuse
//! the same ones). Counted, not failed: points where libseccomp's BPF departs from its own
//! database (its code generator keeps a stale argument word in the accumulator when a failed
//! branch falls through to a sibling comparison of another argument); husk follows the
//! database there.
//!
//! Left out of the grid, each for a stated reason: numbers of syscalls libseccomp does not
//! know (husk's table is newer), and numbers above the highest one the profile names when
//! runc's -ENOSYS stub applies (runc puts that stub in front of libseccomp's program; husk
//! builds it in, and the test checks husk's answer there is ENOSYS). Profiles libseccomp never
//! returns from (its rule-tree insertion loops; runc hangs on them) must be refused by husk.

use std::ffi::{c_char, c_int, c_uint, c_void, CString};
use std::io::{Read, Seek};
use std::os::fd::AsRawFd;

use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator};
use serde_json::{json, Value};

use super::seccomp::tests::run;
use super::seccomp::{compile, Abi, Program, BAD_ARCH_ACTION};

#[repr(C)]
struct ScmpArgCmp {
    arg: c_uint,
    op: c_int,
    datum_a: u64,
    datum_b: u64,
}

#[link(name = "seccomp")]
extern "C" {
    fn seccomp_init(def_action: u32) -> *mut c_void;
    fn seccomp_release(ctx: *mut c_void);
    fn seccomp_arch_add(ctx: *mut c_void, arch_token: u32) -> c_int;
    fn seccomp_syscall_resolve_name(name: *const c_char) -> c_int;
    fn seccomp_syscall_resolve_name_arch(arch_token: u32, name: *const c_char) -> c_int;
    fn seccomp_rule_add_array(
        ctx: *mut c_void,
        action: u32,
        syscall: c_int,
        arg_cnt: c_uint,
        arg_array: *const ScmpArgCmp,
    ) -> c_int;
    fn seccomp_export_bpf(ctx: *mut c_void, fd: c_int) -> c_int;
    fn seccomp_export_pfc(ctx: *mut c_void, fd: c_int) -> c_int;
}

const NR_SCMP_ERROR: c_int = -1;

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> u32 {
    use LinuxSeccompAction::*;
    match a {
        ScmpActKill | ScmpActKillThread => 0,
        ScmpActKillProcess => 0x8000_0000,
        ScmpActTrap => 0x0003_0000,
        ScmpActErrno => 0x0005_0000 | errno.unwrap_or(libc::EPERM as u32),
        ScmpActTrace => 0x7ff0_0000 | errno.unwrap_or(libc::EPERM as u32),
        ScmpActLog => 0x7ffc_0000,
        ScmpActAllow => 0x7fff_0000,
        ScmpActNotify => 0x7fc0_0000,
    }
}

/// libseccomp's program for `s`, built the way runc builds it; Err(rc) where libseccomp
/// refuses the profile.
fn libseccomp_program(s: &LinuxSeccomp) -> Result<(Program, Pfc), String> {
    let default = action(s.default_action(), s.default_errno_ret());
    // SAFETY: plain libseccomp calls on a context we own and release below.
    let ctx = unsafe { seccomp_init(default) };
    assert!(!ctx.is_null());
    let res = (|| {
        for a in s.architectures().iter().flatten() {
            // SAFETY: ctx is valid.
            let rc = unsafe { seccomp_arch_add(ctx, *a as u32) };
            if rc < 0 && rc != -libc::EEXIST {
                return Err(format!("arch {a:?}: {rc}"));
            }
        }
        for (i, sc) in s.syscalls().iter().flatten().enumerate() {
            // runc's own check before libseccomp sees the rule.
            if sc.errno_ret().is_some()
                && !matches!(
                    sc.action(),
                    LinuxSeccompAction::ScmpActErrno | LinuxSeccompAction::ScmpActTrace
                )
            {
                return Err(format!("syscalls[{i}]: errnoRet with {:?}", sc.action()));
            }
            let act = action(sc.action(), sc.errno_ret());
            if act == default {
                continue;
            }
            let conds: Vec<ScmpArgCmp> = sc
                .args()
                .iter()
                .flatten()
                .map(|a| ScmpArgCmp {
                    arg: a.index() as c_uint,
                    op: match a.op() {
                        LinuxSeccompOperator::ScmpCmpNe => 1,
                        LinuxSeccompOperator::ScmpCmpLt => 2,
                        LinuxSeccompOperator::ScmpCmpLe => 3,
                        LinuxSeccompOperator::ScmpCmpEq => 4,
                        LinuxSeccompOperator::ScmpCmpGe => 5,
                        LinuxSeccompOperator::ScmpCmpGt => 6,
                        LinuxSeccompOperator::ScmpCmpMaskedEq => 7,
                    },
                    datum_a: a.value(),
                    datum_b: a.value_two().unwrap_or(0),
                })
                .collect();
            let mut count = [0; 6];
            for c in &conds {
                if let Some(n) = count.get_mut(c.arg as usize) {
                    *n += 1;
                }
            }
            let split = count.iter().any(|n| *n > 1);
            for name in sc.names() {
                let cname = CString::new(name.as_str()).unwrap();
                // SAFETY: cname is a valid C string.
                let nr = unsafe { seccomp_syscall_resolve_name(cname.as_ptr()) };
                if nr == NR_SCMP_ERROR {
                    continue;
                }
                let add = |c: &[ScmpArgCmp]| {
                    // SAFETY: c points at c.len() valid comparisons.
                    let rc = unsafe {
                        seccomp_rule_add_array(ctx, act, nr, c.len() as c_uint, c.as_ptr())
                    };
                    if rc < 0 {
                        Err(format!("syscalls[{i}] {name}: {rc}"))
                    } else {
                        Ok(())
                    }
                };
                if split {
                    for c in &conds {
                        add(std::slice::from_ref(c))?;
                    }
                } else {
                    add(&conds)?;
                }
            }
        }
        let pfc = tempfile::tempfile().unwrap();
        // SAFETY: ctx is valid, the fd is open for writing.
        let rc = unsafe { seccomp_export_pfc(ctx, pfc.as_raw_fd()) };
        assert_eq!(rc, 0, "seccomp_export_pfc");
        let mut pfc = pfc;
        pfc.rewind().unwrap();
        let mut pfc_text = String::new();
        pfc.read_to_string(&mut pfc_text).unwrap();
        if std::env::var_os("HUSK_ORACLE_PFC").is_some() {
            eprintln!("{pfc_text}");
        }
        let f = tempfile::tempfile().unwrap();
        // SAFETY: ctx is valid, the fd is open for writing.
        let rc = unsafe { seccomp_export_bpf(ctx, f.as_raw_fd()) };
        assert_eq!(rc, 0, "seccomp_export_bpf");
        let mut f = f;
        f.rewind().unwrap();
        let mut buf = Vec::new();
        f.read_to_end(&mut buf).unwrap();
        let insns = buf
            .chunks_exact(8)
            .map(|c| libc::sock_filter {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        Ok((Program { insns, flags: 0 }, parse_pfc(&pfc_text)))
    })();
    // SAFETY: ctx came from seccomp_init and is not used after this.
    unsafe { seccomp_release(ctx) };
    res
}

/// ABIs a filter built on this host can hold (libseccomp: one byte order per filter).
fn oracle_abis() -> Vec<Abi> {
    let be = Abi::native().is_some_and(Abi::big_endian);
    Abi::ALL
        .into_iter()
        .filter(|a| a.big_endian() == be)
        .collect()
}

/// libseccomp's SCMP_ARCH_* token (the AUDIT_ARCH, except x32's own).
fn arch_token(abi: Abi) -> u32 {
    match abi {
        Abi::X32 => 0x4000_003e,
        a => a.audit_arch(),
    }
}

fn libseccomp_knows(abi: Abi, name: &str) -> bool {
    let cname = CString::new(name).unwrap();
    let token = arch_token(abi);
    // SAFETY: cname is a valid C string.
    let nr = unsafe { seccomp_syscall_resolve_name_arch(token, cname.as_ptr()) };
    nr >= 0
}

/// A small deterministic generator (xorshift64*), so that a failing seed can be rerun.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len())]
    }
}

/// Interesting argument values for a profile: each condition's value and its neighbours in
/// both words, plus 0 and all ones.
fn arg_values(v: &Value) -> [Vec<u64>; 6] {
    let mut out: [Vec<u64>; 6] = Default::default();
    for o in &mut out {
        o.extend([0, u64::MAX, 0xffff_ffff, 0x1_0000_0000]);
    }
    for sc in v["syscalls"].as_array().into_iter().flatten() {
        for a in sc["args"].as_array().into_iter().flatten() {
            let i = a["index"].as_u64().unwrap_or(0) as usize;
            if i > 5 {
                continue;
            }
            for key in ["value", "valueTwo"] {
                if let Some(x) = a[key].as_u64() {
                    for d in [
                        x,
                        x.wrapping_add(1),
                        x.wrapping_sub(1),
                        x ^ 0x1_0000_0000,
                        x & 0xffff_ffff,
                        x | 0xffff_ffff_0000_0000,
                    ] {
                        if !out[i].contains(&d) {
                            out[i].push(d);
                        }
                    }
                }
            }
        }
    }
    out
}

/// Compare husk and libseccomp on `v` over the grid; Err(description of the first difference).
fn compare(
    v: &Value,
    rng: &mut Rng,
    arg_samples: usize,
    departures: &mut Departures,
    hangs: &mut usize,
) -> Result<usize, String> {
    // A profile the spec types refuse is refused by husk and runc alike before compiling.
    let Ok(s) = serde_json::from_value::<LinuxSeccomp>(v.clone()) else {
        return Ok(0);
    };
    let trace = std::env::var_os("HUSK_ORACLE_TRACE").is_some();
    if trace {
        eprintln!("TRACE husk compile");
    }
    let husk = compile(&s);
    if trace {
        eprintln!("TRACE libseccomp");
    }
    let Some(lib) = libseccomp_in_time(&s) else {
        // libseccomp 2.5.4 never returns from some rule sets (a loop in its rule-tree
        // insertion); runc hangs, husk must refuse.
        *hangs += 1;
        return match husk {
            Err(e) if format!("{e:#}").contains("never finishes") => Ok(0),
            // libseccomp may also just be slower than the 10 s given to it
            Err(e) if format!("{e:#}").contains("takes too long") => Ok(0),
            Err(e) => Err(format!("libseccomp hangs, husk refuses otherwise: {e:#}")),
            Ok(_) => Err("libseccomp hangs, husk accepts".to_owned()),
        };
    };
    if trace {
        eprintln!("TRACE grid");
    }
    let (lib, husk) = match (lib, husk) {
        (Err(_), Err(_)) => return Ok(0),
        (Ok(_), Err(e)) => return Err(format!("husk refuses, libseccomp accepts: {e:#}")),
        (Err(e), Ok(_)) => return Err(format!("libseccomp refuses ({e}), husk accepts")),
        (Ok(l), Ok(h)) => (l, h),
    };
    let default = action(s.default_action(), s.default_errno_ret());
    let stub = !(default == 0x7fff_0000
        || default == 0x7ffc_0000
        || default & 0xffff_0000 == 0x7ff0_0000
        || (s.default_action() == LinuxSeccompAction::ScmpActErrno
            && s.default_errno_ret() == Some(libc::ENOSYS as u32)));
    let names: Vec<String> = v["syscalls"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|sc| sc["names"].as_array().cloned().unwrap_or_default())
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect();
    let vals = arg_values(v);
    let mut points = 0;
    // An architecture no filter has: the bad-arch action in both.
    for (arch, nr) in [(0x4000_0008u32, 1u32), (0x8000_0016, 1)] {
        if Abi::ALL.iter().any(|a| a.audit_arch() == arch) && arch != 0x8000_0016 {
            continue;
        }
        let (l, h) = (run(&lib.0, nr, arch, [0; 6]), run(&husk, nr, arch, [0; 6]));
        if l != h || h != BAD_ARCH_ACTION {
            return Err(format!(
                "arch {arch:#x} nr {nr}: libseccomp {l:#x}, husk {h:#x}"
            ));
        }
    }
    let listed: Vec<Abi> = s
        .architectures()
        .iter()
        .flatten()
        .filter_map(|a| Abi::ALL.into_iter().find(|x| *a as u32 == arch_token(*x)))
        .chain(Abi::native())
        .collect();
    for abi in oracle_abis() {
        let arch = abi.audit_arch();
        let in_filter = listed.contains(&abi);
        let (lo, hi) = match abi {
            Abi::X86_64 => (0, 0x3fff_ffff),
            Abi::X32 => (0x4000_0000, u32::MAX),
            _ => (0, u32::MAX),
        };
        // Numbers of names libseccomp does not know: husk differs on purpose.
        let unknown: Vec<u32> = names
            .iter()
            .filter(|n| !libseccomp_knows(abi, n))
            .filter_map(|n| abi.lookup(n))
            .collect();
        let max = names.iter().filter_map(|n| abi.lookup(n)).max();
        let mut nrs: Vec<u32> = vec![lo, lo + 1, lo + 3, lo + 500, hi];
        for n in &names {
            if let Some(nr) = abi.lookup(n) {
                nrs.extend([nr, nr.saturating_sub(1), nr.saturating_add(1)]);
            }
        }
        if abi == Abi::I386 {
            nrs.extend([102, 117]); // socketcall, ipc
        }
        nrs.sort_unstable();
        nrs.dedup();
        for nr in nrs {
            if unknown.contains(&nr) || nr < lo || nr > hi {
                continue;
            }
            let above = max.is_some_and(|m| nr > m);
            for k in 0..arg_samples {
                let args: [u64; 6] = if k == 0 {
                    [0; 6]
                } else {
                    std::array::from_fn(|i| rng.pick(&vals[i]))
                };
                let h = run(&husk, nr, arch, args);
                points += 1;
                if stub && above && in_filter {
                    // runc's stub: ENOSYS above the highest named syscall (libseccomp alone
                    // would give the default; the stub runs first in runc).
                    if h != 0x0005_0000 | libc::ENOSYS as u32 {
                        return Err(format!(
                            "{abi:?} nr {nr} above the profile's highest: husk {h:#x}, want ENOSYS"
                        ));
                    }
                    break;
                }
                // libseccomp's decision: its rule database (the PFC tree), where that decides;
                // its BPF for the ABI dispatch the PFC does not show.
                let lb = run(&lib.0, nr, arch, args);
                let l = lib.1.eval(arch, nr, &args).unwrap_or(lb);
                if lb != l {
                    departures.add(v, abi, nr, &args, lb, l);
                }
                if l != h {
                    return Err(format!(
                        "{abi:?} nr {nr} args {args:x?}: libseccomp {l:#x}, husk {h:#x}"
                    ));
                }
            }
        }
    }
    Ok(points)
}

/// Points where libseccomp's BPF decides otherwise than its own rule database (a code
/// generation bug of libseccomp: where the database's tree says one action, the kernel under
/// runc or crun applies another). husk follows the database there.
#[derive(Default)]
struct Departures {
    points: usize,
    /// Of those, where the BPF's action is more permissive than the database's (the kernel
    /// ranks actions by value: KILL_PROCESS < KILL < TRAP < ERRNO < NOTIFY < TRACE < LOG <
    /// ALLOW): a call the profile denies goes through under runc.
    fail_open: usize,
    first_open: Option<String>,
}

impl Departures {
    fn add(&mut self, v: &Value, abi: Abi, nr: u32, args: &[u64; 6], bpf: u32, db: u32) {
        self.points += 1;
        // the kernel's precedence: SECCOMP_RET_ACTION_FULL read as a signed value
        let rank = |a: u32| (a & 0xffff_0000) as i32;
        if rank(bpf) > rank(db) {
            self.fail_open += 1;
            self.first_open.get_or_insert_with(|| {
                format!(
                    "{abi:?} nr {nr} args {args:x?}: libseccomp's BPF {bpf:#x}, its database \
                     {db:#x}\nprofile: {}",
                    serde_json::to_string(v).unwrap()
                )
            });
        }
    }

    fn merge(&mut self, o: Departures) {
        self.points += o.points;
        self.fail_open += o.fail_open;
        if self.first_open.is_none() {
            self.first_open = o.first_open;
        }
    }

    fn report(&self, what: &str) {
        eprintln!(
            "oracle: {what}: libseccomp's BPF left its rule database at {} points, {} of them \
             more permissive than the database (husk follows the database)",
            self.points, self.fail_open
        );
        if let Some(e) = &self.first_open {
            eprintln!("oracle: first fail-open point of libseccomp's BPF: {e}");
        }
    }
}

/// Compare one profile; returns where libseccomp's BPF departed from its own rule database
/// and how many points were compared.
fn check(name: &str, v: &Value, rng: &mut Rng, samples: usize) -> (Departures, usize) {
    let mut bugs = Departures::default();
    let mut hangs = 0;
    let points = match compare(v, rng, samples, &mut bugs, &mut hangs) {
        Ok(p) => p,
        Err(e) => panic!(
            "husk and libseccomp disagree on {name}: {e}\nprofile: {}",
            serde_json::to_string(v).unwrap()
        ),
    };
    if hangs > 0 {
        eprintln!("oracle: libseccomp did not return for {name}; husk refuses it");
    }
    (bugs, points)
}

/// `libseccomp_program` in a thread given 10 s; None if libseccomp does not return (the thread
/// is left spinning until the test process exits).
fn libseccomp_in_time(s: &LinuxSeccomp) -> Option<Result<(Program, Pfc), String>> {
    let (tx, rx) = std::sync::mpsc::channel();
    let s = s.clone();
    std::thread::spawn(move || {
        let _ = tx.send(libseccomp_program(&s));
    });
    rx.recv_timeout(std::time::Duration::from_secs(10)).ok()
}

#[test]
fn oracle_fixture_profiles() {
    let mut rng = Rng(0x5eed);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    let mut bugs = Departures::default();
    for dir in std::fs::read_dir(root.join("spec-fixtures")).unwrap() {
        let dir = dir.unwrap().path();
        let Ok(text) = std::fs::read_to_string(dir.join("config.json")) else {
            continue;
        };
        let Ok(cfg) = serde_json::from_str::<Value>(&text) else {
            continue; // the malformed-JSON fixture
        };
        let sec = &cfg["linux"]["seccomp"];
        if sec.is_object() {
            let (b, _) = check(&dir.display().to_string(), sec, &mut rng, 24);
            bugs.merge(b);
            seen += 1;
        }
    }
    assert!(seen > 0, "no fixture has a seccomp profile");
    for f in ["docker-default.json", "containerd-default.json"] {
        let v = data_json(f);
        let (b, p) = check(f, &v, &mut rng, 24);
        assert!(p > 1000, "{f}: only {p} points compared");
        bugs.merge(b);
    }
    bugs.report(&format!("{seen} fixture profiles and 2 engine defaults"));
    // On these, libseccomp's program itself (what the kernel runs under runc and crun) decides
    // as husk does, not only its database.
    assert_eq!(
        bugs.points, 0,
        "libseccomp's BPF departs from its database on a fixture"
    );
}

// Only names every oracle ABI has: libseccomp 2.5.4 loses the syscall-number load of a
// non-native architecture whose first rule is for a syscall that architecture lacks (e.g.
// mkdir on aarch64), and then decides that architecture's calls on the AUDIT_ARCH value.
const NAMES: [&str; 11] = [
    "read",
    "openat",
    "mkdirat",
    "personality",
    "ioctl",
    "socket",
    "clone",
    "kill",
    "fchmodat",
    "shmget",
    "getpid",
];
const ACTIONS: [(&str, Option<u32>); 7] = [
    ("SCMP_ACT_ALLOW", None),
    ("SCMP_ACT_ERRNO", None),
    ("SCMP_ACT_ERRNO", Some(38)),
    ("SCMP_ACT_LOG", None),
    ("SCMP_ACT_TRAP", None),
    ("SCMP_ACT_KILL_PROCESS", None),
    ("SCMP_ACT_TRACE", Some(5)),
];
const OPS: [&str; 7] = [
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
];
const VALUES: [u64; 8] = [
    0,
    1,
    2,
    0o755,
    0xffff_ffff,
    0x1_0000_0000,
    0x1_0000_0002,
    u64::MAX,
];
const ARCHES: [&str; 7] = [
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_PPC64LE",
];

/// Names of the dense random profiles: many rules on few syscalls (deep rule trees), two of
/// them multiplexed through i386's socketcall(2).
const DENSE_NAMES: [&str; 3] = ["read", "socket", "connect"];

/// A random profile. With `overlap` false, the conditional rules of one syscall all have the
/// same action. `dense`: up to 10 rules of up to 3 names from `DENSE_NAMES`.
fn random_profile(rng: &mut Rng, overlap: bool, dense: bool, max_args: usize) -> Value {
    let (da, de) = rng.pick(&ACTIONS[..3]);
    let mut def = json!({"defaultAction": da});
    if let Some(e) = de {
        def["defaultErrnoRet"] = json!(e);
    }
    let arches: Vec<&str> = ARCHES
        .iter()
        .copied()
        .filter(|_| rng.below(3) == 0)
        .collect();
    if !arches.is_empty() {
        def["architectures"] = json!(arches);
    }
    let mut rules = Vec::new();
    let mut cond_action: std::collections::HashMap<&str, (&str, Option<u32>)> = Default::default();
    let (n_rules, n_names, pool) = if dense {
        (10, 3, &DENSE_NAMES[..])
    } else {
        (6, 2, &NAMES[..])
    };
    for _ in 0..1 + rng.below(n_rules) {
        let mut names: Vec<&str> = (0..1 + rng.below(n_names))
            .map(|_| rng.pick(pool))
            .collect();
        let nargs = if rng.below(3) == 0 {
            0
        } else {
            1 + rng.below(max_args)
        };
        let mut args = Vec::new();
        for _ in 0..nargs {
            let op = rng.pick(&OPS);
            let mut a = json!({"index": rng.below(3), "value": rng.pick(&VALUES), "op": op});
            if op == "SCMP_CMP_MASKED_EQ" {
                a["value"] = json!(rng.pick(&[0xffu64, 0xff00_0000_00ff, 0x1_0000_0000, 0, 7]));
                a["valueTwo"] = json!(rng.pick(&VALUES));
            }
            args.push(a);
        }
        let (mut act, mut errno) = rng.pick(&ACTIONS);
        if !overlap && nargs > 0 {
            // One action for every conditional rule of these names.
            if let Some(&(a, e)) = names.iter().find_map(|n| cond_action.get(n)) {
                (act, errno) = (a, e);
            }
            // Keep only the names whose conditional rules have this action.
            names.retain(|n| cond_action.get(n).is_none_or(|&x| x == (act, errno)));
            for n in &names {
                cond_action.entry(n).or_insert((act, errno));
            }
        }
        let mut r = json!({"names": names, "action": act});
        if let Some(e) = errno {
            r["errnoRet"] = json!(e);
        }
        if !args.is_empty() {
            r["args"] = json!(args);
        }
        rules.push(r);
    }
    def["syscalls"] = json!(rules);
    def
}

fn seed() -> u64 {
    std::env::var("HUSK_ORACLE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x1157_5eed)
}

#[test]
fn oracle_random_profiles() {
    random_run(false);
}

/// Profiles whose conditional rules for one syscall mix actions where their conditions
/// overlap. libseccomp decides those by the shape of its rule tree (which comparison nodes
/// merge, in which order), and refuses some (EEXIST); husk models that tree and must decide,
/// and refuse, exactly the same.
#[test]
fn oracle_random_profiles_mixed_actions() {
    random_run(true);
}

fn random_run(mixed: bool) {
    let seed = seed();
    eprintln!("oracle random profiles: seed {seed} (HUSK_ORACLE_SEED to rerun)");
    let mut rng = Rng(seed);
    let mut bugs = Departures::default();
    let (mut points, mut profiles) = (0, 0);
    for i in 0..N_RANDOM {
        // every other mixed profile a dense one
        let v = random_profile(&mut rng, mixed, mixed && i % 2 == 1, 3);
        if std::env::var_os("HUSK_ORACLE_TRACE").is_some() {
            eprintln!("TRACE {i} {v}");
        }
        let (b, p) = check(
            &format!("random profile {i} (seed {seed})"),
            &v,
            &mut rng,
            12,
        );
        bugs.merge(b);
        points += p;
        profiles += usize::from(p > 0);
    }
    eprintln!(
        "oracle: {N_RANDOM} random profiles ({profiles} accepted by both), {points} points agree"
    );
    bugs.report(&format!("{N_RANDOM} random profiles"));
    assert!(profiles > N_RANDOM / 2, "most random profiles must compile");
}

const N_RANDOM: usize = 3000;

/// Debug aid: `HUSK_ORACLE_PROFILE='<json>' HUSK_ORACLE_PFC=1 cargo test --lib oracle_one --
/// --nocapture` prints libseccomp's pseudo filter code for one profile and compares it.
#[test]
fn oracle_one() {
    let Some(p) = std::env::var_os("HUSK_ORACLE_PROFILE") else {
        return;
    };
    let v: Value = serde_json::from_str(p.to_str().unwrap()).unwrap();
    if let Ok(s) = serde_json::from_value::<LinuxSeccomp>(v.clone()) {
        match compile(&s) {
            Ok(p) => eprintln!("husk: {} instructions", p.insns.len()),
            Err(e) => eprintln!("husk refuses: {e:#}"),
        }
    }
    let (b, _) = check("HUSK_ORACLE_PROFILE", &v, &mut Rng(seed()), 64);
    b.report("HUSK_ORACLE_PROFILE");
}

/// libseccomp's own rendering of its rule database ("pseudo filter code"), parsed: the
/// decision tree it means, independent of its BPF code generator.
#[derive(Debug)]
enum Stmt {
    If {
        cond: PfcCond,
        then: Vec<Stmt>,
        other: Vec<Stmt>,
    },
    Action(u32),
}

#[derive(Debug, Clone, Copy)]
enum PfcCond {
    Arch(u32),
    Syscall(u32),
    /// (argument index, word: Some(true) high, Some(false) low, None the 32-bit argument,
    /// mask, operator, value)
    Arg(u32, Option<bool>, u32, PfcOp, u32),
}

#[derive(Debug, Clone, Copy)]
enum PfcOp {
    Eq,
    Gt,
    Ge,
}

/// The parsed program: per architecture block (name, AUDIT_ARCH), its statements, and the
/// bad-architecture action.
struct Pfc {
    arches: Vec<(String, u32, Vec<Stmt>)>,
    badarch: u32,
}

fn pfc_action(s: &str) -> u32 {
    let s = s.trim().trim_end_matches(';');
    let num = |p: &str| -> u32 {
        s.strip_prefix(p)
            .and_then(|r| r.strip_suffix(')'))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("pfc action {s}"))
    };
    match s {
        "KILL_PROCESS" => 0x8000_0000,
        "KILL" => 0,
        "TRAP" => 0x0003_0000,
        "LOG" => 0x7ffc_0000,
        "ALLOW" => 0x7fff_0000,
        "NOTIFY" => 0x7fc0_0000,
        _ if s.starts_with("ERRNO(") => 0x0005_0000 | num("ERRNO("),
        _ if s.starts_with("TRACE(") => 0x7ff0_0000 | num("TRACE("),
        _ => panic!("pfc action {s}"),
    }
}

fn pfc_cond(c: &str) -> PfcCond {
    // "$arch == N", "$syscall == N", "$a1.hi32 > 0", "$a2 & 0x000000ff == 4"
    let parts: Vec<&str> = c.split_whitespace().collect();
    let int = |t: &str| -> u32 {
        if let Some(h) = t.strip_prefix("0x") {
            u32::from_str_radix(h, 16).unwrap()
        } else {
            t.parse::<u64>().unwrap() as u32
        }
    };
    let op = |t: &str| match t {
        "==" => PfcOp::Eq,
        ">" => PfcOp::Gt,
        ">=" => PfcOp::Ge,
        _ => panic!("pfc op {t} in {c}"),
    };
    match parts[0] {
        "$arch" => PfcCond::Arch(int(parts[2])),
        "$syscall" => PfcCond::Syscall(int(parts[2])),
        a => {
            let a = a.strip_prefix("$a").unwrap();
            let (idx, word) = match a.split_once('.') {
                Some((i, "hi32")) => (i, Some(true)),
                Some((i, "lo32")) => (i, Some(false)),
                None => (a, None),
                _ => panic!("pfc arg {c}"),
            };
            let idx = idx.parse().unwrap();
            if parts[1] == "&" {
                PfcCond::Arg(idx, word, int(parts[2]), op(parts[3]), int(parts[4]))
            } else {
                PfcCond::Arg(idx, word, u32::MAX, op(parts[1]), int(parts[2]))
            }
        }
    }
}

/// Parse the statements indented by `depth` levels starting at `*i`.
fn pfc_block(lines: &[(usize, &str)], i: &mut usize, depth: usize) -> Vec<Stmt> {
    let mut out = Vec::new();
    while *i < lines.len() && lines[*i].0 == depth {
        let text = lines[*i].1;
        *i += 1;
        if let Some(c) = text.strip_prefix("if (").and_then(|t| t.strip_suffix(')')) {
            let then = pfc_block(lines, i, depth + 1);
            let mut other = Vec::new();
            if *i < lines.len() && lines[*i].0 == depth && lines[*i].1 == "else" {
                *i += 1;
                other = pfc_block(lines, i, depth + 1);
            }
            out.push(Stmt::If {
                cond: pfc_cond(c),
                then,
                other,
            });
        } else if let Some(a) = text.strip_prefix("action ") {
            out.push(Stmt::Action(pfc_action(a)));
        } else {
            panic!("pfc line {text:?}");
        }
    }
    out
}

fn parse_pfc(text: &str) -> Pfc {
    let mut lines: Vec<(usize, &str)> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for l in text.lines() {
        let t = l.trim_start();
        if let Some(n) = t.strip_prefix("# filter for arch ") {
            names.push(n.split_whitespace().next().unwrap_or("").to_owned());
        }
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        lines.push(((l.len() - t.len()) / 2, t));
    }
    let mut i = 0;
    let top = pfc_block(&lines, &mut i, 0);
    assert_eq!(i, lines.len(), "pfc not fully parsed");
    let mut arches = Vec::new();
    let mut badarch = None;
    let mut names = names.into_iter();
    for st in top {
        match st {
            Stmt::If {
                cond: PfcCond::Arch(a),
                then,
                ..
            } => arches.push((names.next().unwrap_or_default(), a, then)),
            Stmt::Action(a) => badarch = Some(a),
            other => panic!("pfc top level {other:?}"),
        }
    }
    Pfc {
        arches,
        badarch: badarch.expect("pfc bad-arch action"),
    }
}

fn pfc_exec(stmts: &[Stmt], nr: u32, args: &[u64; 6]) -> Option<u32> {
    for st in stmts {
        match st {
            Stmt::Action(a) => return Some(*a),
            Stmt::If { cond, then, other } => {
                let hold = match *cond {
                    PfcCond::Arch(_) => unreachable!(),
                    PfcCond::Syscall(n) => nr == n,
                    PfcCond::Arg(i, word, mask, op, v) => {
                        let a = args[i as usize];
                        let w = match word {
                            Some(true) => (a >> 32) as u32,
                            _ => a as u32,
                        } & mask;
                        match op {
                            PfcOp::Eq => w == v,
                            PfcOp::Gt => w > v,
                            PfcOp::Ge => w >= v,
                        }
                    }
                };
                if let Some(a) = pfc_exec(if hold { then } else { other }, nr, args) {
                    return Some(a);
                }
            }
        }
    }
    None
}

impl Pfc {
    /// The action libseccomp's database gives, or None where the decision is made by the
    /// architecture/ABI dispatch outside the rule blocks (x86_64 vs x32 numbers).
    fn eval(&self, arch: u32, nr: u32, args: &[u64; 6]) -> Option<u32> {
        let x86 = arch == 0xc000_003e;
        let want = if x86 && nr >= 0x4000_0000 {
            "x32"
        } else if x86 {
            "x86_64"
        } else {
            ""
        };
        for (name, a, stmts) in &self.arches {
            if *a != arch || (x86 && name != want) {
                continue;
            }
            return pfc_exec(stmts, nr, args);
        }
        if x86 && self.arches.iter().any(|(_, a, _)| *a == arch) {
            return None;
        }
        Some(self.badarch)
    }
}

fn data_json(f: &str) -> Value {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/seccomp")
        .join(f);
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

/// Issue 11 point 3: every name of Docker's and containerd's default profiles is in husk's
/// table, and on x86_64 and aarch64 husk has exactly the numbers libseccomp has for them
/// (and a number wherever libseccomp has one).
#[test]
fn engine_default_profile_names_resolve() {
    let mut names: Vec<String> = Vec::new();
    for f in ["docker-default.json", "containerd-default.json"] {
        for sc in data_json(f)["syscalls"].as_array().unwrap() {
            for n in sc["names"].as_array().unwrap() {
                names.push(n.as_str().unwrap().to_owned());
            }
        }
    }
    for (_, list) in data_json("docker-arch-names.json").as_object().unwrap() {
        for n in list.as_array().unwrap() {
            names.push(n.as_str().unwrap().to_owned());
        }
    }
    names.sort();
    names.dedup();
    assert!(names.len() > 350, "{}", names.len());
    let mut on = [0usize; 2];
    for n in &names {
        assert!(
            Abi::ALL.iter().any(|a| a.lookup(n).is_some()),
            "{n} is in no ABI's table"
        );
        for (k, abi) in [Abi::X86_64, Abi::Aarch64].into_iter().enumerate() {
            let cname = CString::new(n.as_str()).unwrap();
            // SAFETY: cname is a valid C string.
            let lib = unsafe { seccomp_syscall_resolve_name_arch(arch_token(abi), cname.as_ptr()) };
            let husk = abi.lookup(n);
            if lib >= 0 {
                assert_eq!(husk, Some(lib as u32), "{abi:?} {n}");
            }
            on[k] += usize::from(husk.is_some());
        }
    }
    // The calls libseccomp 2.5.4 does not know but the 6.18 kernel has.
    for n in [
        "cachestat",
        "fchmodat2",
        "futex_waitv",
        "mseal",
        "listmount",
        "statmount",
    ] {
        assert!(
            Abi::X86_64.lookup(n).is_some() && Abi::Aarch64.lookup(n).is_some(),
            "{n}"
        );
    }
    eprintln!(
        "{} names; {} on x86_64, {} on aarch64",
        names.len(),
        on[0],
        on[1]
    );
}
