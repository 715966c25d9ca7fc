//! Spawning the container: the sync channel between the runtime and the container's init, the
//! console, and the init sequence itself (`init.rs`, the code that runs inside the container).

pub mod affinity;
pub mod channel;
pub mod console;
pub mod init;
pub mod mempolicy;
pub mod spawn;
pub mod timens;
