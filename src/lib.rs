//! husk: an OCI runtime with runc's command line.
//!
//! The library holds everything; `main.rs` only parses the command line and maps errors to exit
//! codes. See ARCHITECTURE.md for the map of modules and the order of the container init sequence.

pub mod cgroups;
pub mod cli;
pub mod container;
pub mod criu;
pub mod fault;
#[cfg(test)]
mod fuzz;
pub mod hooks;
pub mod image;
pub mod logging;
pub mod namespaces;
pub mod netdev;
pub mod network;
pub mod output;
pub mod process;
pub mod registry;
pub mod rootfs;
pub mod rootless;
pub mod security;
pub mod spec;
pub mod state;
pub mod sys;
