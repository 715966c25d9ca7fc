//! process.execCPUAffinity (runtime-spec 1.2): the CPU affinity of a process started by `exec`,
//! read from inside the container (Cpus_allowed_list of /proc/self/status). Needs 2 CPUs (0, 1).
mod common;
use common::*;
use serde_json::{json, Value};

fn two_cpus(test: &str) -> bool {
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
    let ok = matches!(online.trim(), "0-1" | "0,1") || online.trim().starts_with("0-");
    if !ok {
        skip(test, "needs CPUs 0 and 1 online");
    }
    ok
}

/// A started container whose init sleeps; `cpus` restricts its cpuset.
fn sleeper(tag: &str, cpus: Option<&str>) -> Ctr {
    let mut c = Ctr::new(tag, "root-rw");
    c.args(&["/probe", "sleep", "60"]);
    if let Some(cpus) = cpus {
        c.config["linux"]["resources"]["cpu"] = json!({"cpus": cpus, "mems": "0"});
    }
    c.create_ok(&[]);
    let o = c.start();
    assert!(o.status.success(), "start: {}", text(&o.stderr));
    c
}

/// `exec --process` of a process JSON carrying `affinity` (None: no execCPUAffinity).
fn exec_with(c: &Ctr, name: &str, affinity: Option<Value>) -> std::process::Output {
    let mut p = json!({
        "terminal": false,
        "user": {"uid": 0, "gid": 0},
        "args": ["/probe", "read", "/proc/self/status"],
        "env": ["PATH=/bin"],
        "cwd": "/"
    });
    if let Some(a) = affinity {
        p["execCPUAffinity"] = a;
    }
    let f = c.work.join(format!("{name}.json"));
    std::fs::write(&f, serde_json::to_vec(&p).unwrap()).unwrap();
    c.rt(&["exec", "--process", f.to_str().unwrap(), &c.id])
}

/// The Cpus_allowed_list the exec'd probe saw.
fn allowed(o: &std::process::Output) -> String {
    assert!(
        o.status.success(),
        "exec failed: {:?}\nstderr: {}",
        o.status,
        text(&o.stderr)
    );
    let v = probe_json(o);
    let status = v["data"].as_str().expect("probe read data");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| panic!("no Cpus_allowed_list in {status}"))
}

/// Processes in the container's cgroup(s).
fn cgroup_pids(id: &str) -> Vec<i32> {
    let mut pids: Vec<i32> = cgroup_dirs(id)
        .iter()
        .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
        .flat_map(|s| {
            s.lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<_>>()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

#[test]
fn exec_cpu_affinity_final_and_initial() {
    root_or_skip!("exec_cpu_affinity_final_and_initial");
    if !two_cpus("exec_cpu_affinity_final_and_initial") {
        return;
    }
    let c = sleeper("affin", None);
    assert_eq!(
        allowed(&exec_with(&c, "final1", Some(json!({"final": "1"})))),
        "1"
    );
    assert_eq!(
        allowed(&exec_with(
            &c,
            "both",
            Some(json!({"initial": "1", "final": "0"}))
        )),
        "0"
    );
    // initial only: after the cgroup join the affinity is the cgroup's cpuset (all CPUs here),
    // not `initial` (runc resets it when final is absent).
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    assert_eq!(
        allowed(&exec_with(&c, "init0", Some(json!({"initial": "0"})))),
        online.trim()
    );
}

#[test]
fn exec_cpu_affinity_follows_the_cpuset() {
    root_or_skip!("exec_cpu_affinity_follows_the_cpuset");
    if !two_cpus("exec_cpu_affinity_follows_the_cpuset") {
        return;
    }
    // The container may only run on CPU 1: initial 0 is used before the cgroup join, then
    // the process ends up on the cpuset, with or without execCPUAffinity.
    let c = sleeper("affcs", Some("1"));
    assert_eq!(
        allowed(&exec_with(&c, "init0", Some(json!({"initial": "0"})))),
        "1"
    );
    assert_eq!(allowed(&exec_with(&c, "none", None)), "1");
    assert_eq!(
        allowed(&exec_with(
            &c,
            "both",
            Some(json!({"initial": "0", "final": "1"}))
        )),
        "1"
    );
    // final outside the cpuset: the kernel refuses it, exec fails.
    let o = exec_with(&c, "outside", Some(json!({"final": "0"})));
    assert_eq!(code(&o.status), 255, "stderr: {}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("process.execCPUAffinity.final"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn exec_cpu_affinity_invalid_list_fails_cleanly() {
    root_or_skip!("exec_cpu_affinity_invalid_list_fails_cleanly");
    let c = sleeper("affbad", None);
    let before = cgroup_pids(&c.id);
    for (name, aff, field, value) in [
        ("rev", json!({"final": "3-1"}), "final", "3-1"),
        ("alpha", json!({"initial": "a"}), "initial", "a"),
        ("open", json!({"initial": "1-"}), "initial", "1-"),
        ("lead", json!({"final": ",0"}), "final", ",0"),
        ("trail", json!({"final": "0,"}), "final", "0,"),
    ] {
        let o = exec_with(&c, name, Some(aff));
        let err = text(&o.stderr);
        assert_eq!(code(&o.status), 255, "{name}: {err}");
        assert!(
            err.contains(&format!("execCPUAffinity.{field}")) && err.contains(value),
            "{name}: the error names neither the field nor the value: {err}"
        );
        assert_eq!(cgroup_pids(&c.id), before, "{name}: a process was left");
    }
    assert_eq!(c.status().as_deref(), Some("running"));
}

#[test]
fn create_refuses_a_bad_exec_cpu_affinity() {
    root_or_skip!("create_refuses_a_bad_exec_cpu_affinity");
    let mut c = Ctr::new("affcr", "root-rw");
    c.config["process"]["execCPUAffinity"] = json!({"initial": "0", "final": "3-1"});
    let o = c.create(&[]);
    assert!(!o.status.success(), "create accepted final 3-1");
    assert!(
        text(&o.stderr).contains("process.execCPUAffinity.final"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(c.leftovers(), Vec::<String>::new());
}

/// Without --process, exec uses the config's process, execCPUAffinity included (as runc).
#[test]
fn exec_cpu_affinity_from_config() {
    root_or_skip!("exec_cpu_affinity_from_config");
    if !two_cpus("exec_cpu_affinity_from_config") {
        return;
    }
    let mut c = Ctr::new("affcfg", "root-rw");
    c.args(&["/probe", "sleep", "60"]);
    c.config["process"]["execCPUAffinity"] = json!({"initial": "0", "final": "1"});
    c.create_ok(&[]);
    assert!(c.start().status.success());
    // not applied to the init (config.md: not applicable to the container's init process)
    let init = std::fs::read_to_string(format!("/proc/{}/status", c.pids[0])).unwrap();
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    assert!(
        init.lines()
            .any(|l| l.strip_prefix("Cpus_allowed_list:").map(str::trim) == Some(online.trim())),
        "init: {init}"
    );
    let o = c.rt(&["exec", &c.id, "/probe", "read", "/proc/self/status"]);
    assert_eq!(allowed(&o), "1");
    // and a process JSON without execCPUAffinity falls back to the config's
    assert_eq!(allowed(&exec_with(&c, "none", None)), "1");
}

/// An empty `initial` / `final` means unset (config.md: optional strings; runc 1.2 the same):
/// in the config and in a process JSON, the exec'd process ends up on the cpuset.
#[test]
fn exec_cpu_affinity_empty_lists_are_unset() {
    root_or_skip!("exec_cpu_affinity_empty_lists_are_unset");
    if !two_cpus("exec_cpu_affinity_empty_lists_are_unset") {
        return;
    }
    let mut c = Ctr::new("affempty", "root-rw");
    c.args(&["/probe", "sleep", "60"]);
    c.config["process"]["execCPUAffinity"] = json!({"initial": "", "final": ""});
    c.config["linux"]["resources"]["cpu"] = json!({"cpus": "1", "mems": "0"});
    c.create_ok(&[]);
    assert!(c.start().status.success());
    let o = c.rt(&["exec", &c.id, "/probe", "read", "/proc/self/status"]);
    assert_eq!(allowed(&o), "1");
    assert_eq!(
        allowed(&exec_with(
            &c,
            "empty",
            Some(json!({"initial": "0", "final": ""}))
        )),
        "1"
    );
}

/// A runtime started pinned to CPU 0 (a daemon with CPUAffinity=, say) does not pass that on:
/// the container's init gets every CPU of its cpuset (runc >= 1.2.7 resets it too).
#[test]
fn init_affinity_is_reset_from_the_callers() {
    root_or_skip!("init_affinity_is_reset_from_the_callers");
    if !two_cpus("init_affinity_is_reset_from_the_callers") {
        return;
    }
    let mut c = Ctr::new("affinit", "default");
    c.args(&["/probe", "read", "/proc/self/status"]);
    c.write_config();
    let mut cmd = std::process::Command::new("taskset");
    cmd.args(["-c", "0"])
        .arg(runtime())
        .arg("--root")
        .arg(&c.root)
        .args(["run", "--bundle"])
        .arg(&c.bundle)
        .arg(&c.id);
    let o = run_timeout(&mut cmd, CMD_TIMEOUT);
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    assert_eq!(
        allowed(&o),
        online.trim(),
        "the container's init kept the affinity of the runtime's caller"
    );
}
