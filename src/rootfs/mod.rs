//! The container's root filesystem: mounts, safe in-root path resolution, /dev, pivot_root,
//! masked and read-only paths. Everything here runs inside the container's new mount namespace.

pub mod options;
pub mod resolve;

use anyhow::Result;
use oci_spec::runtime::Spec;
use std::os::fd::BorrowedFd;
use std::path::Path;

/// What `prepare` needs to know besides the spec.
pub struct RootfsOptions<'a> {
    pub spec: &'a Spec,
    /// Absolute, canonical host path of the rootfs.
    pub rootfs: &'a Path,
    /// Absolute bundle directory: relative mount sources resolve against it.
    pub bundle: &'a Path,
    /// The container has its own cgroup namespace.
    pub new_cgroupns: bool,
    /// The container runs in a new user namespace (device nodes must be bind-mounted).
    pub in_userns: bool,
}

/// Before pivot_root: propagation of `/`, bind the rootfs onto itself, every mount of config.json
/// in order, the default /dev, `linux.devices`, /dev symlinks and ptmx.
pub fn prepare(_opts: &RootfsOptions) -> Result<()> {
    anyhow::bail!("rootfs::prepare is not implemented yet")
}

/// pivot_root into `rootfs` and detach the old root (or MS_MOVE + chroot with `no_pivot`);
/// leaves the cwd at the new `/`.
pub fn pivot(_rootfs: &Path, _no_pivot: bool) -> Result<()> {
    anyhow::bail!("rootfs::pivot is not implemented yet")
}

/// After pivot_root: bind-mount the pty slave `fd` onto /dev/console (by fd, never by path).
pub fn bind_console(_pty_slave: BorrowedFd) -> Result<()> {
    anyhow::bail!("rootfs::bind_console is not implemented yet")
}

/// After pivot_root: `root.readonly`, `linux.maskedPaths`, `linux.readonlyPaths` and the final
/// `linux.rootfsPropagation`.
pub fn finalize(_spec: &Spec) -> Result<()> {
    anyhow::bail!("rootfs::finalize is not implemented yet")
}
