//! runc-style logging: `--log FILE` and `--log-format text|json`, one record per line, appended.
//!
//! The error contract: containerd reads the last `"level":"error"` line of the JSON log; podman
//! parses the log of a failed command as ONE object. So without `--debug` a failed command
//! writes exactly one line: its error. Warnings of the host process are held back: a failing
//! command folds them into its error line (`msg`), a succeeding one writes them as `warning`
//! lines at exit ([`finish`]). With `--debug` every record is written as it happens. The
//! container's init (a forked child) holds its warnings back the same way: when it fails they
//! travel with its error through the sync channel into the host's single error line
//! ([`fold_warnings`]); when it execs they are dropped.
//!
//! With `--debug` the log is opened once, at [`init`], and kept open (close-on-exec): the
//! container's init and an exec'd process inherit that descriptor and write their debug
//! records through it, also after pivot_root, when the log's path no longer names the host's
//! file (and could name a file of the container). Without `--log` the kept descriptor is a
//! duplicate of husk's own stderr, so the init's records go where husk's go, never to the
//! container's stdio or terminal.

use crate::sys::time::now_rfc3339;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

struct Config {
    file: Option<PathBuf>,
    json: bool,
    debug: bool,
    /// The process that called `init` (a forked child is another pid).
    pid: u32,
    /// Under `--debug`: the log (or a duplicate of stderr), opened once, close-on-exec.
    sink: Option<std::fs::File>,
}

static CONFIG: OnceLock<Config> = OnceLock::new();
/// Set in a container process once its seccomp filter is installed: from then on it writes no
/// record (the profile may refuse or kill on write(2)).
static SILENT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// Warnings held back until the command's outcome is known (never shared between threads:
/// husk has none; the Mutex only makes the static legal).
static PENDING: Mutex<Vec<String>> = Mutex::new(Vec::new());

pub fn init(file: Option<PathBuf>, format: &str, debug: bool) -> anyhow::Result<()> {
    let json = match format {
        "json" => true,
        "text" => false,
        other => anyhow::bail!("--log-format: unknown format {other:?} (expected text or json)"),
    };
    let sink = if debug {
        open_sink(file.as_deref())
    } else {
        None
    };
    let _ = CONFIG.set(Config {
        file,
        json,
        debug,
        pid: std::process::id(),
        sink,
    });
    Ok(())
}

/// The kept descriptor of `--debug`: the log file opened for appending (std opens files
/// close-on-exec), or a close-on-exec duplicate of stderr. None when it cannot be opened (the
/// records then take the per-record path, which reports the error).
fn open_sink(file: Option<&std::path::Path>) -> Option<std::fs::File> {
    match file {
        Some(p) => std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .ok(),
        None => {
            use std::os::fd::AsFd;
            let fd = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
            Some(std::fs::File::from(fd))
        }
    }
}

/// The descriptor number of the `--debug` sink, if one is open.
pub fn sink_fd() -> Option<i32> {
    use std::os::fd::AsRawFd;
    CONFIG.get()?.sink.as_ref().map(|f| f.as_raw_fd())
}

/// One record, newline-terminated. `msg` is JSON-escaped in both formats, so a record is
/// always exactly one line whatever the message holds.
pub fn line(level: &str, msg: &str, json: bool, time: &str) -> String {
    if json {
        let v = serde_json::json!({"level": level, "msg": msg, "time": time});
        format!("{v}\n")
    } else {
        format!(
            "time=\"{time}\" level={level} msg={}\n",
            serde_json::Value::from(msg)
        )
    }
}

/// No more records from this process (see [`SILENT`]).
pub fn silence() {
    SILENT.store(true, std::sync::atomic::Ordering::Relaxed);
}

fn emit(level: &str, msg: &str) {
    if SILENT.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let Some(c) = CONFIG.get() else {
        eprintln!("{level}: {msg}");
        return;
    };
    let rec = line(level, msg, c.json, &now_rfc3339());
    if let Some(mut f) = c.sink.as_ref() {
        // One write(2) of the whole line (O_APPEND for a file): records never interleave.
        let _ = f.write_all(rec.as_bytes());
        return;
    }
    match &c.file {
        Some(path) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path);
            match f {
                // One write(2) of the whole line on an O_APPEND file: records never interleave.
                Ok(mut f) => {
                    let _ = f.write_all(rec.as_bytes());
                }
                // Only the host says so: a child's stderr is the container's.
                Err(e) if c.pid == std::process::id() => {
                    eprintln!("husk: --log {}: {e}; {level}: {msg}", path.display())
                }
                Err(_) => {}
            }
        }
        None => {
            let _ = std::io::stderr().write_all(rec.as_bytes());
        }
    }
}

fn held_back() -> bool {
    CONFIG.get().is_some_and(|c| !c.debug)
}

fn take_pending() -> Vec<String> {
    std::mem::take(&mut *PENDING.lock().unwrap_or_else(|e| e.into_inner()))
}

/// The error that ends the command: its one error line, with any held-back warnings folded
/// in. Also printed plainly on stderr when logging goes to a file, as runc does, so a person
/// at a terminal sees it.
pub fn error(msg: &str) {
    let full = fold_warnings(msg.to_string());
    emit("error", &full);
    if CONFIG.get().is_some_and(|c| c.file.is_some()) {
        eprintln!("husk: {full}");
    }
}

/// Write one record without the stderr copy (for errors something else already printed).
pub fn emit_only(level: &str, msg: &str) {
    emit(level, msg);
}

/// An error text with the warnings held back so far appended (and cleared).
pub fn fold_warnings(msg: String) -> String {
    let pending = take_pending();
    if pending.is_empty() {
        msg
    } else {
        format!("{msg} (warnings: {})", pending.join("; "))
    }
}

pub fn warn(msg: &str) {
    if held_back() {
        PENDING
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(msg.to_string());
    } else {
        emit("warning", msg);
    }
}

pub fn debug(msg: &str) {
    if debug_enabled() {
        emit("debug", msg);
    }
}

/// Whether `--debug` was given (callers skip formatting debug text otherwise).
pub fn debug_enabled() -> bool {
    CONFIG.get().is_some_and(|c| c.debug)
}

/// A `level=debug` record with `format!` arguments, formatted only under `--debug`.
#[macro_export]
macro_rules! log_debug {
    ($($arg:tt)*) => {
        if $crate::logging::debug_enabled() {
            $crate::logging::debug(&format!($($arg)*));
        }
    };
}

/// A command succeeded: write the warnings it held back.
pub fn finish() {
    for w in take_pending() {
        emit("warning", &w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_record_is_one_line_whatever_the_message() {
        let l = line("error", "a\nb\r\n\"c\"\u{0}", true, "2026-01-01T00:00:00Z");
        assert_eq!(l.matches('\n').count(), 1, "{l:?}");
        assert!(l.ends_with('\n'));
        let v: serde_json::Value = serde_json::from_str(l.trim_end()).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "a\nb\r\n\"c\"\u{0}");
        assert_eq!(v["time"], "2026-01-01T00:00:00Z");
    }

    #[test]
    fn fold_warnings_appends_and_clears() {
        PENDING.lock().unwrap().push("w1".into());
        PENDING.lock().unwrap().push("w2".into());
        assert_eq!(fold_warnings("boom".into()), "boom (warnings: w1; w2)");
        assert_eq!(fold_warnings("again".into()), "again");
    }

    #[test]
    fn text_record_is_one_line() {
        let l = line("warning", "x\ny", false, "T");
        assert_eq!(l, "time=\"T\" level=warning msg=\"x\\ny\"\n");
    }
}
