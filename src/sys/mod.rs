//! Small safe wrappers for syscalls that nix lacks. `unsafe` lives here, each block with a
//! `// SAFETY:` line.

pub mod clone3;
pub mod fd;
pub mod grandchild;
pub mod mount_api;
pub mod netlink;
pub mod openat2;
pub mod pidfd;
pub mod procfmt;
pub mod procfs;
pub mod time;
pub mod userns;

use std::os::fd::{AsRawFd, BorrowedFd};

/// Debug builds: `HUSK_FORCE_ENOSYS=clone3,openat2,mount_api` (or `all`) makes those wrappers
/// answer ENOSYS without asking the kernel, as a kernel before 5.3 (clone3), 5.6 (openat2) or
/// 5.2 (the mount API) would, so that the suites run the fallbacks on this kernel (`make
/// test`'s fallback stage). In a release build this is a constant `false`.
#[cfg(debug_assertions)]
pub fn forced_enosys(feature: &str) -> bool {
    use std::sync::OnceLock;
    static FORCED: OnceLock<Vec<String>> = OnceLock::new();
    FORCED
        .get_or_init(|| {
            std::env::var("HUSK_FORCE_ENOSYS")
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .iter()
        .any(|f| f == feature || f == "all")
}

/// Release builds: the kernel always decides.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn forced_enosys(_feature: &str) -> bool {
    false
}

/// ENOSYS when `feature` is forced off ([`forced_enosys`]).
pub(crate) fn enosys_if_forced(feature: &str) -> std::io::Result<()> {
    if forced_enosys(feature) {
        return Err(std::io::Error::from_raw_os_error(libc::ENOSYS));
    }
    Ok(())
}

/// ioctl(NS_GET_NSTYPE): the CLONE_NEW* type of a namespace fd.
pub fn ns_get_type(fd: BorrowedFd) -> std::io::Result<libc::c_int> {
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
    // SAFETY: NS_GET_NSTYPE takes no argument and only reads the fd.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE as _) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(r)
}

/// The id of the mount at the top of `path` (the last component not followed): statx with
/// STATX_MNT_ID_UNIQUE (never reused, Linux 6.8), else the kernel's STATX_MNT_ID. Both calls
/// of one comparison ask the same kernel the same way, so the two kinds never mix.
pub fn mount_id(path: &std::path::Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    const STATX_MNT_ID_UNIQUE: u32 = 0x4000;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: an all-zero statx is a valid value of this plain C struct.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a live, writable statx buffer.
    let r = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
            STATX_MNT_ID_UNIQUE | libc::STATX_MNT_ID,
            &mut st,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if st.stx_mask & (STATX_MNT_ID_UNIQUE | libc::STATX_MNT_ID) == 0 {
        return Err(std::io::Error::from_raw_os_error(libc::ENOSYS));
    }
    Ok(st.stx_mnt_id)
}
