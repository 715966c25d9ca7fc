//! The fallbacks for kernels without clone3 (< 5.3), the mount API (< 5.2) and openat2 (< 5.6):
//! a debug build of husk given `HUSK_FORCE_ENOSYS=all` treats those syscalls as missing without
//! calling them, and `make test`'s fallback stage runs a share of the root suite that way. This
//! test proves the switch works (strace sees none of those syscalls), so that stage cannot pass
//! by running the usual paths.
mod common;
use common::*;

const NEW_SYSCALLS: &[&str] = &[
    "clone3",
    "openat2",
    "open_tree",
    "move_mount",
    "mount_setattr",
    "fsopen",
];

/// The syscalls of NEW_SYSCALLS that `husk run` (and its children) made, by strace.
fn new_syscalls_made(c: &mut Ctr, force: bool) -> Vec<String> {
    c.write_config();
    let trace = c
        .work
        .join(if force { "forced.trace" } else { "plain.trace" });
    let b = c.bundle.to_string_lossy().into_owned();
    let mut cmd = std::process::Command::new("strace");
    cmd.arg("-f")
        .arg("-qq")
        .arg("-o")
        .arg(&trace)
        .arg("-e")
        .arg(format!("trace={}", NEW_SYSCALLS.join(",")))
        .arg(runtime())
        .arg("--root")
        .arg(&c.root)
        .args(["run", "--bundle", &b, &c.id]);
    if force {
        cmd.env("HUSK_FORCE_ENOSYS", "all");
    } else {
        cmd.env_remove("HUSK_FORCE_ENOSYS");
    }
    let o = run_timeout(&mut cmd, CMD_TIMEOUT);
    assert!(
        o.status.success(),
        "run (forced: {force}): {}",
        text(&o.stderr)
    );
    let t = std::fs::read_to_string(&trace).unwrap_or_default();
    NEW_SYSCALLS
        .iter()
        .filter(|s| t.contains(&format!("{s}(")))
        .map(|s| s.to_string())
        .collect()
}

#[test]
fn forced_enosys_makes_no_new_syscall() {
    if !require_root("forced_enosys_makes_no_new_syscall") {
        return;
    }
    if is_runc() || is_crun() {
        skip(
            "forced_enosys_makes_no_new_syscall",
            "HUSK_FORCE_ENOSYS is husk's (the runtime under test is not husk)",
        );
        return;
    }
    if std::process::Command::new("strace")
        .arg("-V")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none_or(|v| v != "true"),
            "strace is missing (make deps installs it)"
        );
        skip(
            "forced_enosys_makes_no_new_syscall",
            "strace is not installed",
        );
        return;
    }
    let mut c = Ctr::new("enosys", "default");
    c.args(&["/bin/true"]);
    let plain = new_syscalls_made(&mut c, false);
    assert!(
        plain.iter().any(|s| s == "clone3"),
        "this kernel's husk uses clone3 (seen: {plain:?})"
    );
    let mut c = Ctr::new("enosys", "default");
    c.args(&["/bin/true"]);
    let forced = new_syscalls_made(&mut c, true);
    if forced.iter().any(|s| s == "clone3") {
        // a release build never reads the variable
        assert!(
            !runtime().to_string_lossy().contains("/debug/"),
            "a debug build made {forced:?} with HUSK_FORCE_ENOSYS=all"
        );
        skip(
            "forced_enosys_makes_no_new_syscall",
            "the runtime under test is a release build: HUSK_FORCE_ENOSYS is read by debug builds only",
        );
        return;
    }
    assert!(
        forced.is_empty(),
        "with HUSK_FORCE_ENOSYS=all husk still made {forced:?}"
    );
}
