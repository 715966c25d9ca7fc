//! Writes to procfs that cannot be redirected: the opened file must be on procfs.

use anyhow::{bail, Context, Result};
use std::io::Write;
use std::os::fd::AsFd;

const PROC_SUPER_MAGIC: i64 = 0x9fa0;

/// Write `data` to `/proc/<rel>`, refusing a file that is not on procfs.
pub fn write_proc_file(rel: &str, data: &[u8]) -> Result<()> {
    let path = format!("/proc/{rel}");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .with_context(|| format!("open {path}"))?;
    let st = nix::sys::statfs::fstatfs(f.as_fd()).with_context(|| format!("fstatfs {path}"))?;
    if st.filesystem_type().0 as i64 != PROC_SUPER_MAGIC {
        bail!("{path} is not on procfs");
    }
    f.write_all(data).with_context(|| format!("write {path}"))
}
