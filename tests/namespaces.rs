//! Namespaces: new ones differ from the host's, joined ones are the given ones, user ns maps.
mod common;
use common::*;
use serde_json::json;

fn host_ns(t: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{t}"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn check_new(v: &serde_json::Value, types: &[&str]) {
    for t in types {
        let inside = v["ns"][t]
            .as_str()
            .unwrap_or_else(|| panic!("probe saw no {t} ns"));
        assert_ne!(inside, host_ns(t), "{t} namespace is the host's");
    }
}

#[test]
fn default_namespaces_are_new() {
    if !require_root("default_namespaces_are_new") {
        return;
    }
    let mut c = Ctr::new("nsdef", "default");
    let v = c.run_probe();
    check_new(&v, &["pid", "net", "ipc", "uts", "mnt"]);
    for t in ["user", "cgroup", "time"] {
        assert_eq!(
            v["ns"][t].as_str().unwrap(),
            host_ns(t),
            "{t} ns must stay the host's when not asked"
        );
    }
    assert_eq!(v["pid"], 1, "container process is not pid 1");
    assert_eq!(v["ppid"], 0);
}

#[test]
fn seven_namespaces_with_user_and_cgroup() {
    if !require_root("seven_namespaces_with_user_and_cgroup") {
        return;
    }
    let mut c = Ctr::new("ns7", "userns");
    c.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "cgroup"}));
    let v = c.run_probe();
    check_new(&v, &["pid", "net", "ipc", "uts", "mnt", "user", "cgroup"]);
    // in a new cgroup namespace the container's own cgroup is "/"
    let cg = v["cgroup"].as_array().unwrap();
    assert!(
        cg.iter()
            .filter_map(|l| l.as_str())
            .all(|l| l.ends_with(":/")),
        "cgroupns root is not /: {cg:?}"
    );
}

#[test]
fn time_namespace() {
    if !require_root("time_namespace") {
        return;
    }
    if !std::path::Path::new("/proc/self/ns/time").exists() {
        skip("time_namespace", "kernel has no time namespaces");
        return;
    }
    let mut c = Ctr::new("nstime", "default");
    c.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "time"}));
    let v = c.run_probe();
    check_new(&v, &["time"]);
}

#[test]
fn user_namespace_mappings() {
    if !require_root("user_namespace_mappings") {
        return;
    }
    let mut c = Ctr::new("userns", "userns");
    let v = c.run_probe();
    assert_eq!(v["uid"], 0);
    assert_eq!(v["gid"], 0);
    assert_eq!(id_map(&v, "uid_map"), vec!["0 100000 65536"], "uid_map");
    assert_eq!(id_map(&v, "gid_map"), vec!["0 100000 65536"], "gid_map");
    assert_ne!(v["ns"]["user"].as_str().unwrap(), host_ns("user"));
}

#[test]
fn join_namespaces_by_path() {
    if !require_root("join_namespaces_by_path") {
        return;
    }
    let holder = ns_holder(&["--uts", "--net", "--ipc"], "hostname joined-uts-ns");
    let mut c = Ctr::new("nspath", "ns-path");
    for t in ["network", "uts", "ipc"] {
        let short = if t == "network" { "net" } else { t };
        c.substitute(
            &format!("@NS_{}@", t.to_uppercase()),
            &format!("/proc/{}/ns/{short}", holder.pid()),
        );
    }
    let v = c.run_probe();
    for t in ["net", "uts", "ipc"] {
        let want = std::fs::read_link(format!("/proc/{}/ns/{t}", holder.pid())).unwrap();
        assert_eq!(
            v["ns"][t].as_str().unwrap(),
            want.to_str().unwrap(),
            "{t} namespace was not joined"
        );
    }
    assert_eq!(v["hostname"], "joined-uts-ns");
    check_new(&v, &["pid", "mnt"]);
    // placed in its cgroup in every hierarchy before it joined anything (on cgroup v1 the
    // first child writes to each `tasks` itself; the init of the new pid namespace inherits it)
    let cg = v["cgroup"].as_array().unwrap();
    let mine = format!("/{}", c.id);
    assert!(
        !cg.is_empty()
            && cg
                .iter()
                .filter_map(|l| l.as_str())
                .all(|l| l.ends_with(&mine) || l.ends_with(&format!("husk-{}.scope", c.id))),
        "not in its cgroup everywhere: {cg:?}"
    );
}

#[test]
fn all_eight_namespaces() {
    if !require_root("all_eight_namespaces") {
        return;
    }
    if !std::path::Path::new("/proc/self/ns/time").exists() {
        skip("all_eight_namespaces", "kernel has no time namespaces");
        return;
    }
    let mut c = Ctr::new("ns8", "userns");
    let ns = c.config["linux"]["namespaces"].as_array_mut().unwrap();
    ns.push(json!({"type": "cgroup"}));
    ns.push(json!({"type": "time"}));
    let v = c.run_probe();
    check_new(
        &v,
        &["pid", "net", "ipc", "uts", "mnt", "user", "cgroup", "time"],
    );
}

/// A user namespace joined by path where host root is not mapped: the init becomes uid/gid 0
/// of that namespace before it sets up the rootfs (as runc's init does with setuid(0)), so
/// creating the container's /dev and mount points works, and the process runs as root there.
#[test]
fn join_user_namespace_by_path_becomes_its_root() {
    if !require_root("join_user_namespace_by_path_becomes_its_root") {
        return;
    }
    let holder = ns_holder(&["--user"], "true");
    for f in ["uid_map", "gid_map"] {
        std::fs::write(format!("/proc/{}/{f}", holder.pid()), "0 100000 65536\n").unwrap();
    }
    let mut c = Ctr::new("userjoin", "default");
    c.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user", "path": format!("/proc/{}/ns/user", holder.pid())}));
    let v = c.run_probe();
    assert_eq!(v["uid"], 0, "{v}");
    assert_eq!(v["gid"], 0, "{v}");
    let want = std::fs::read_link(format!("/proc/{}/ns/user", holder.pid())).unwrap();
    assert_eq!(v["ns"]["user"].as_str().unwrap(), want.to_str().unwrap());
    assert_eq!(id_map(&v, "uid_map"), vec!["0 100000 65536"], "uid_map");
}

/// A user namespace joined by path and a new pid namespace: the init forks once more into the
/// pid namespace, and the host learns the new init's pid before anything that init sends. A
/// debug build holds the intermediate process before it sends the pid (`HUSK_FAULT_DELAY`):
/// without the order, the init's Ready came first and run failed with "unexpected message from
/// init: Pid".
#[test]
fn join_user_namespace_new_pid_namespace_pid_reported_first() {
    let test = "join_user_namespace_new_pid_namespace_pid_reported_first";
    if !require_root(test) {
        return;
    }
    let holder = ns_holder(&["--user"], "true");
    for f in ["uid_map", "gid_map"] {
        std::fs::write(format!("/proc/{}/{f}", holder.pid()), "0 100000 65536\n").unwrap();
    }
    let mut c = Ctr::new("userjoinpid", "default");
    let ns = c.config["linux"]["namespaces"].as_array_mut().unwrap();
    assert!(ns
        .iter()
        .any(|n| n["type"] == "pid" && n.get("path").is_none()));
    ns.push(json!({"type": "user", "path": format!("/proc/{}/ns/user", holder.pid())}));
    c.write_config();
    let log = c.work.join("fault.log");
    let b = c.bundle.to_string_lossy().into_owned();
    let mut cmd = c.cmd();
    cmd.env(
        "HUSK_FAULT_DELAY",
        "init: before the pid namespace's init is reported:300",
    )
    .env("HUSK_FAULT_LOG", &log)
    .args(["run", "--bundle", &b, &c.id]);
    let o = run_timeout(&mut cmd, CMD_TIMEOUT);
    assert!(
        o.status.success(),
        "run: {:?}\nstderr: {}\nlog: {}",
        o.status,
        text(&o.stderr),
        c.log_text()
    );
    let v = probe_json(&o);
    assert_eq!(v["pid"], 1, "{v}");
    if !log.exists() {
        skip_part(
            &format!("{test}/delayed"),
            "the runtime under test is not a debug build of husk: the pid was not held back",
        );
    }
}
