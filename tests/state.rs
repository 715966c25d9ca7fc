//! State: status transitions and concurrent commands on one container.
mod common;
use common::*;
use std::time::Duration;

#[test]
fn status_transitions_without_polling_gaps() {
    if !require_root("status_transitions_without_polling_gaps") {
        return;
    }
    let mut c = Ctr::new("trans", "default");
    c.args(&["/probe", "sleep", "2"]);
    c.create_ok(&[]);
    assert_eq!(c.status().as_deref(), Some("created"));
    assert!(c.start().status.success());
    assert_eq!(
        c.status().as_deref(),
        Some("running"),
        "start returned before the state says running"
    );
    // the process exits by itself: stopped, pid 0
    assert!(
        c.wait_status("stopped", Duration::from_secs(10)),
        "{:?}",
        c.state()
    );
    let s = c.state().unwrap();
    assert_eq!(s["pid"], 0);
    assert!(c.delete(false).status.success());
    assert!(c.state().is_none());
}

#[test]
fn concurrent_start_exactly_one_wins() {
    if !require_root("concurrent_start_exactly_one_wins") {
        return;
    }
    let mut c = Ctr::new("cstart", "default");
    c.args(&["/probe", "sleep", "30"]);
    c.create_ok(&[]);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let mut cmd = c.cmd();
            cmd.args(["start", &c.id]);
            std::thread::spawn(move || try_run_timeout(&mut cmd, Duration::from_secs(15)))
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for r in &results {
        if let Err(e) = r {
            panic!("a concurrent start must not hang: {e}");
        }
    }
    let ok = results
        .iter()
        .flatten()
        .filter(|o| o.status.success())
        .count();
    assert_eq!(ok, 1, "exactly one concurrent start must succeed");
    assert_eq!(c.status().as_deref(), Some("running"));
}

#[test]
fn concurrent_state_and_kill_and_delete() {
    if !require_root("concurrent_state_and_kill_and_delete") {
        return;
    }
    let mut c = Ctr::new("cmix", "default");
    c.args(&["/probe", "sleep", "30"]);
    c.create_ok(&[]);
    assert!(c.start().status.success());
    // many readers while running: every state call succeeds with valid JSON
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let mut cmd = c.cmd();
            cmd.args(["state", &c.id]);
            std::thread::spawn(move || run_timeout(&mut cmd, CMD_TIMEOUT))
        })
        .collect();
    for h in readers {
        let o = h.join().unwrap();
        assert!(
            o.status.success(),
            "concurrent state failed: {}",
            text(&o.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("state JSON");
        assert_eq!(v["status"], "running");
    }
    // concurrent force deletes: all exit 0 (missing container counts as deleted), nothing left
    let deleters: Vec<_> = (0..4)
        .map(|_| {
            let mut cmd = c.cmd();
            cmd.args(["delete", "--force", &c.id]);
            std::thread::spawn(move || run_timeout(&mut cmd, CMD_TIMEOUT))
        })
        .collect();
    for h in deleters {
        let o = h.join().unwrap();
        assert!(
            o.status.success(),
            "concurrent delete --force failed: {}",
            text(&o.stderr)
        );
    }
    assert!(c.state().is_none());
    assert!(c.leftovers().is_empty(), "{:?}", c.leftovers());
}

/// `create` killed with SIGKILL half way (here while its createRuntime hook runs, after the
/// cgroup was made and init placed in it) leaves a state dir without state.json; `delete --force`
/// removes it and the cgroup, and the orphaned init exits when its sync channel closes. The guard
/// then checks that no process, state dir, mount or cgroup of the container is left.
#[test]
fn delete_force_cleans_up_after_create_killed_mid_way() {
    if !require_root("delete_force_cleans_up_after_create_killed_mid_way") {
        return;
    }
    if is_runc() || is_crun() {
        skip(
            "delete_force_cleans_up_after_create_killed_mid_way",
            "needs the runtime to run createRuntime hooks after making the cgroup (husk)",
        );
        return;
    }
    let mut c = Ctr::new("killmid", "default");
    c.create_killed_mid_way(|c| {
        assert!(
            !cgroup_dirs(&c.id).is_empty(),
            "precondition: the cgroup exists while create is half way"
        );
    });
    let o = c.delete(true);
    assert!(o.status.success(), "delete --force: {}", text(&o.stderr));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !cgroup_dirs(&c.id).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        cgroup_dirs(&c.id).is_empty(),
        "cgroup left after delete --force: {:?}",
        cgroup_dirs(&c.id)
    );
    assert!(!c.root.join(&c.id).exists(), "state dir left");
}
