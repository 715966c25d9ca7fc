//! Process model: create blocks before the user program, start releases it, console socket.
mod common;
use common::*;
use std::time::Duration;

#[test]
fn create_blocks_before_exec() {
    if !require_root("create_blocks_before_exec") {
        return;
    }
    let mut c = Ctr::new("block", "root-rw");
    c.args(&["/probe", "write", "/ran", "yes"]);
    c.create_ok(&[]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !c.rootfs().join("ran").exists(),
        "the user program ran before start"
    );
    assert_eq!(c.status().as_deref(), Some("created"));
    // the process exists and is in the container's pid namespace already
    let pid = c.pids[0];
    let host_ns = std::fs::read_link("/proc/self/ns/pid").unwrap();
    let ctr_ns = std::fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap();
    assert_ne!(
        host_ns, ctr_ns,
        "created process is not in its own pid namespace"
    );
    let o = c.start();
    assert!(o.status.success(), "start: {}", text(&o.stderr));
    assert!(c.wait_status("stopped", Duration::from_secs(10)));
    assert_eq!(
        std::fs::read_to_string(c.rootfs().join("ran")).unwrap(),
        "yes",
        "the program did not run after start"
    );
    // a second start of a stopped container fails
    assert!(
        !c.start().status.success(),
        "start of a stopped container must fail"
    );
}

#[test]
fn run_inherits_stdio() {
    if !require_root("run_inherits_stdio") {
        return;
    }
    let mut c = Ctr::new("stdio", "default");
    c.args(&[
        "/bin/sh",
        "-c",
        "echo to-stdout; echo to-stderr >&2; exit 7",
    ]);
    let o = c.run();
    assert_eq!(code(&o.status), 7);
    assert_eq!(text(&o.stdout), "to-stdout\n");
    assert!(
        text(&o.stderr).contains("to-stderr"),
        "stderr: {}",
        text(&o.stderr)
    );
}

#[test]
fn console_socket_receives_pty_master() {
    if !require_root("console_socket_receives_pty_master") {
        return;
    }
    let mut c = Ctr::new("console", "default");
    c.config["process"]["terminal"] = true.into();
    c.config["process"]["consoleSize"] = serde_json::json!({"height": 33, "width": 101});
    c.args(&["/probe", "tty"]);
    let rx = ConsoleReceiver::new(&c.work);
    let sock = rx.path.to_str().unwrap().to_string();
    // create blocks until the runtime has sent the master, so receive on a thread
    let receiver = std::thread::spawn(move || rx.receive(Duration::from_secs(30)));
    c.create_ok(&["--console-socket", &sock]);
    let master = receiver.join().expect("console receiver");
    let o = c.start();
    assert!(o.status.success(), "start: {}", text(&o.stderr));
    let out = read_pty(&master, Duration::from_secs(10));
    let v: serde_json::Value = out
        .lines()
        .find_map(|l| serde_json::from_str(l.trim()).ok())
        .unwrap_or_else(|| panic!("no probe JSON through the pty: {out:?}"));
    for fd in 0..3 {
        assert_eq!(
            v[format!("isatty{fd}")],
            true,
            "fd {fd} is not the terminal: {v}"
        );
    }
    assert_eq!(v["rows"], 33, "consoleSize height not applied: {v}");
    assert_eq!(v["cols"], 101, "consoleSize width not applied: {v}");
    assert!(
        v["ttyname"].as_str().unwrap_or("").starts_with("/dev/pts/"),
        "{v}"
    );
}
