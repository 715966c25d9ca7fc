//! A blob read while the store writes it: the pull's one pass over a layer. The fetching thread
//! streams the blob into its temp file in `tmp/` (size and sha256 checked as it goes, as for any
//! blob) and says how far it got; a [`Follower`] reads the same temp file behind it — the page
//! cache is the buffer, so the fetch never waits for the reader and memory stays bounded — and
//! ends (`read` returns 0) only once the blob is verified and renamed into `blobs/`. A blob
//! that fails verification makes the reader fail, so nothing read from it can be kept. A
//! transfer resumed with `Range` appends to the same file and the reader just goes on; one
//! that starts over (a registry that ignores `Range`) makes a reader that already read bytes
//! fail ([`Follow::restarted`] says so), and its caller extracts the stored blob instead.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// One blob's progress into the store, shared by the thread that writes it and its reader.
#[derive(Default)]
pub struct Follow {
    state: Mutex<State>,
    cv: Condvar,
}

#[derive(Default)]
struct State {
    /// A read handle of the temp file (or of the stored blob).
    file: Option<Arc<File>>,
    /// Bytes of the file that are written.
    written: u64,
    /// Bumped when the transfer starts over from byte 0.
    generation: u32,
    restarted: bool,
    /// Some(Ok): verified and stored; Some(Err): failed (why).
    end: Option<Result<(), String>>,
}

impl Follow {
    pub fn new() -> Follow {
        Follow::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn change(&self, f: impl FnOnce(&mut State)) {
        let mut st = self.lock();
        f(&mut st);
        drop(st);
        self.cv.notify_all();
    }

    /// The transfer starts: `file` reads the temp file it writes.
    pub(crate) fn begin(&self, file: File) {
        self.change(|st| {
            st.file = Some(Arc::new(file));
            st.written = 0;
        });
    }

    /// `n` more bytes are in the temp file.
    pub(crate) fn wrote(&self, n: u64) {
        self.change(|st| st.written += n);
    }

    /// The transfer starts over from byte 0 (the file is about to be emptied).
    pub(crate) fn restart(&self) {
        self.change(|st| {
            st.generation += 1;
            st.written = 0;
            st.restarted = true;
        });
    }

    /// The blob is verified and stored (its `size` bytes), or was already: `file` reads it.
    pub(crate) fn stored(&self, file: Option<File>, size: u64) {
        self.change(|st| {
            if let Some(f) = file {
                st.file = Some(Arc::new(f));
            }
            st.written = size;
            st.end = Some(Ok(()));
        });
    }

    /// The blob will not be stored (by this transfer): readers fail with `why`. No-op once ended.
    pub fn fail(&self, why: &str) {
        self.change(|st| {
            if st.end.is_none() {
                st.end = Some(Err(why.to_string()));
            }
        });
    }

    /// Did the transfer start over from byte 0 at some point?
    pub fn restarted(&self) -> bool {
        self.lock().restarted
    }

    pub fn reader(&self) -> Follower<'_> {
        Follower {
            follow: self,
            pos: 0,
            generation: None,
        }
    }
}

/// Reads a [`Follow`]ed blob from its first byte; waits for bytes not written yet.
pub struct Follower<'a> {
    follow: &'a Follow,
    pos: u64,
    generation: Option<u32>,
}

impl io::Read for Follower<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let f = self.follow;
        let mut st = f.lock();
        loop {
            if let Some(Err(why)) = &st.end {
                return Err(io::Error::other(why.clone()));
            }
            if let Some(file) = &st.file {
                let generation = *self.generation.get_or_insert(st.generation);
                if generation != st.generation {
                    return Err(io::Error::other(
                        "the blob's transfer started over while it was being unpacked",
                    ));
                }
                if self.pos < st.written {
                    let n = (st.written - self.pos).min(buf.len() as u64) as usize;
                    let file = Arc::clone(file);
                    drop(st);
                    let got = file.read_at(&mut buf[..n], self.pos)?;
                    if got > 0 {
                        // a restart meanwhile is seen by the next read (and the last one)
                        self.pos += got as u64;
                        return Ok(got);
                    }
                    st = f.lock();
                    if st.generation == generation {
                        return Err(io::Error::other(
                            "the blob's temp file is shorter than written",
                        ));
                    }
                    continue;
                }
                if st.end.is_some() {
                    return Ok(0);
                }
            }
            st = f.cv.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn temp(tag: &str) -> (std::path::PathBuf, File) {
        let p = std::env::temp_dir().join(format!("husk-follow-{tag}-{}", std::process::id()));
        (p.clone(), File::create(&p).unwrap())
    }

    #[test]
    fn reads_behind_the_writer_and_ends_when_stored() {
        let (p, mut w) = temp("ok");
        let f = Follow::new();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::thread::scope(|s| {
            let r = s.spawn(|| {
                let mut out = Vec::new();
                f.reader().read_to_end(&mut out).map(|_| out)
            });
            f.begin(File::open(&p).unwrap());
            for c in data.chunks(7000) {
                w.write_all(c).unwrap();
                f.wrote(c.len() as u64);
            }
            f.stored(None, data.len() as u64);
            assert_eq!(r.join().unwrap().unwrap(), data);
        });
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn a_failed_blob_fails_its_reader() {
        let (p, mut w) = temp("fail");
        let f = Follow::new();
        std::thread::scope(|s| {
            let r = s.spawn(|| {
                let mut out = Vec::new();
                f.reader().read_to_end(&mut out)
            });
            f.begin(File::open(&p).unwrap());
            w.write_all(b"some bytes").unwrap();
            f.wrote(10);
            f.fail("digest mismatch");
            let e = r.join().unwrap().unwrap_err();
            assert!(e.to_string().contains("digest mismatch"), "{e}");
        });
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn a_transfer_that_starts_over_fails_a_reader_that_read() {
        let (p, mut w) = temp("restart");
        let f = Follow::new();
        f.begin(File::open(&p).unwrap());
        w.write_all(b"first").unwrap();
        f.wrote(5);
        let mut r = f.reader();
        let mut b = [0u8; 5];
        assert_eq!(r.read(&mut b).unwrap(), 5);
        f.restart();
        w.set_len(0).unwrap();
        f.stored(None, 0);
        assert!(r.read(&mut b).is_err());
        assert!(f.restarted());
        let _ = std::fs::remove_file(&p);
    }
}
