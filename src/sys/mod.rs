//! Small safe wrappers for syscalls that nix lacks. `unsafe` lives here, each block with a
//! `// SAFETY:` line.

pub mod clone3;
pub mod fd;
pub mod mount_api;
pub mod openat2;
pub mod pidfd;
pub mod procfs;
