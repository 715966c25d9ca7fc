//! Rootless operation (`--rootless true|false|auto`, runc's rules): husk run by a user other
//! than root, and by root inside a user namespace, as rootless engines do. Such a runtime may
//! not create a cgroup: without a cgroupsPath and without limits the container then runs in its
//! caller's cgroup; with limits it is refused by field name and nothing is left behind.
mod common;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// The unprivileged user the tests run the runtime as (Debian's `nobody`).
const UID: u32 = 65534;
const GID: u32 = 65534;

/// runc's `spec --rootless` conversion of the default fixture for `uid`/`gid`: a user namespace
/// mapping only them to 0, no network namespace, /sys bound from the host, no uid=/gid= mount
/// options, no resources and no cgroupsPath.
fn rootless_config(uid: u32, gid: u32) -> Value {
    let mut c = fixture("default");
    let ns: Vec<Value> = c["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["type"] != "network" && n["type"] != "user")
        .cloned()
        .chain([json!({"type": "user"})])
        .collect();
    c["linux"]["namespaces"] = Value::Array(ns);
    c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 1}]);
    c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": gid, "size": 1}]);
    let mounts: Vec<Value> = c["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["destination"] != "/sys/fs/cgroup")
        .map(|m| {
            if m["destination"] == "/sys" {
                return json!({"destination": "/sys", "type": "none", "source": "/sys",
                              "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
            }
            let mut m = m.clone();
            if let Some(o) = m["options"].as_array() {
                let kept: Vec<Value> = o
                    .iter()
                    .filter(|o| {
                        let s = o.as_str().unwrap_or("");
                        !s.starts_with("uid=") && !s.starts_with("gid=")
                    })
                    .cloned()
                    .collect();
                m["options"] = Value::Array(kept);
            }
            m
        })
        .collect();
    c["mounts"] = Value::Array(mounts);
    c["linux"].as_object_mut().unwrap().remove("resources");
    c
}

/// A container of `nobody`'s, with the rootless config and no cgroupsPath.
fn rootless_ctr(tag: &str) -> Ctr {
    let mut c = Ctr::with_config(tag, rootless_config(UID, GID));
    c.config["linux"]
        .as_object_mut()
        .unwrap()
        .remove("cgroupsPath");
    c.as_user(UID, GID);
    c
}

/// The lines of /proc/self/cgroup of this (the test's) process.
fn own_cgroup() -> Vec<String> {
    std::fs::read_to_string("/proc/self/cgroup")
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn rootless_user_runs_and_execs_without_a_cgroup() {
    root_or_skip!("rootless_user_runs_and_execs_without_a_cgroup");
    let mut c = rootless_ctr("rlrun");
    let v = c.run_probe();
    assert_eq!(v["uid"], 0, "root inside the user namespace: {v}");
    assert_eq!(id_map(&v, "uid_map"), [format!("0 {UID} 1")], "uid_map");
    assert_eq!(v["pid"], 1);
    // no cgroup namespace in the fixture: the container shows the cgroup it runs in, which is
    // the caller's (the test's own), since nobody may create one
    assert_eq!(
        cgroup_lines(&v),
        own_cgroup(),
        "the container must stay in its caller's cgroup"
    );
    assert!(c.leftovers().is_empty(), "left behind: {:?}", c.leftovers());

    // a detached one: exec joins it (user namespace first), kill and delete work, ps and pause
    // say why they cannot
    let mut c = rootless_ctr("rlexec");
    c.args(&["/probe", "sleep", "60"]);
    c.create_ok(&[]);
    assert!(c.start().status.success(), "start: {}", c.log_text());
    let pid = c.pids[0];
    let o = c.rt(&["exec", &c.id, "/probe"]);
    assert!(
        o.status.success(),
        "exec: {} {}",
        text(&o.stderr),
        c.log_text()
    );
    let e = probe_json(&o);
    assert_eq!(e["uid"], 0);
    for t in ["pid", "user", "mnt", "uts", "ipc"] {
        let want = std::fs::read_link(format!("/proc/{pid}/ns/{t}")).unwrap();
        assert_eq!(
            e["ns"][t].as_str().unwrap(),
            want.to_str().unwrap(),
            "exec is not in the container's {t} namespace"
        );
    }
    for op in ["pause", "ps"] {
        let o = c.rt(&[op, &c.id]);
        assert_eq!(code(&o.status), 1, "{op} of a container without a cgroup");
        assert!(
            c.log_text().contains("needs the container's own cgroup"),
            "{op}: the error must say why: {}",
            c.log_text()
        );
    }
    assert!(c.kill("KILL").status.success(), "kill: {}", c.log_text());
    assert!(c.wait_status("stopped", Duration::from_secs(10)));
    assert!(c.delete(false).status.success(), "delete: {}", c.log_text());
    assert!(c.leftovers().is_empty(), "left behind: {:?}", c.leftovers());
}

#[test]
fn rootless_limits_are_refused_and_leave_nothing() {
    root_or_skip!("rootless_limits_are_refused_and_leave_nothing");
    let mut c = rootless_ctr("rllimit");
    c.config["linux"]["resources"] = json!({"memory": {"limit": 67108864}});
    let o = c.run();
    assert_eq!(code(&o.status), 1, "limits without cgroup access must fail");
    let log = c.log_text();
    assert!(
        log.contains("linux.resources") && log.contains("rootless"),
        "the error must name linux.resources and the reason: {log}"
    );
    assert!(c.leftovers().is_empty(), "left behind: {:?}", c.leftovers());

    // an explicit --rootless false keeps cgroup errors fatal, as in runc
    let mut c = rootless_ctr("rlfalse");
    c.global_args = vec!["--rootless".into(), "false".into()];
    let o = c.run();
    assert_eq!(code(&o.status), 1, "--rootless false as a user must fail");
    assert!(
        c.log_text().contains("creating cgroup"),
        "the error must be the cgroup's: {}",
        c.log_text()
    );
    assert!(c.leftovers().is_empty(), "left behind: {:?}", c.leftovers());
}

#[test]
fn rootless_value_is_checked() {
    root_or_skip!("rootless_value_is_checked");
    let mut c = Ctr::new("rlbad", "default");
    c.global_args = vec!["--rootless".into(), "maybe".into()];
    let o = c.run();
    assert_eq!(code(&o.status), 1);
    let log = c.log_text();
    assert!(
        log.contains("--rootless") && log.contains("maybe"),
        "the error must name the flag and the value: {log}"
    );
    assert!(c.leftovers().is_empty(), "left behind: {:?}", c.leftovers());
}

/// Without --root, a user's state goes to $XDG_RUNTIME_DIR/husk (runc: .../runc).
#[test]
fn rootless_default_root_is_under_xdg_runtime_dir() {
    root_or_skip!("rootless_default_root_is_under_xdg_runtime_dir");
    if is_runc() || is_crun() {
        skip(
            "rootless_default_root_is_under_xdg_runtime_dir",
            "the directory is named after the runtime",
        );
        return;
    }
    let mut c = rootless_ctr("rlxdg");
    c.args(&["/probe", "sleep", "60"]);
    c.write_config();
    let xdg = c.work.join("xdg");
    std::fs::create_dir(&xdg).unwrap();
    std::os::unix::fs::lchown(&xdg, Some(UID), Some(GID)).unwrap();
    // From here on the guard must find the container in the default root too.
    c.root = xdg.join("husk");
    let mut cmd = std::process::Command::new(runtime());
    {
        use std::os::unix::process::CommandExt;
        cmd.uid(UID).gid(GID);
    }
    cmd.env("XDG_RUNTIME_DIR", &xdg)
        .current_dir(&c.work)
        .args(["run", "--detach", "--bundle"])
        .arg(&c.bundle)
        .arg(&c.id);
    let o = run_timeout(&mut cmd, CMD_TIMEOUT);
    assert!(o.status.success(), "run -d: {}", text(&o.stderr));
    let st = c.root.join(&c.id).join("state.json");
    assert!(st.exists(), "no state at {}", st.display());
    let s = c.state().expect("state in the XDG root");
    c.pids.push(s["pid"].as_i64().unwrap() as i32);
    assert_eq!(s["status"], "running");
}

/// Root inside a user namespace that maps only one host id (as a rootless engine runs its
/// runtime): `auto` finds it is rootless, so the container runs without a cgroup of its own.
#[test]
fn root_in_a_user_namespace_is_rootless() {
    root_or_skip!("root_in_a_user_namespace_is_rootless");
    let mut c = Ctr::new("rluserns", "default");
    c.config["linux"]
        .as_object_mut()
        .unwrap()
        .remove("cgroupsPath");
    c.config["linux"]
        .as_object_mut()
        .unwrap()
        .remove("resources");
    // gid 5 (devpts) is not mapped in such a namespace
    for m in c.config["mounts"].as_array_mut().unwrap() {
        if let Some(o) = m["options"].as_array_mut() {
            o.retain(|o| !o.as_str().unwrap_or("").starts_with("gid="));
        }
    }
    c.as_user(UID, GID);
    c.write_config();
    let mut cmd = std::process::Command::new("unshare");
    {
        use std::os::unix::process::CommandExt;
        cmd.uid(UID).gid(GID);
    }
    cmd.args(["--user", "--map-root-user", "--"])
        .arg(runtime())
        .arg("--root")
        .arg(&c.root)
        .arg("--log")
        .arg(&c.log)
        .args(["--log-format", "json", "run", "--bundle"])
        .arg(&c.bundle)
        .arg(&c.id)
        .current_dir(&c.work);
    let o = run_timeout(&mut cmd, CMD_TIMEOUT);
    assert!(
        o.status.success(),
        "run as root of a user namespace: {} {}",
        text(&o.stderr),
        c.log_text()
    );
    let v = probe_json(&o);
    assert_eq!(v["pid"], 1);
    assert_eq!(
        cgroup_lines(&v),
        own_cgroup(),
        "the container must stay in its caller's cgroup"
    );
}
