//! Process: user/groups/umask, capabilities, rlimits, NNP, oomScoreAdj, seccomp, env/cwd,
//! missing executable, cgroup resources.
mod common;
use common::*;

#[test]
fn user_groups_umask() {
    root_or_skip!("user_groups_umask");
    let mut c = Ctr::new("user", "user");
    let v = c.run_probe();
    for k in ["uid", "euid", "gid", "egid"] {
        assert_eq!(v[k], 1000, "{k}: {v}");
    }
    let g: Vec<i64> = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect();
    assert!(g.contains(&1001) && g.contains(&5), "additionalGids: {g:?}");
    assert!(
        !g.contains(&0),
        "root group leaked into supplementary groups: {g:?}"
    );
    assert_eq!(v["umask"], "0027");
    // a non-root user gets no effective capabilities
    assert_eq!(
        cap_mask(&v, "CapEff"),
        0,
        "uid 1000 has effective caps: {}",
        v["caps"]
    );
}

#[test]
fn default_user_and_umask() {
    root_or_skip!("default_user_and_umask");
    let mut c = Ctr::new("defuser", "default");
    let v = c.run_probe();
    assert_eq!(v["uid"], 0);
    assert_eq!(
        v["groups"],
        serde_json::json!([]),
        "root with no additionalGids must have no supplementary groups"
    );
    assert_eq!(v["umask"], "0022");
}

#[test]
fn capability_sets() {
    root_or_skip!("capability_sets");
    let mut c = Ctr::new("caps", "capabilities");
    let v = c.run_probe();
    assert_eq!(
        cap_mask(&v, "CapBnd"),
        mask_of(&[CAP_CHOWN, CAP_KILL, CAP_NET_RAW, CAP_SETUID]),
        "{}",
        v["caps"]
    );
    // uid 0 without file caps: execve makes the effective set equal to the permitted set
    assert_eq!(
        cap_mask(&v, "CapEff"),
        mask_of(&[CAP_CHOWN, CAP_KILL, CAP_NET_RAW]),
        "{}",
        v["caps"]
    );
    assert_eq!(
        cap_mask(&v, "CapPrm"),
        mask_of(&[CAP_CHOWN, CAP_KILL, CAP_NET_RAW]),
        "{}",
        v["caps"]
    );
    assert_eq!(cap_mask(&v, "CapInh"), 0);
    assert_eq!(cap_mask(&v, "CapAmb"), 0);
    // default spec: the three runc defaults, nothing else
    let mut c = Ctr::new("capsdef", "default");
    let v = c.run_probe();
    let want = mask_of(&[CAP_AUDIT_WRITE, CAP_KILL, CAP_NET_BIND_SERVICE]);
    assert_eq!(cap_mask(&v, "CapBnd"), want, "{}", v["caps"]);
    assert_eq!(cap_mask(&v, "CapEff"), want, "{}", v["caps"]);
    assert_eq!(cap_mask(&v, "CapEff") & (1 << CAP_SYS_ADMIN), 0);
}

#[test]
fn rlimits_applied() {
    root_or_skip!("rlimits_applied");
    let mut c = Ctr::new("rlimits", "rlimits");
    let v = c.run_probe();
    let r = &v["rlimits"];
    assert_eq!(
        r["RLIMIT_NOFILE"],
        serde_json::json!({"soft": 256, "hard": 512})
    );
    assert_eq!(
        r["RLIMIT_CORE"],
        serde_json::json!({"soft": 1024, "hard": 2048})
    );
    assert_eq!(
        r["RLIMIT_MSGQUEUE"],
        serde_json::json!({"soft": 4096, "hard": 8192})
    );
}

#[test]
fn no_new_privileges() {
    root_or_skip!("no_new_privileges");
    let mut c = Ctr::new("nnp", "no-new-privs");
    assert_eq!(c.run_probe()["no_new_privs"], 1);
    let mut c = Ctr::new("nnpoff", "no-new-privs-off");
    assert_eq!(c.run_probe()["no_new_privs"], 0);
}

#[test]
fn oom_score_adj() {
    root_or_skip!("oom_score_adj");
    let mut c = Ctr::new("oom", "oom-score-adj");
    assert_eq!(c.run_probe()["oom_score_adj"], 423);
}

#[test]
fn seccomp_errno() {
    root_or_skip!("seccomp_errno");
    let mut c = Ctr::new("seccomp", "seccomp");
    c.args(&[
        "/bin/sh",
        "-c",
        "/probe syscall mkdir; /probe syscall getpid; /probe",
    ]);
    let out = text(&c.run().stdout);
    let vals: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(vals.len(), 3, "{out}");
    assert_eq!(vals[0]["ok"], false, "mkdir not denied: {}", vals[0]);
    assert_eq!(
        vals[0]["errno"], 123,
        "mkdir denied with the wrong errno: {}",
        vals[0]
    );
    assert_eq!(vals[1]["ok"], true, "allowed syscall failed: {}", vals[1]);
    assert_eq!(vals[2]["seccomp"], 2, "seccomp mode is not filter");
    // without a profile: no filter, mkdir works
    let mut c = Ctr::new("noseccomp", "root-rw");
    c.args(&["/probe", "syscall", "mkdir"]);
    assert_eq!(probe_json(&c.run())["ok"], true);
}

#[test]
fn env_and_cwd() {
    root_or_skip!("env_and_cwd");
    let mut c = Ctr::new("envcwd", "env-cwd");
    let v = c.run_probe();
    assert_eq!(v["cwd"], "/home/user");
    let env: Vec<&str> = v["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    for e in ["PATH=/bin:/usr/bin", "FOO=bar", "EMPTY=", "WITH_EQ=a=b"] {
        assert!(env.contains(&e), "{e} missing from {env:?}");
    }
    // nothing of the runtime's own environment leaks in
    for e in &env {
        let k = e.split('=').next().unwrap();
        assert!(
            [
                "PATH",
                "FOO",
                "EMPTY",
                "WITH_EQ",
                "HOME",
                "TERM",
                "container"
            ]
            .contains(&k),
            "unexpected env {e}"
        );
    }
}

#[test]
fn missing_executable_fails_at_create() {
    root_or_skip!("missing_executable_fails_at_create");
    let mut c = Ctr::new("noexe", "missing-exe");
    let o = c.create(&[]);
    assert!(
        !o.status.success(),
        "create with a missing executable must fail"
    );
    let err = format!("{}{}", text(&o.stderr), c.log_text());
    assert!(
        err.contains("executable file not found in $PATH"),
        "error wording: {err}"
    );
    assert!(c.state().is_none(), "failed create left a container");
}

#[test]
fn cgroup_resources() {
    root_or_skip!("cgroup_resources");
    let mut c = Ctr::new("cgroups", "cgroups");
    let v = c.run_probe();
    let f = &v["cgroup_files"];
    let get = |v1: &str, v2: &str| f[v1].as_str().or(f[v2].as_str()).map(String::from);
    assert_eq!(
        get(
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory.max"
        )
        .as_deref(),
        Some("67108864"),
        "{f}"
    );
    assert_eq!(
        get("/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max").as_deref(),
        Some("32"),
        "{f}"
    );
    if f["/sys/fs/cgroup/cpu/cpu.shares"].is_string() {
        assert_eq!(f["/sys/fs/cgroup/cpu/cpu.shares"], "512");
    } else {
        // v2: shares 512 -> weight 1 + ((512 - 2) * 9999) / 262142 = 20
        assert_eq!(f["/sys/fs/cgroup/cpu.weight"], "20", "{f}");
    }
    // the container is in a cgroup named after its cgroupsPath
    let cg = v["cgroup"].as_array().unwrap();
    assert!(
        cg.iter()
            .filter_map(|l| l.as_str())
            .any(|l| l.ends_with(&format!("/{}", c.id))),
        "{cg:?}"
    );
}

#[test]
fn pids_limit_enforced() {
    root_or_skip!("pids_limit_enforced");
    let mut c = Ctr::new("forkbomb", "cgroups");
    c.args(&["/probe", "fork-bomb", "1000"]);
    let v = probe_json(&c.run());
    assert_eq!(v["ok"], false, "fork bomb was not stopped: {v}");
    assert_eq!(v["errno"], libc::EAGAIN, "{v}");
    assert!(v["forked"].as_i64().unwrap() < 32, "{v}");
}

#[test]
fn memory_limit_enforced() {
    root_or_skip!("memory_limit_enforced");
    let mut c = Ctr::new("alloc", "cgroups");
    c.config["linux"]["resources"]["memory"]["swap"] = 67108864.into();
    c.args(&["/probe", "alloc", "256"]);
    let o = c.run();
    assert_eq!(
        code(&o.status),
        137,
        "allocating 256 MiB under a 64 MiB limit must be OOM-killed; stdout {}",
        text(&o.stdout)
    );
    let mut c = Ctr::new("allocok", "cgroups");
    c.args(&["/probe", "alloc", "16"]);
    assert_eq!(probe_json(&c.run())["ok"], true);
}

/// Run the probe's `syscalls` checks in a container with `seccomp` as its profile (the default
/// fixture otherwise); returns CHECK -> "ok" | "errno N".
fn seccomp_checks(tag: &str, seccomp: serde_json::Value, checks: &[&str]) -> serde_json::Value {
    let mut cfg = common::fixture("default");
    cfg["linux"]["seccomp"] = seccomp;
    let mut c = Ctr::with_config(tag, cfg);
    let mut args = vec!["/probe", "syscalls"];
    args.extend_from_slice(checks);
    c.args(&args);
    let v = probe_json(&c.run());
    assert_eq!(v["ok"], true, "{v}");
    v["results"].clone()
}

/// Issue 11 point 1: two conditions on one argument are alternatives; the deny rule fires.
#[test]
fn seccomp_same_index_conditions_are_alternatives() {
    root_or_skip!("seccomp_same_index_conditions_are_alternatives");
    let r = seccomp_checks(
        "scidx",
        common::fixture("seccomp-same-index")["linux"]["seccomp"].clone(),
        &["personality:1", "personality:2", "personality:ffffffff"],
    );
    assert_eq!(r["personality:1"], "errno 121", "{r}");
    assert_eq!(r["personality:2"], "errno 121", "{r}");
    assert_eq!(r["personality:ffffffff"], "ok", "{r}");
}

/// Where libseccomp's generated program departs from its own rule database, husk decides as
/// the database (the profile's meaning). Two 64-bit ranges on one argument: the rule applies
/// to `personality(x)` for x <= 2 or x >= 2^32 + 2. libseccomp 2.5.4's BPF (what the kernel runs
/// under runc and crun) applies it to 0xffffffff as well: its second comparison reads a stale
/// high word. With a deny-by-default profile and ALLOW rules that is a call let through.
#[test]
fn seccomp_follows_the_rule_database_where_libseccomps_bpf_departs() {
    root_or_skip!("seccomp_follows_the_rule_database_where_libseccomps_bpf_departs");
    let r = seccomp_checks(
        "scbpf",
        serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{
                "names": ["personality"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": 121,
                "args": [
                    {"index": 0, "op": "SCMP_CMP_LE", "value": 2u64},
                    {"index": 0, "op": "SCMP_CMP_GE", "value": 0x1_0000_0002u64}
                ]
            }]
        }),
        &[
            "personality:ffffffff",
            "personality:1",
            "personality:100000002",
        ],
    );
    assert_eq!(r["personality:ffffffff"], "ok", "{r}");
    assert_eq!(r["personality:1"], "errno 121", "{r}");
    assert_eq!(r["personality:100000002"], "errno 121", "{r}");
}

/// Issue 11 point 2: an unconditional rule replaces the syscall's conditional rules.
#[test]
fn seccomp_unconditional_rule_replaces_conditional() {
    root_or_skip!("seccomp_unconditional_rule_replaces_conditional");
    let r = seccomp_checks(
        "scord",
        common::fixture("seccomp-rule-order")["linux"]["seccomp"].clone(),
        &["mkdir:755", "mkdir:700", "getpid"],
    );
    assert_eq!(r["mkdir:755"], "errno 13", "{r}");
    assert_eq!(r["mkdir:700"], "errno 13", "{r}");
    assert_eq!(r["getpid"], "ok", "{r}");
}

/// Issue 11 point 5: the native architecture is filtered even when the profile lists only
/// others (x86 and x32 here); the container runs and the rules apply to its x86_64 calls.
#[test]
fn seccomp_native_arch_is_always_kept() {
    root_or_skip!("seccomp_native_arch_is_always_kept");
    if !cfg!(target_arch = "x86_64") {
        return common::skip("seccomp_native_arch_is_always_kept", "x86_64 host only");
    }
    let r = seccomp_checks(
        "scnat",
        serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 77}]
        }),
        &["getpid", "mkdir:755"],
    );
    assert_eq!(r["getpid"], "errno 77", "{r}");
}

/// Issue 11 point 3: a syscall newer than the build host's headers (fchmodat2, Linux 6.6) that
/// the profile allows is allowed, not refused as unknown with the -ENOSYS stub.
#[test]
fn seccomp_new_syscall_names_are_known() {
    root_or_skip!("seccomp_new_syscall_names_are_known");
    let mut p: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/data/seccomp/docker-default.json"),
        )
        .unwrap(),
    )
    .unwrap();
    p["syscalls"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"names": ["fchmodat2"], "action": "SCMP_ACT_ALLOW"}));
    let r = seccomp_checks("scnew", p, &["fchmodat2", "keyctl", "getpid"]);
    // Allowed: the kernel's answer (read-only root), not EPERM or ENOSYS.
    assert_eq!(r["fchmodat2"], "errno 30", "{r}");
    assert_eq!(r["keyctl"], "errno 1", "{r}");
    assert_eq!(r["getpid"], "ok", "{r}");
}

/// Docker's default profile (as an amd64 host gets it) applied by husk: what it allows and
/// denies, seen from inside.
#[test]
fn seccomp_docker_default_profile() {
    root_or_skip!("seccomp_docker_default_profile");
    let r = seccomp_checks(
        "scdock",
        common::fixture("seccomp-docker-default")["linux"]["seccomp"].clone(),
        &[
            "getpid",
            "personality:ffffffff",
            "personality:4",
            "unshare",
            "mount",
            "keyctl",
        ],
    );
    assert_eq!(r["getpid"], "ok", "{r}");
    assert_eq!(r["personality:ffffffff"], "ok", "{r}");
    assert_eq!(r["personality:4"], "errno 1", "{r}");
    assert_eq!(r["unshare"], "errno 1", "{r}");
    assert_eq!(r["mount"], "errno 1", "{r}");
    assert_eq!(r["keyctl"], "errno 1", "{r}");
}
