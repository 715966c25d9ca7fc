//! husk: an OCI runtime with runc's command line.
//!
//! The library holds everything; `main.rs` only parses the command line and maps errors to exit
//! codes. See ARCHITECTURE.md for the map of modules and the order of the container init sequence.

#![deny(clippy::undocumented_unsafe_blocks, unsafe_op_in_unsafe_fn)]

pub(crate) mod cgroups;
pub mod cli;
pub mod container;
pub(crate) mod criu;
pub(crate) mod fault;
#[cfg(test)]
mod fuzz;
pub(crate) mod hooks;
pub mod image;
pub mod logging;
pub(crate) mod namespaces;
pub(crate) mod netdev;
pub mod network;
pub mod output;
pub(crate) mod process;
pub mod registry;
pub(crate) mod rootfs;
pub mod rootless;
pub mod security;
pub mod spec;
pub mod state;
pub(crate) mod sys;
#[cfg(test)]
pub(crate) mod testing;
pub mod up;
