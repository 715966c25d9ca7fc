//! Fault injection for the test suite, compiled only into debug builds.
//!
//! `HUSK_FAULT_STEP=N` makes husk SIGKILL itself when it reaches its Nth named step (the
//! boundaries of create, start, exec, delete, run, kill, pause, resume and update marked with
//! [`step`], and of `husk up`'s start of a user-mode network helper), as an engine's timeout or
//! the OOM killer would; `tests/faults.rs` then checks that `delete --force` leaves nothing
//! behind (`tests/network.rs` that `network gc` releases a native attach killed at each of its
//! steps, `tests/up.rs` that no network helper outlives a `husk up` killed while starting it). With `HUSK_FAULT_LOG=FILE` each step reached is
//! appended to FILE (one name a line) first. `HUSK_FAULT_DELAY=NAME[:MS]` holds husk at the
//! [`delay`] point NAME instead (a race window made wide). In a release build [`step`] and
//! [`delay`] are empty inline functions: the environment is never read.

/// Mark a step boundary named `name` (debug builds: count it, and die here if it is the Nth).
#[cfg(debug_assertions)]
pub fn step(name: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static TARGET: OnceLock<(Option<u64>, Option<std::ffi::OsString>)> = OnceLock::new();
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let (target, log) = TARGET.get_or_init(|| {
        (
            std::env::var("HUSK_FAULT_STEP")
                .ok()
                .and_then(|s| s.parse().ok()),
            std::env::var_os("HUSK_FAULT_LOG"),
        )
    });
    if target.is_none() && log.is_none() {
        return;
    }
    let n = COUNT.fetch_add(1, Ordering::SeqCst) + 1;
    if let Some(log) = log {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let _ = f.write_all(format!("{n} {name}\n").as_bytes());
        }
    }
    if *target == Some(n) {
        let _ = nix::sys::signal::raise(nix::sys::signal::SIGKILL);
    }
}

/// Release builds: nothing.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn step(_name: &str) {}

/// Debug builds: when `HUSK_FAULT_DELAY` is `name` (or `name:MS`), wait there (MS milliseconds,
/// 300 by default), as a busy machine might: a test widens a race window with it.
#[cfg(debug_assertions)]
pub fn delay(name: &str) {
    let Ok(v) = std::env::var("HUSK_FAULT_DELAY") else {
        return;
    };
    let (want, ms) = match v.rsplit_once(':') {
        Some((n, ms)) if ms.bytes().all(|b| b.is_ascii_digit()) && !ms.is_empty() => {
            (n, ms.parse().unwrap_or(300))
        }
        _ => (v.as_str(), 300),
    };
    if want == name {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// Release builds: nothing.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn delay(_name: &str) {}
