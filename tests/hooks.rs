//! Hooks: every hook point runs in order with the state on stdin; a failing prestart aborts and
//! cleans up; a failing poststart only warns.
mod common;
use common::*;
use serde_json::Value;
use std::time::Duration;

#[test]
fn hooks_order_and_state() {
    if !require_root("hooks_order_and_state") {
        return;
    }
    let mut c = Ctr::new("hooks", "hooks");
    let hookdir = c.work.join("hookout");
    std::fs::create_dir_all(&hookdir).unwrap();
    c.substitute("@HOOKDIR@", hookdir.to_str().unwrap());
    c.args(&["/probe", "exit", "0"]);
    let o = c.run();
    assert!(
        o.status.success(),
        "run with hooks: {} {}",
        text(&o.stderr),
        c.log_text()
    );
    // poststop runs at delete (run deletes when the process exits)
    let order = std::fs::read_to_string(hookdir.join("order")).unwrap_or_default();
    let order: Vec<&str> = order.lines().collect();
    assert_eq!(
        order,
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ],
        "hook order"
    );
    for h in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        let raw = std::fs::read_to_string(hookdir.join(format!("{h}.json"))).unwrap_or_default();
        let s: Value = serde_json::from_str(&raw)
            .unwrap_or_else(|e| panic!("{h} got no state JSON on stdin ({e}): {raw:?}"));
        assert_eq!(s["id"], c.id.as_str(), "{h}: {s}");
        assert_eq!(s["bundle"], c.bundle.to_str().unwrap(), "{h}: {s}");
        assert!(
            s["ociVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with("1.")),
            "{h}: {s}"
        );
        let status = s["status"].as_str().unwrap_or("");
        if h != "poststop" {
            assert!(
                s["pid"].as_i64().unwrap_or(0) > 0,
                "{h} state has no pid: {s}"
            );
        }
        let allowed: &[&str] = match h {
            "prestart" | "createRuntime" | "createContainer" => &["creating", "created"],
            "startContainer" => &["created", "creating", "running"],
            "poststart" => &["running"],
            _ => &["stopped"],
        };
        assert!(
            allowed.contains(&status),
            "{h} state status {status:?} not in {allowed:?}"
        );
    }
}

#[test]
fn failing_prestart_aborts_and_cleans_up() {
    if !require_root("failing_prestart_aborts_and_cleans_up") {
        return;
    }
    let mut c = Ctr::new("prefail", "hooks-prestart-fail");
    c.args(&["/probe", "write", "/tmp/ran", "x"]);
    c.config["root"]["readonly"] = false.into();
    let o = c.create(&[]);
    assert!(
        !o.status.success(),
        "create must fail when a prestart hook fails"
    );
    let err = format!("{}{}", text(&o.stderr), c.log_text());
    assert!(
        err.contains("prestart") || err.contains("hook"),
        "error does not name the hook: {err}"
    );
    assert!(c.state().is_none(), "failed create left state behind");
    assert!(
        !c.rootfs().join("tmp/ran").exists(),
        "the process ran despite the failed hook"
    );
    // Drop asserts no process, mount, cgroup or state dir remains
}

#[test]
fn failing_poststart_warns_and_runs() {
    if !require_root("failing_poststart_warns_and_runs") {
        return;
    }
    let mut c = Ctr::new("postfail", "hooks-poststart-fail");
    c.config["root"]["readonly"] = false.into();
    c.args(&["/probe", "write", "/tmp/ran", "x"]);
    c.create_ok(&[]);
    let o = c.start();
    let err = format!("{}{}", text(&o.stderr), c.log_text());
    assert!(
        err.contains("poststart") || err.contains("hook"),
        "a failing poststart hook must be reported: {err}"
    );
    // the runtime spec: poststart errors are logged, the container keeps going
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !c.rootfs().join("tmp/ran").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        c.rootfs().join("tmp/ran").exists(),
        "the container process did not run after a failing poststart"
    );
    assert!(
        o.status.success(),
        "start must succeed (warn only) when poststart fails: {err}"
    );
}

/// startContainer hooks run in the container, under its seccomp filter (as runc: the filter is
/// in place before the init waits for `start`), with and without noNewPrivileges: the hook sees
/// `Seccomp: 2` in its own status and a syscall the profile denies fails with the profile's
/// errno.
#[test]
fn start_container_hook_runs_under_the_seccomp_filter() {
    if !require_root("start_container_hook_runs_under_the_seccomp_filter") {
        return;
    }
    for nnp in [true, false] {
        let mut c = Ctr::new("hookscmp", "seccomp");
        c.config["root"]["readonly"] = false.into();
        c.config["process"]["noNewPrivileges"] = nnp.into();
        c.config["hooks"] = serde_json::json!({"startContainer": [{"path": "/bin/sh", "args": [
            "sh", "-c",
            "grep '^Seccomp:' /proc/self/status > /hook-out; /probe syscall mkdir >> /hook-out; exit 0"
        ]}]});
        c.args(&["/probe", "exit", "0"]);
        let o = c.run();
        assert!(
            o.status.success(),
            "nnp {nnp}: run failed: {} {}",
            text(&o.stderr),
            c.log_text()
        );
        let out = std::fs::read_to_string(c.rootfs().join("hook-out")).unwrap_or_default();
        let mut lines = out.lines();
        let status = lines.next().unwrap_or("");
        assert_eq!(
            status.split_whitespace().collect::<Vec<_>>(),
            ["Seccomp:", "2"],
            "nnp {nnp}: the startContainer hook ran outside the filter: {out:?}"
        );
        let r: Value = serde_json::from_str(lines.next().unwrap_or("")).unwrap_or(Value::Null);
        assert_eq!(
            (r["ok"].as_bool(), r["errno"].as_i64()),
            (Some(false), Some(123)),
            "nnp {nnp}: mkdir from the hook was not refused by the profile: {out:?}"
        );
    }
}
