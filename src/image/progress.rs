//! What `husk image pull`, `push` and `import` show while they work (`--progress`):
//!
//! * `tty` — one bar per blob (per archive entry being staged, for `import`) on standard
//!   error (bytes done of the total, speed), redrawn at most [`DRAW_HZ`] times a second by
//!   indicatif; lines said meanwhile print above the bars;
//! * `plain` — one line per step on standard error (`layer sha256:… (N bytes): fetched`,
//!   `entry blobs/sha256/… (N bytes): staged sha256:…`);
//! * `json` — one JSON object per line on standard output, for tools: `start`, `progress`
//!   (at most every [`JSON_EVERY`] per blob) and `done` per blob (an archive entry's carry its
//!   `name` instead of a `digest`, and its `done` the digest of its content), then one `image`
//!   event per image (its digest, which is then not printed again); a failure ends the stream
//!   with an `error` event;
//! * `quiet` — nothing but the result.
//!
//! `auto` (the default) is `tty` when standard error is a terminal (and `TERM` is not `dumb`),
//! else `plain`. The transfer threads only add to atomic counters (and, on a terminal, to
//! indicatif's atomic position); nothing here blocks a stream.
//!
//! Companion code: nothing on the runtime path uses this module.

use anyhow::{bail, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// Redraws of the bars per second, at most (indicatif's limit on the draw target).
pub const DRAW_HZ: u8 = 10;
/// A blob's `progress` events come at most this often, and the bars' positions are handed to
/// indicatif at most this often.
pub const JSON_EVERY: Duration = Duration::from_millis(100);

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Quiet,
    Plain,
    Tty,
    Json,
}

impl Mode {
    /// `--progress VALUE` (None: `auto`), with `--quiet`.
    pub fn decide(flag: Option<&str>, quiet: bool) -> Result<Mode> {
        let flag = flag.unwrap_or("auto");
        if quiet && !matches!(flag, "auto" | "quiet") {
            bail!("--quiet and --progress {flag} contradict each other: give one");
        }
        Ok(match flag {
            _ if quiet => Mode::Quiet,
            "auto" => {
                let tty = nix::unistd::isatty(io::stderr()).unwrap_or(false);
                let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
                if tty && !dumb {
                    Mode::Tty
                } else {
                    Mode::Plain
                }
            }
            "tty" => Mode::Tty,
            "plain" => Mode::Plain,
            "json" => Mode::Json,
            "quiet" => Mode::Quiet,
            other => bail!("--progress {other:?}: expected auto, tty, plain, json or quiet"),
        })
    }
}

/// One pull's or push's progress display.
pub struct Progress {
    mode: Mode,
    bars: Option<MultiProgress>,
    shared: Arc<Shared>,
}

/// What the blobs of one display share.
struct Shared {
    start: Instant,
    /// Milliseconds after `start` of the last time the bars got their positions (tty).
    last_update: AtomicU64,
    /// The blobs whose bars are drawn (tty).
    active: Mutex<Vec<Weak<Blob>>>,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Claims the time slot after `last` if [`JSON_EVERY`] has passed since it: true for the
    /// one caller that may act now.
    fn claim(slot: &AtomicU64, now: u64) -> bool {
        let last = slot.load(Ordering::Relaxed);
        now.saturating_sub(last) >= JSON_EVERY.as_millis() as u64
            && slot
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

/// One blob's transfer, shared by the thread that moves its bytes and the display.
pub struct Blob {
    mode: Mode,
    role: &'static str,
    /// The JSON key of `digest`: `digest` for a blob, `name` for an archive entry.
    key: &'static str,
    digest: String,
    total: u64,
    done: AtomicU64,
    /// Milliseconds after the display's start of the last `progress` event (json).
    last: AtomicU64,
    shared: Arc<Shared>,
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn new(mode: Mode) -> Progress {
        let bars = (mode == Mode::Tty)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(DRAW_HZ)));
        Progress {
            mode,
            bars,
            shared: Arc::new(Shared {
                start: Instant::now(),
                last_update: AtomicU64::new(0),
                active: Mutex::new(Vec::new()),
            }),
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// A blob's transfer begins (`json`: its `start` event; `tty`: its bar).
    pub fn blob(&self, role: &'static str, digest: &str, total: u64) -> Arc<Blob> {
        self.item(role, "digest", digest, total)
    }

    /// An archive entry's staging begins (`import`): as [`Progress::blob`], named by its path
    /// in the archive (its digest is known only at the end: [`Blob::finish_staged`]).
    pub fn entry(&self, name: &str, total: u64) -> Arc<Blob> {
        self.item("entry", "name", name, total)
    }

    fn item(&self, role: &'static str, key: &'static str, id: &str, total: u64) -> Arc<Blob> {
        let bar = self.bars.as_ref().map(|m| {
            let b = m.add(ProgressBar::new(total));
            if let Ok(s) = ProgressStyle::with_template(
                "{prefix} [{bar:25}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} {msg}",
            ) {
                b.set_style(s.progress_chars("=> "));
            }
            let short = id
                .strip_prefix("sha256:")
                .or_else(|| id.strip_prefix("blobs/sha256/"))
                .unwrap_or(id);
            let short: String = short.chars().take(12).collect();
            b.set_prefix(format!("{role:<6} {short:<12}"));
            b
        });
        if self.mode == Mode::Json {
            json_line(&serde_json::json!({
                "event": "start", "role": role, key: id, "total": total,
            }));
        }
        let b = Arc::new(Blob {
            mode: self.mode,
            role,
            key,
            digest: id.to_string(),
            total,
            done: AtomicU64::new(0),
            last: AtomicU64::new(0),
            shared: Arc::clone(&self.shared),
            bar,
        });
        if b.bar.is_some() {
            if let Ok(mut a) = self.shared.active.lock() {
                a.retain(|w| w.strong_count() > 0);
                a.push(Arc::downgrade(&b));
            }
        }
        b
    }

    /// A step said in words (`plain`: a line; `tty`: a line above the bars).
    pub fn say(&self, msg: &str) {
        match (self.mode, &self.bars) {
            (Mode::Tty, Some(m)) => {
                let _ = m.println(msg);
            }
            (Mode::Plain, _) => {
                let _ = writeln!(io::stderr(), "{msg}");
            }
            _ => {}
        }
    }

    /// The image is done (`json`: the `image` event, which carries the digest).
    pub fn image_done(&self, action: &str, reference: &str, digest: &str) {
        if self.mode == Mode::Json {
            json_line(&serde_json::json!({
                "event": "image", "action": action, "reference": reference, "digest": digest,
            }));
        }
    }

    /// The command failed (`json`: an `error` event ends the stream).
    pub fn failed(&self, e: &anyhow::Error) {
        if self.mode == Mode::Json {
            json_line(&serde_json::json!({"event": "error", "message": format!("{e:#}")}));
        }
    }
}

impl Blob {
    /// The transfer goes on from byte `pos` (0: the source starts over).
    pub fn set(&self, pos: u64) {
        self.done.store(pos, Ordering::Relaxed);
    }

    /// `n` more bytes moved: an atomic add; at most every [`JSON_EVERY`] one of the moving
    /// threads hands every bar its position (tty) or writes its blob's `progress` event (json).
    pub fn add(&self, n: u64) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        match self.mode {
            Mode::Tty => {
                let sh = &self.shared;
                if Shared::claim(&sh.last_update, sh.now_ms()) {
                    if let Ok(a) = sh.active.lock() {
                        for b in a.iter().filter_map(Weak::upgrade) {
                            if let Some(bar) = &b.bar {
                                if !bar.is_finished() {
                                    bar.set_position(b.done.load(Ordering::Relaxed));
                                }
                            }
                        }
                    }
                }
            }
            Mode::Json if done < self.total && Shared::claim(&self.last, self.shared.now_ms()) => {
                json_line(&serde_json::json!({
                    "event": "progress", "role": self.role, self.key: self.digest,
                    "bytes": done, "total": self.total,
                }));
            }
            _ => {}
        }
    }

    /// The blob is done: `status` says how (fetched, present, uploaded, mounted from …).
    pub fn finish(&self, status: &str) {
        self.finish_with(status, None)
    }

    /// The archive entry is staged; `digest` is its content's.
    pub fn finish_staged(&self, digest: &str) {
        self.finish_with("staged", Some(digest))
    }

    fn finish_with(&self, status: &str, digest: Option<&str>) {
        let moved = self.done.load(Ordering::Relaxed);
        match self.mode {
            Mode::Json => {
                let mut v = serde_json::json!({
                    "event": "done", "role": self.role, self.key: self.digest,
                    "bytes": moved, "total": self.total, "status": status,
                });
                if let Some(d) = digest {
                    v["digest"] = serde_json::json!(d);
                }
                json_line(&v)
            }
            Mode::Plain => {
                let _ = writeln!(
                    io::stderr(),
                    "{} {} ({} bytes): {status}{}",
                    self.role,
                    self.digest,
                    self.total,
                    digest.map(|d| format!(" {d}")).unwrap_or_default()
                );
            }
            Mode::Tty => {
                if let Some(b) = &self.bar {
                    // nothing moved (present, mounted): a full bar all the same
                    b.set_position(if moved == 0 { self.total } else { moved });
                    b.finish_with_message(status.to_string());
                }
            }
            Mode::Quiet => {}
        }
    }

    /// A reader that counts what passes through it into this blob.
    pub fn reader<R: Read>(self: &Arc<Self>, inner: R) -> Counted<R> {
        Counted {
            inner,
            blob: Arc::clone(self),
        }
    }
}

/// See [`Blob::reader`].
pub struct Counted<R> {
    inner: R,
    blob: Arc<Blob>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.blob.add(n as u64);
        Ok(n)
    }
}

/// One JSON event on standard output, whole (one write under the lock); a reader that went
/// away ends husk by SIGPIPE, as every husk output does.
fn json_line(v: &serde_json::Value) {
    let mut s = v.to_string();
    s.push('\n');
    let _ = crate::output::stdout(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(Mode::decide(Some("json"), false).unwrap(), Mode::Json);
        assert_eq!(Mode::decide(Some("plain"), false).unwrap(), Mode::Plain);
        assert_eq!(Mode::decide(Some("tty"), false).unwrap(), Mode::Tty);
        assert_eq!(Mode::decide(None, true).unwrap(), Mode::Quiet);
        assert_eq!(Mode::decide(Some("quiet"), false).unwrap(), Mode::Quiet);
        let e = Mode::decide(Some("json"), true).unwrap_err().to_string();
        assert!(
            e.contains("--quiet") && e.contains("--progress json"),
            "{e}"
        );
        let e = Mode::decide(Some("fancy"), false).unwrap_err().to_string();
        assert!(
            e.contains("\"fancy\"") && e.contains("auto, tty, plain, json"),
            "{e}"
        );
    }

    #[test]
    fn counted_reader_counts_and_resumes() {
        let p = Progress::new(Mode::Quiet);
        let b = p.blob("layer", "sha256:00", 10);
        let mut out = Vec::new();
        b.reader(&b"0123456789"[..]).read_to_end(&mut out).unwrap();
        assert_eq!(b.done.load(Ordering::Relaxed), 10);
        b.set(4);
        b.reader(&b"456789"[..]).read_to_end(&mut out).unwrap();
        assert_eq!(b.done.load(Ordering::Relaxed), 10);
    }
}
