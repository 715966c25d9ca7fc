//! Tests that change process state: each runs in a child (see `test_support::in_child`).

use super::test_support::{in_child, is_root};
use super::*;
use anyhow::{ensure, Context};
use serde_json::json;

fn status_caps() -> anyhow::Result<[(String, u64); 5]> {
    let s = String::from_utf8(crate::sys::procfs::read_proc_file("self/status")?)?;
    let get = |k: &str| -> anyhow::Result<(String, u64)> {
        let line = s
            .lines()
            .find(|l| l.starts_with(&format!("{k}:")))
            .with_context(|| format!("{k} not in status"))?;
        let v = u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16)?;
        Ok((k.to_string(), v))
    };
    Ok([
        get("CapInh")?,
        get("CapPrm")?,
        get("CapEff")?,
        get("CapBnd")?,
        get("CapAmb")?,
    ])
}

fn expect_caps(inh: u64, prm: u64, eff: u64, bnd: u64, amb: u64) -> anyhow::Result<()> {
    let got = status_caps()?;
    let want = [inh, prm, eff, bnd, amb];
    for ((k, g), w) in got.iter().zip(want) {
        ensure!(*g == w, "{k} is {g:#x}, want {w:#x}");
    }
    Ok(())
}

fn spec<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).unwrap()
}

const KILL: u64 = 1 << 5;
const NET_BIND: u64 = 1 << 10;

#[test]
fn seccomp_filter_denies_mkdir_with_errno() {
    in_child(
        concat!(module_path!(), "::seccomp_filter_denies_mkdir_with_errno"),
        || {
            let dir = tempfile::tempdir()?;
            let p = seccomp_compile(&spec(json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_AARCH64"],
                "flags": ["SECCOMP_FILTER_FLAG_TSYNC"],
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                              "errnoRet": libc::EPERM}]
            })))?;
            set_no_new_privs()?;
            seccomp_install(&p)?;
            let e = std::fs::create_dir(dir.path().join("d")).unwrap_err();
            ensure!(e.raw_os_error() == Some(libc::EPERM), "mkdir gave {e}");
            // Everything else still works.
            std::fs::write(dir.path().join("f"), b"x")?;
            ensure!(std::fs::read(dir.path().join("f"))? == b"x");
            ensure!(nix::unistd::getpid().as_raw() > 0);
            Ok(())
        },
    );
}

#[test]
fn seccomp_install_without_nnp_needs_cap_sys_admin() {
    if !is_root() {
        eprintln!("skipping seccomp_install_without_nnp_needs_cap_sys_admin: needs root");
        return;
    }
    in_child(
        concat!(
            module_path!(),
            "::seccomp_install_without_nnp_needs_cap_sys_admin"
        ),
        || {
            let p = seccomp_compile(&spec(json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 77}]
            })))?;
            seccomp_install(&p)?;
            // SAFETY: plain syscall without arguments.
            let r = unsafe { libc::syscall(libc::SYS_getppid) };
            let e = std::io::Error::last_os_error();
            ensure!(
                r == -1 && e.raw_os_error() == Some(77),
                "getppid gave {r} {e}"
            );
            Ok(())
        },
    );
}

#[test]
fn switch_user_then_capabilities() {
    if !is_root() {
        eprintln!("skipping switch_user_then_capabilities: needs root");
        return;
    }
    in_child(
        concat!(module_path!(), "::switch_user_then_capabilities"),
        || {
            let u: User = spec(json!({"uid": 1000, "gid": 1001, "umask": 0o027,
                                      "additionalGids": [1002, 1003]}));
            switch_user(&u, false)?;
            let r = nix::unistd::getresuid()?;
            ensure!([r.real, r.effective, r.saved]
                .iter()
                .all(|u| u.as_raw() == 1000));
            let g = nix::unistd::getresgid()?;
            ensure!([g.real, g.effective, g.saved]
                .iter()
                .all(|g| g.as_raw() == 1001));
            let groups: Vec<u32> = nix::unistd::getgroups()?
                .iter()
                .map(|g| g.as_raw())
                .collect();
            ensure!(groups == [1002, 1003], "groups {groups:?}");
            // SAFETY: reading the umask by swapping it twice.
            let m = unsafe { libc::umask(0o022) };
            ensure!(m == 0o027, "umask {m:o}");
            let (eff, perm, _) = caps::capget()?;
            ensure!(
                eff == 0 && perm & (KILL | NET_BIND) == KILL | NET_BIND,
                "perm kept"
            );

            let c: LinuxCapabilities = spec(json!({
                "bounding": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "permitted": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "effective": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "inheritable": ["CAP_KILL"],
                "ambient": ["CAP_KILL", "CAP_NET_BIND_SERVICE"]
            }));
            apply_capabilities(Some(&c))?;
            // NET_BIND_SERVICE is not inheritable, so it cannot be ambient.
            expect_caps(
                KILL,
                KILL | NET_BIND,
                KILL | NET_BIND,
                KILL | NET_BIND,
                KILL,
            )
        },
    );
}

#[test]
fn capabilities_none_and_unlisted_sets_are_empty() {
    if !is_root() {
        eprintln!("skipping capabilities_none_and_unlisted_sets_are_empty: needs root");
        return;
    }
    in_child(
        concat!(
            module_path!(),
            "::capabilities_none_and_unlisted_sets_are_empty"
        ),
        || {
            // The runtime's inheritable/ambient must not leak into the container
            // (CVE-2022-29162): start with KILL inheritable and ambient.
            let c: LinuxCapabilities = spec(json!({
                "bounding": ["CAP_KILL", "CAP_SETPCAP"], "permitted": ["CAP_KILL", "CAP_SETPCAP"],
                "effective": ["CAP_KILL", "CAP_SETPCAP"], "inheritable": ["CAP_KILL"],
                "ambient": ["CAP_KILL"]
            }));
            apply_capabilities(Some(&c))?;
            expect_caps(KILL, KILL | 1 << 8, KILL | 1 << 8, KILL | 1 << 8, KILL)?;
            // SETPCAP kept permitted but not effective: dropping from the bounding set later
            // must raise it first.
            let c: LinuxCapabilities = spec(json!({
                "bounding": ["CAP_KILL", "CAP_SETPCAP"], "permitted": ["CAP_KILL", "CAP_SETPCAP"],
                "effective": ["CAP_KILL"]
            }));
            apply_capabilities(Some(&c))?;
            expect_caps(0, KILL | 1 << 8, KILL, KILL | 1 << 8, 0)?;
            apply_capabilities(None)?;
            expect_caps(0, 0, 0, 0, 0)
        },
    );
}

#[test]
fn setgroups_skipped_when_denied_in_userns() {
    if !is_root() {
        eprintln!("skipping setgroups_skipped_when_denied_in_userns: needs root");
        return;
    }
    in_child(
        concat!(module_path!(), "::setgroups_skipped_when_denied_in_userns"),
        || {
            use crate::sys::procfs::write_proc_file;
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER)?;
            write_proc_file("self/setgroups", b"deny")?;
            write_proc_file("self/uid_map", b"0 0 1")?;
            write_proc_file("self/gid_map", b"0 0 1")?;
            let u: User = spec(json!({"uid": 0, "gid": 0, "additionalGids": [0]}));
            // Without the userns hint setgroups is attempted and refused...
            let e = switch_user(&u, false).unwrap_err();
            ensure!(
                format!("{e:#}").contains("process.user.additionalGids"),
                "{e:#}"
            );
            // ...with it, skipped.
            switch_user(&u, true)
        },
    );
}

#[test]
fn rlimits_set_and_soft_above_hard_rejected() {
    in_child(
        concat!(module_path!(), "::rlimits_set_and_soft_above_hard_rejected"),
        || {
            let r: Vec<PosixRlimit> = spec(json!([
                {"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200},
                {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}
            ]));
            apply_rlimits(&r)?;
            let (s, h) =
                nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)?;
            ensure!((s, h) == (100, 200), "nofile {s} {h}");
            let bad: Vec<PosixRlimit> = spec(json!([
                {"type": "RLIMIT_NOFILE", "soft": 10, "hard": 20},
                {"type": "RLIMIT_NPROC", "soft": 20, "hard": 10}
            ]));
            let e = apply_rlimits(&bad).unwrap_err();
            ensure!(format!("{e:#}").contains("process.rlimits[1]"), "{e:#}");
            // Raising the hard limit unprivileged fails, naming the entry.
            if !is_root() {
                let up: Vec<PosixRlimit> =
                    spec(json!([{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 100000}]));
                let e = apply_rlimits(&up).unwrap_err();
                ensure!(format!("{e:#}").contains("process.rlimits[0]"), "{e:#}");
            }
            Ok(())
        },
    );
}

#[test]
fn scheduler_ioprio_personality_nnp() {
    in_child(
        concat!(module_path!(), "::scheduler_ioprio_personality_nnp"),
        || {
            apply_scheduler(&spec(json!({"policy": "SCHED_BATCH", "nice": 7})))?;
            // SAFETY: plain queries about the calling process.
            let (pol, nice) = unsafe {
                *libc::__errno_location() = 0;
                (
                    libc::sched_getscheduler(0),
                    libc::getpriority(libc::PRIO_PROCESS, 0),
                )
            };
            ensure!(pol == 3 && nice == 7, "policy {pol} nice {nice}");
            let e = apply_scheduler(&spec(json!({"policy": "SCHED_OTHER", "priority": 5})))
                .unwrap_err();
            ensure!(format!("{e:#}").contains("process.scheduler"), "{e:#}");

            apply_io_priority(&spec(json!({"class": "IOPRIO_CLASS_BE", "priority": 6})))?;
            // SAFETY: ioprio_get(IOPRIO_WHO_PROCESS, self).
            let p = unsafe { libc::syscall(libc::SYS_ioprio_get, 1, 0) };
            ensure!(p == (2 << 13) | 6, "ioprio {p:#x}");
            let e = apply_io_priority(&spec(json!({"class": "IOPRIO_CLASS_BE", "priority": 8})))
                .unwrap_err();
            ensure!(
                format!("{e:#}").contains("process.ioPriority.priority"),
                "{e:#}"
            );

            apply_personality(&spec(json!({"domain": "LINUX32"})))?;
            // SAFETY: 0xffffffff queries the persona without changing it.
            let cur = unsafe { libc::personality(0xffff_ffff) };
            ensure!(cur & 0xff == 0x0008, "personality {cur:#x}");
            apply_personality(&spec(json!({"domain": "LINUX"})))?;
            // SAFETY: as above.
            ensure!(unsafe { libc::personality(0xffff_ffff) } & 0xff == 0);
            ensure!(apply_personality(&spec(json!({"domain": "LINUX", "flags": ["X"]}))).is_err());

            set_no_new_privs()?;
            // SAFETY: query only.
            let nnp = unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) };
            ensure!(nnp == 1);
            Ok(())
        },
    );
}

#[test]
fn lsm_labels_follow_host_support() {
    in_child(
        concat!(module_path!(), "::lsm_labels_follow_host_support"),
        || {
            if lsm::apparmor_enabled() {
                eprintln!("skipping the disabled-AppArmor check: AppArmor is enabled here");
            } else {
                let e = apply_apparmor("husk-test-profile").unwrap_err();
                ensure!(
                    format!("{e:#}").contains("process.apparmorProfile")
                        && format!("{e:#}").contains("AppArmor is not enabled"),
                    "{e:#}"
                );
            }
            if lsm::selinux_enabled() {
                eprintln!("skipping the disabled-SELinux check: SELinux is enabled here");
            } else {
                let e = apply_selinux_label("system_u:system_r:container_t:s0").unwrap_err();
                ensure!(format!("{e:#}").contains("SELinux is not enabled"), "{e:#}");
            }
            Ok(())
        },
    );
}

/// The kernel accepts our larger programs (including trampolines) and a real program still runs
/// under a Docker-like allow-list.
#[test]
fn kernel_accepts_large_programs() {
    if !cfg!(target_arch = "x86_64") {
        eprintln!("skipping kernel_accepts_large_programs: x86_64 only");
        return;
    }
    in_child(
        concat!(module_path!(), "::kernel_accepts_large_programs"),
        || {
            let (names, far) = seccomp::tests::far_jump_profile();
            let far = seccomp_compile(&spec(far))?;
            let mut allow: Vec<&str> = seccomp::Abi::X86_64
                .names()
                .filter(|n| !["mkdir", "mkdirat", "clone3"].contains(n))
                .collect();
            allow.sort();
            let docker = seccomp_compile(&spec(json!({
                "defaultAction": "SCMP_ACT_ERRNO",
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                "syscalls": [{"names": allow, "action": "SCMP_ACT_ALLOW"},
                             {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]
            })))?;
            let dir = tempfile::tempdir()?; // before mkdir is denied
            set_no_new_privs()?;
            seccomp_install(&docker)?;
            seccomp_install(&far)?;
            // The far-jump filter: the 1-argument rule of the k-th syscall gives errno 100+k.
            let k = names
                .iter()
                .position(|n| *n == "access")
                .context("access")?;
            let r = unsafe {
                // SAFETY: access() with an invalid pointer value; the filter answers first.
                libc::syscall(libc::SYS_access, 1000 + k as u64, 0)
            };
            let e = std::io::Error::last_os_error();
            ensure!(
                r == -1 && e.raw_os_error() == Some(100 + k as i32),
                "access: {e}"
            );
            let e = std::fs::create_dir(dir.path().join("d")).unwrap_err();
            ensure!(e.raw_os_error() == Some(libc::EPERM), "mkdir gave {e}");
            let st = std::process::Command::new("/bin/sh")
                .args(["-c", "echo hi > /dev/null; exit 7"])
                .status()?;
            ensure!(st.code() == Some(7), "sh exited with {st}");
            Ok(())
        },
    );
}

/// seccomp(2) flags reach the kernel (an unknown flag would be EINVAL).
#[test]
fn seccomp_flags_are_passed_to_the_kernel() {
    in_child(
        concat!(module_path!(), "::seccomp_flags_are_passed_to_the_kernel"),
        || {
            let p = seccomp_compile(&spec(json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                          "SECCOMP_FILTER_FLAG_TSYNC"]
            })))?;
            ensure!(p.program.flags == 1 | 2 | 4, "flags {:#x}", p.program.flags);
            set_no_new_privs()?;
            seccomp_install(&p)?;
            // Proof that the flags are not dropped on the way: a bogus one is refused.
            let mut bad = p.clone();
            bad.program.flags |= 1 << 30;
            let e = seccomp_install(&bad).unwrap_err();
            ensure!(format!("{e:#}").contains("Invalid argument"), "{e:#}");
            Ok(())
        },
    );
}
