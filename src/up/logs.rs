//! The log of a detached container, in Docker's json-file format: one JSON object a line,
//! `{"log":"…\n","stream":"stdout","time":"<RFC 3339, nanoseconds>"}`, in
//! `STORE/containers/ID/ID-json.log`, rotated by size (`ID-json.log.1`, `.2`, … the older), and
//! `husk logs`, which reads it.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Docker's json-file defaults are unlimited; husk rotates at 10 MB and keeps three files.
pub const MAX_SIZE: u64 = 10 * 1000 * 1000;
pub const MAX_FILES: u32 = 3;

/// `--log-driver`: json-file (the log below), or none (no log at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Driver {
    #[default]
    #[serde(rename = "json-file")]
    JsonFile,
    #[serde(rename = "none")]
    None,
}

/// `--log-driver` and `--log-opt`: kept in the monitor's config, so `husk restart` logs alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogConfig {
    pub driver: Driver,
    /// The size at which the current file is rotated (`max-size`).
    pub max_size: u64,
    /// How many files are kept, the current one included (`max-file`).
    pub max_files: u32,
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            driver: Driver::JsonFile,
            max_size: MAX_SIZE,
            max_files: MAX_FILES,
        }
    }
}

impl LogConfig {
    /// `--log-driver DRIVER` (json-file or none) and each `--log-opt KEY=VALUE` (json-file's
    /// `max-size`, a size as Docker reads it, and `max-file`, at least 1); an option not given
    /// keeps husk's default (10 MB, 3 files).
    pub fn parse(driver: Option<&str>, opts: &[String]) -> Result<LogConfig> {
        let mut c = LogConfig::default();
        match driver {
            None | Some("json-file") => {}
            Some("none") => {
                c.driver = Driver::None;
                if let Some(o) = opts.first() {
                    bail!("--log-opt {o:?}: the none log driver takes no options");
                }
            }
            Some(d) => bail!(
                "--log-driver {d:?}: husk keeps a container's log itself, as json-file; \
                 expected json-file or none"
            ),
        }
        for o in opts {
            let Some((k, v)) = o.split_once('=') else {
                bail!("--log-opt {o:?}: expected KEY=VALUE (max-size=10m, max-file=3)");
            };
            match k {
                "max-size" => {
                    c.max_size = parse_size(v).with_context(|| format!("--log-opt {o:?}"))?;
                    if c.max_size == 0 {
                        bail!("--log-opt {o:?}: max-size must be a positive number");
                    }
                }
                "max-file" => match v.parse::<u32>() {
                    Ok(0) => bail!("--log-opt {o:?}: max-file cannot be less than 1"),
                    Ok(n) => c.max_files = n,
                    Err(_) => bail!("--log-opt {o:?}: max-file is not a number"),
                },
                _ => bail!(
                    "--log-opt {o:?}: unknown log opt {k:?} for the json-file log driver \
                     (husk knows max-size and max-file)"
                ),
            }
        }
        Ok(c)
    }
}

/// A size as Docker's `units.FromHumanSize` reads it: a decimal number, then optionally a unit
/// `b`, or `k`, `m`, `g`, `t`, `p` (powers of 1000) followed by nothing, `b` or `ib`, any case.
pub fn parse_size(s: &str) -> Result<u64> {
    let bad = || anyhow::anyhow!("invalid size: {s:?} (a number with k, m or g: 10m)");
    let sep = s
        .rfind(|c: char| c.is_ascii_digit() || c == '.' || c == ' ')
        .ok_or_else(bad)?;
    let (num, sfx) = if s.as_bytes()[sep] == b' ' {
        (&s[..sep], &s[sep + 1..])
    } else {
        (&s[..sep + 1], &s[sep + 1..])
    };
    if num.is_empty() || !num.bytes().all(|c| c.is_ascii_digit() || c == b'.') {
        return Err(bad());
    }
    let size: f64 = num.parse().map_err(|_| bad())?;
    let sfx = sfx.to_ascii_lowercase();
    let mul: f64 = match sfx.as_bytes() {
        [] | [b'b'] => 1.0,
        [u] | [u, b'b'] | [u, b'i', b'b'] => match u {
            b'k' => 1e3,
            b'm' => 1e6,
            b'g' => 1e9,
            b't' => 1e12,
            b'p' => 1e15,
            _ => return Err(bad()),
        },
        _ => return Err(bad()),
    };
    let v = size * mul;
    if !v.is_finite() || v >= u64::MAX as f64 {
        return Err(bad());
    }
    Ok(v as u64)
}
/// A line longer than this is logged in pieces (Docker's copier buffer).
const MAX_LINE: usize = 16 * 1024;

/// The current log file of container `id` whose bundle is `bundle`.
pub fn log_path(bundle: &Path, id: &str) -> PathBuf {
    bundle.join(format!("{id}-json.log"))
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub log: String,
    pub stream: String,
    pub time: String,
}

/// Appends entries to a log file, rotating it when the next entry would pass `max_size`.
pub struct LogWriter {
    path: PathBuf,
    /// None: `--log-driver none`, everything is dropped.
    file: Option<File>,
    size: u64,
    max_size: u64,
    max_files: u32,
}

impl LogWriter {
    pub fn open(path: &Path, max_size: u64, max_files: u32) -> Result<LogWriter> {
        let file = open_append(path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(LogWriter {
            path: path.to_path_buf(),
            file: Some(file),
            size,
            max_size,
            max_files: max_files.max(1),
        })
    }

    /// The writer `c` asks for: a json-file log at `path`, or with `--log-driver none` one
    /// that keeps nothing (and makes no file).
    pub fn open_for(path: &Path, c: &LogConfig) -> Result<LogWriter> {
        match c.driver {
            Driver::JsonFile => LogWriter::open(path, c.max_size, c.max_files),
            Driver::None => Ok(LogWriter {
                path: path.to_path_buf(),
                file: None,
                size: 0,
                max_size: c.max_size,
                max_files: c.max_files,
            }),
        }
    }

    /// Log `text` (one line, or a piece of a long one) of `stream` now.
    pub fn write(&mut self, stream: &str, text: &[u8]) -> Result<()> {
        if self.file.is_none() {
            return Ok(());
        }
        let e = Entry {
            log: String::from_utf8_lossy(text).into_owned(),
            stream: stream.to_string(),
            time: crate::sys::time::now_rfc3339(),
        };
        let mut line = serde_json::to_vec(&e)?;
        line.push(b'\n');
        if self.size > 0 && self.size + line.len() as u64 > self.max_size {
            self.rotate()?;
        }
        if let Some(f) = &mut self.file {
            f.write_all(&line)
                .with_context(|| format!("write {}", self.path.display()))?;
        }
        self.size += line.len() as u64;
        Ok(())
    }

    /// `ID-json.log.(N-1)` is dropped, each older file moves up one, the current one becomes
    /// `.1`, and a new current file is started.
    fn rotate(&mut self) -> Result<()> {
        for i in (1..self.max_files).rev() {
            let from = if i == 1 {
                self.path.clone()
            } else {
                numbered(&self.path, i - 1)
            };
            match std::fs::rename(&from, numbered(&self.path, i)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("rotate {}", from.display())),
            }
        }
        if self.max_files == 1 {
            let _ = std::fs::remove_file(&self.path);
        }
        // older files a larger max-file kept before a restart
        let mut n = self.max_files.max(1);
        while std::fs::remove_file(numbered(&self.path, n)).is_ok() {
            n += 1;
        }
        self.file = Some(open_append(&self.path)?);
        self.size = 0;
        Ok(())
    }
}

fn open_append(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .with_context(|| format!("open the log {}", path.display()))
}

fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// Cuts a byte stream into log lines as Docker's copier does: each line with its `\n`, a line
/// longer than 16 KiB in pieces, what is left at the end as a last line without `\n`.
#[derive(Default)]
pub struct Lines {
    buf: Vec<u8>,
}

impl Lines {
    pub fn push(&mut self, data: &[u8], out: &mut dyn FnMut(&[u8])) {
        self.buf.extend_from_slice(data);
        let mut start = 0;
        while let Some(i) = self.buf[start..].iter().position(|&b| b == b'\n') {
            out(&self.buf[start..start + i + 1]);
            start += i + 1;
        }
        while self.buf.len() - start >= MAX_LINE {
            out(&self.buf[start..start + MAX_LINE]);
            start += MAX_LINE;
        }
        self.buf.drain(..start);
    }

    pub fn finish(&mut self, out: &mut dyn FnMut(&[u8])) {
        if !self.buf.is_empty() {
            out(&self.buf);
            self.buf.clear();
        }
    }
}

/// The log files of a container, oldest first.
pub fn files(current: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = (1..1000)
        .map(|n| numbered(current, n))
        .take_while(|p| p.exists())
        .collect();
    out.reverse();
    if current.exists() {
        out.push(current.to_path_buf());
    }
    out
}

/// A time as (seconds, nanoseconds) since the epoch, UTC.
pub type Time = (i64, u32);

/// RFC 3339 (`2026-12-05T11:16:38.5Z`, `…+01:00`; without a zone: UTC).
pub fn parse_rfc3339(s: &str) -> Option<Time> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut nanos = 0u32;
    if let Some(f) = rest.strip_prefix('.') {
        let n = f.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 || n > 9 {
            return None;
        }
        nanos = f[..n].parse::<u32>().ok()? * 10u32.pow(9 - n as u32);
        rest = &f[n..];
    }
    let offset = match rest {
        "" | "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let z = rest.get(1..)?;
            if z.len() != 5 || z.as_bytes()[2] != b':' {
                return None;
            }
            let zh: i64 = z[..2].parse().ok()?;
            let zm: i64 = z[3..].parse().ok()?;
            sign * (zh * 3600 + zm * 60)
        }
    };
    let secs = days_from_civil(y, mo as u32, d as u32) * 86_400 + h * 3600 + mi * 60 + sec;
    Some((secs - offset, nanos))
}

/// Days since 1970-01-01 of a date of the proleptic Gregorian calendar.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A Go duration (`10m`, `1h30m`, `1.5s`, `250ms`).
pub fn parse_duration(s: &str) -> Option<Duration> {
    if s.is_empty() {
        return None;
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let n = rest
            .bytes()
            .take_while(|c| c.is_ascii_digit() || *c == b'.')
            .count();
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[u..];
        total += value * unit;
    }
    Some(Duration::from_secs_f64(total))
}

/// `--since`: an RFC 3339 time, a Unix time (`1733400000[.5]`), or a duration back from now.
pub fn parse_since(s: &str, now: Time) -> Result<Time> {
    if let Some(d) = parse_duration(s) {
        let back = (d.as_secs() as i64, d.subsec_nanos());
        let (mut secs, mut nanos) = (now.0 - back.0, now.1 as i64 - back.1 as i64);
        if nanos < 0 {
            secs -= 1;
            nanos += 1_000_000_000;
        }
        return Ok((secs, nanos as u32));
    }
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if !whole.is_empty()
        && whole.bytes().all(|c| c.is_ascii_digit())
        && frac.len() <= 9
        && frac.bytes().all(|c| c.is_ascii_digit())
    {
        let secs: i64 = whole.parse().context("--since")?;
        let nanos = if frac.is_empty() {
            0
        } else {
            frac.parse::<u32>()? * 10u32.pow(9 - frac.len() as u32)
        };
        return Ok((secs, nanos));
    }
    parse_rfc3339(s).with_context(|| {
        format!(
            "--since {s:?}: expected an RFC 3339 time (2026-12-05T11:00:00Z), a Unix time or \
             a duration back from now (10m, 1h30m)"
        )
    })
}

/// `--tail`: `all` or a number of lines.
pub fn parse_tail(s: &str) -> Result<Option<usize>> {
    if s == "all" {
        return Ok(None);
    }
    s.parse()
        .map(Some)
        .map_err(|_| anyhow::anyhow!("--tail {s:?}: expected a number of lines or all"))
}

/// What `husk logs` was asked for.
#[derive(Debug, Clone, Default)]
pub struct LogsOptions {
    pub follow: bool,
    /// The last N lines only.
    pub tail: Option<usize>,
    /// Only lines logged at or after this time.
    pub since: Option<Time>,
    /// Each line prefixed with its time.
    pub timestamps: bool,
}

/// Where `husk logs` writes: the container's stdout lines to one, its stderr lines to the other.
pub trait Sink {
    fn line(&mut self, e: &Entry, timestamps: bool) -> std::io::Result<()>;
}

/// husk's own stdout and stderr.
pub struct Stdio;

impl Sink for Stdio {
    fn line(&mut self, e: &Entry, timestamps: bool) -> std::io::Result<()> {
        let mut text = Vec::with_capacity(e.log.len() + 40);
        if timestamps {
            text.extend_from_slice(e.time.as_bytes());
            text.push(b' ');
        }
        text.extend_from_slice(e.log.as_bytes());
        if e.stream == "stderr" {
            std::io::stderr().write_all(&text)
        } else {
            crate::output::stdout(&text)
        }
    }
}

/// Print the log at `current` (and its rotated files); with `follow`, keep printing what is
/// appended until `running` says the container is done and nothing more came.
///
/// The current file is followed through an open descriptor, never by offset and path: when the
/// writer rotates it (renames it to `.1`, or drops it with `max-file=1`) the rest is read from
/// the same file, then every file rotated out after it (several rotations may come between two
/// looks), oldest first, then the new current file from its start.
pub fn print(
    current: &Path,
    o: &LogsOptions,
    running: &dyn Fn() -> bool,
    sink: &mut dyn Sink,
) -> Result<()> {
    let keep = |e: &Entry| match o.since {
        None => true,
        Some(t) => parse_rfc3339(&e.time).is_some_and(|et| et >= t),
    };
    let mut entries = Vec::new();
    let mut collect = |e: &Entry| {
        if keep(e) {
            entries.push(e.clone());
        }
        Ok(())
    };
    let mut followed = None;
    let mut partial = Vec::new();
    // the rotated files (complete), then the current one up to its last whole line
    for p in files(current) {
        let Some(mut f) = open_log(&p)? else {
            continue;
        };
        if p == current {
            let inode = ino(&f.metadata()?);
            read_rest(&mut f, &p, &mut partial, &mut collect)?;
            followed = Some((f, inode));
        } else {
            read_rest(&mut f, &p, &mut Vec::new(), &mut collect)?;
        }
    }
    let skip = o.tail.map_or(0, |n| entries.len().saturating_sub(n));
    for e in &entries[skip..] {
        emit(sink, e, o.timestamps)?;
    }
    if !o.follow {
        return Ok(());
    }
    let mut out = |e: &Entry| {
        if keep(e) {
            emit(sink, e, o.timestamps)?;
        }
        Ok(())
    };
    loop {
        let done = !running();
        let now = std::fs::metadata(current).ok().map(|m| ino(&m));
        if now != followed.as_ref().map(|f: &(File, u64)| f.1) {
            // rotated (or made): the rest of the file followed, the files rotated out since
            if let Some((mut f, old)) = followed.take() {
                read_rest(&mut f, current, &mut partial, &mut out)?;
                for p in rotated_after(current, old) {
                    if let Some(mut f) = open_log(&p)? {
                        read_rest(&mut f, &p, &mut Vec::new(), &mut out)?;
                    }
                }
            }
            partial.clear();
            if let Some(f) = open_log(current)? {
                let inode = ino(&f.metadata()?);
                followed = Some((f, inode));
            }
        }
        if let Some((f, _)) = &mut followed {
            read_rest(f, current, &mut partial, &mut out)?;
        }
        if done {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ino(m: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    m.ino()
}

fn emit(sink: &mut dyn Sink, e: &Entry, timestamps: bool) -> Result<()> {
    match sink.line(e, timestamps) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => crate::output::die_of_sigpipe(),
        r => r.context("write the log"),
    }
}

/// The log file `path` opened for reading (`None`: it is not there).
fn open_log(path: &Path) -> Result<Option<File>> {
    match File::open(path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("open {}", path.display())),
    }
}

/// The rotated files of `current` newer than the one of inode `old`, oldest first: those
/// numbered below it, or all of them when it is gone (rotation drops the oldest).
fn rotated_after(current: &Path, old: u64) -> Vec<PathBuf> {
    let mut newer = Vec::new();
    for n in 1..1000 {
        let p = numbered(current, n);
        match std::fs::metadata(&p) {
            Ok(m) if ino(&m) == old => break,
            Ok(_) => newer.push(p),
            Err(_) => break,
        }
    }
    newer.reverse();
    newer
}

/// The complete lines of `f` from where it was last read (`path` names it in errors); a line
/// still being written stays in `partial`.
fn read_rest(
    f: &mut File,
    path: &Path,
    partial: &mut Vec<u8>,
    out: &mut dyn FnMut(&Entry) -> Result<()>,
) -> Result<()> {
    f.read_to_end(partial)
        .with_context(|| format!("read {}", path.display()))?;
    let mut start = 0;
    while let Some(i) = partial[start..].iter().position(|&b| b == b'\n') {
        let line = partial[start..start + i].to_vec();
        start += i + 1;
        if let Some(e) = parse_line(&line, path)? {
            out(&e)?;
        }
    }
    partial.drain(..start);
    Ok(())
}

fn parse_line(line: &[u8], path: &Path) -> Result<Option<Entry>> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    match serde_json::from_slice(line) {
        Ok(e) => Ok(Some(e)),
        Err(e) => bail!(
            "{}: a line that is not a json-file entry: {e}",
            path.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_cut_as_docker_does() {
        let mut l = Lines::default();
        let mut got: Vec<Vec<u8>> = Vec::new();
        l.push(b"a\nb", &mut |x| got.push(x.to_vec()));
        l.push(b"c\n\n", &mut |x| got.push(x.to_vec()));
        l.push(&vec![b'x'; MAX_LINE + 3], &mut |x| got.push(x.to_vec()));
        l.finish(&mut |x| got.push(x.to_vec()));
        assert_eq!(
            got[..3],
            [b"a\n".to_vec(), b"bc\n".to_vec(), b"\n".to_vec()]
        );
        assert_eq!(got[3].len(), MAX_LINE);
        assert_eq!(got[4], b"xxx".to_vec());
        assert_eq!(got.len(), 5);
    }

    #[test]
    fn writes_json_file_lines_and_rotates() {
        let dir = tempfile::Builder::new()
            .prefix("husk-test-logs-")
            .tempdir_in("/tmp")
            .unwrap();
        let path = log_path(dir.path(), "c1");
        let mut w = LogWriter::open(&path, 200, 3).unwrap();
        for i in 0..10 {
            w.write(
                if i % 2 == 0 { "stdout" } else { "stderr" },
                format!("line {i}\n").as_bytes(),
            )
            .unwrap();
        }
        let fs = files(&path);
        assert_eq!(fs.len(), 3, "{fs:?}");
        assert!(fs[0].to_string_lossy().ends_with("c1-json.log.2"));
        assert!(!numbered(&path, 3).exists());
        let mut all = Vec::new();
        for f in &fs {
            assert!(std::fs::metadata(f).unwrap().len() <= 200);
            for line in std::fs::read_to_string(f).unwrap().lines() {
                let e: Entry = serde_json::from_str(line).unwrap();
                assert!(parse_rfc3339(&e.time).is_some(), "{}", e.time);
                all.push((e.stream, e.log));
            }
        }
        // the newest entries, in order; the oldest rotated out
        let last = all.last().unwrap();
        assert_eq!(last, &("stderr".to_string(), "line 9\n".to_string()));
        let n: Vec<u32> = all
            .iter()
            .map(|(_, l)| l.trim()[5..].parse().unwrap())
            .collect();
        assert!(n.windows(2).all(|w| w[1] == w[0] + 1), "{n:?}");
        assert!(n[0] > 0, "nothing was rotated out: {n:?}");
    }

    struct Collect(Vec<String>);

    impl Sink for Collect {
        fn line(&mut self, e: &Entry, ts: bool) -> std::io::Result<()> {
            let t = if ts {
                format!("{} ", e.time)
            } else {
                String::new()
            };
            self.0.push(format!("{t}{}:{}", e.stream, e.log));
            Ok(())
        }
    }

    #[test]
    fn print_tail_since_and_follow_across_rotation() {
        let dir = tempfile::Builder::new()
            .prefix("husk-test-logs-")
            .tempdir_in("/tmp")
            .unwrap();
        let path = log_path(dir.path(), "c2");
        let mut text = String::new();
        for (i, t) in [
            "2026-01-01T00:00:01Z",
            "2026-01-01T00:00:02.5Z",
            "2026-01-01T00:00:03Z",
        ]
        .iter()
        .enumerate()
        {
            text.push_str(&format!(
                "{{\"log\":\"l{i}\\n\",\"stream\":\"stdout\",\"time\":\"{t}\"}}\n"
            ));
        }
        std::fs::write(&path, &text).unwrap();
        let mut c = Collect(Vec::new());
        let tail = LogsOptions {
            tail: Some(2),
            ..Default::default()
        };
        print(&path, &tail, &|| false, &mut c).unwrap();
        assert_eq!(c.0, ["stdout:l1\n", "stdout:l2\n"]);
        let mut c = Collect(Vec::new());
        let since = LogsOptions {
            since: Some(parse_since("2026-01-01T00:00:02.5Z", (0, 0)).unwrap()),
            timestamps: true,
            ..Default::default()
        };
        print(&path, &since, &|| false, &mut c).unwrap();
        assert_eq!(
            c.0,
            [
                "2026-01-01T00:00:02.5Z stdout:l1\n",
                "2026-01-01T00:00:03Z stdout:l2\n"
            ]
        );
        // follow: lines written (and a rotation) while following are printed once each
        let calls = std::cell::Cell::new(0);
        let mut c = Collect(Vec::new());
        let follow = LogsOptions {
            follow: true,
            tail: Some(0),
            ..Default::default()
        };
        let running = || {
            let n = calls.get();
            calls.set(n + 1);
            if n < 3 {
                for k in 0..3 {
                    w_write(&path, n * 3 + k);
                }
            }
            n < 4
        };
        print(&path, &follow, &running, &mut c).unwrap();
        let want: Vec<String> = (0..9).map(|i| format!("stderr:f{i}\n")).collect();
        assert_eq!(c.0, want);
        assert!(numbered(&path, 1).exists(), "the follow saw no rotation");
    }

    /// Append an entry with a writer of its own (rotating at 400 bytes), as the monitor does.
    fn w_write(path: &Path, i: usize) {
        let mut w = LogWriter::open(path, 400, 3).unwrap();
        w.write("stderr", format!("f{i}\n").as_bytes()).unwrap();
    }

    /// Several rotations between two looks of a follower (and with `max-file=1`, files dropped
    /// under it): every line once, in order, nothing read from the middle of a line.
    #[test]
    fn follow_across_several_rotations_between_looks() {
        for max_files in [1, 3, 12] {
            let dir = tempfile::Builder::new()
                .prefix("husk-test-logs-")
                .tempdir_in("/tmp")
                .unwrap();
            let path = log_path(dir.path(), "c3");
            let mut w = LogWriter::open(&path, 400, max_files).unwrap();
            w.write("stdout", b"first\n").unwrap();
            let calls = std::cell::Cell::new(0);
            let written = std::cell::Cell::new(0);
            let running = || {
                let n = calls.get();
                calls.set(n + 1);
                if n < 4 {
                    // four lines a file: two or three rotations before the next look
                    let mut w = LogWriter::open(&path, 400, max_files).unwrap();
                    for _ in 0..9 {
                        let i = written.get();
                        written.set(i + 1);
                        w.write(
                            "stdout",
                            format!("line-{i:04}-abcdefghijklmnop\n").as_bytes(),
                        )
                        .unwrap();
                    }
                }
                n < 5
            };
            let mut c = Collect(Vec::new());
            let follow = LogsOptions {
                follow: true,
                ..Default::default()
            };
            print(&path, &follow, &running, &mut c).unwrap();
            let mut want = vec!["stdout:first\n".to_string()];
            want.extend(
                (0..written.get()).map(|i| format!("stdout:line-{i:04}-abcdefghijklmnop\n")),
            );
            if max_files == 1 {
                // the files dropped between two looks are gone: what is printed is what was
                // written, in order, each once, and at least every last line of a look
                let mut rest = want.iter();
                assert!(
                    c.0.iter().all(|l| rest.any(|w| w == l)),
                    "not in order, or not written: {:?}",
                    c.0
                );
                assert!(c.0.len() >= 5, "{:?}", c.0);
            } else {
                assert_eq!(c.0, want, "max-file {max_files}");
            }
        }
    }

    #[test]
    fn log_options_as_docker_reads_them() {
        assert_eq!(LogConfig::parse(None, &[]).unwrap(), LogConfig::default());
        let o = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let c = LogConfig::parse(Some("json-file"), &o(&["max-size=10k", "max-file=5"])).unwrap();
        assert_eq!((c.max_size, c.max_files), (10_000, 5));
        for (s, n) in [
            ("100", 100),
            ("1b", 1),
            ("10m", 10_000_000),
            ("1.5g", 1_500_000_000),
            ("2KiB", 2_000),
            ("3MB", 3_000_000),
            ("4 k", 4_000),
        ] {
            assert_eq!(parse_size(s).unwrap(), n, "{s}");
        }
        for s in ["", "abc", "k", "10x", "10mbb", "-1", "1bb", "10kb2"] {
            assert!(parse_size(s).is_err(), "{s}");
        }
        let c = LogConfig::parse(Some("none"), &[]).unwrap();
        assert_eq!(c.driver, Driver::None);
        for (d, opts, want) in [
            (
                None,
                &["max-file=0"][..],
                "--log-opt \"max-file=0\": max-file cannot be less",
            ),
            (None, &["max-size=abc"], "--log-opt \"max-size=abc\""),
            (None, &["max-size=0"], "positive"),
            (None, &["max-file=x"], "not a number"),
            (None, &["compress=true"], "unknown log opt \"compress\""),
            (None, &["max-size"], "KEY=VALUE"),
            (Some("journald"), &[], "--log-driver \"journald\""),
            (
                Some("none"),
                &["max-file=2"],
                "none log driver takes no options",
            ),
        ] {
            let e = format!("{:#}", LogConfig::parse(d, &o(opts)).unwrap_err());
            assert!(e.contains(want), "{d:?} {opts:?}: {e}");
        }
    }

    #[test]
    fn the_none_driver_keeps_nothing() {
        let dir = tempfile::Builder::new()
            .prefix("husk-test-logs-")
            .tempdir_in("/tmp")
            .unwrap();
        let path = log_path(dir.path(), "c3");
        let c = LogConfig::parse(Some("none"), &[]).unwrap();
        let mut w = LogWriter::open_for(&path, &c).unwrap();
        w.write("stdout", b"x\n").unwrap();
        assert!(files(&path).is_empty());
    }

    #[test]
    fn times_and_durations() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some((0, 0)));
        assert_eq!(
            parse_rfc3339("2000-02-29T00:00:00.5Z"),
            Some((951_782_400, 500_000_000))
        );
        assert_eq!(
            parse_rfc3339("2000-02-29T01:00:00+01:00"),
            Some((951_782_400, 0))
        );
        for (secs, nanos) in [(1_795_000_000i64, 123_456_789u32), (86_399, 1)] {
            let s = crate::sys::time::rfc3339(secs, nanos);
            assert_eq!(parse_rfc3339(&s), Some((secs, nanos)), "{s}");
        }
        assert_eq!(parse_rfc3339("2000-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_since("10m", (1000, 5)).unwrap(), (400, 5));
        assert_eq!(
            parse_since("1733400000.25", (0, 0)).unwrap(),
            (1_733_400_000, 250_000_000)
        );
        let e = parse_since("last week", (0, 0)).unwrap_err().to_string();
        assert!(e.contains("--since \"last week\""), "{e}");
        assert_eq!(parse_tail("all").unwrap(), None);
        assert_eq!(parse_tail("3").unwrap(), Some(3));
        assert!(parse_tail("-1").unwrap_err().to_string().contains("--tail"));
    }
}
