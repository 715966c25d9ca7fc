//! Lifecycle operations behind the subcommands.

mod checkpoint;
mod exec;
mod exec_cgroup;
pub(crate) mod foreground;
mod lifecycle;
mod ops;
mod options;
mod run;
mod signal;

pub use checkpoint::{checkpoint, restore};
pub use exec::{exec, parse_user};
pub use lifecycle::{create, delete, kill, list, start, state, status_of, Global};
pub use ops::{events, features, pause, ps, resume, update};
pub use options::{
    CheckpointOptions, CreateOptions, CriuOptions, ExecOptions, RestoreOptions, RunOptions,
    UpdateOptions,
};
pub use run::{run, run_with};
pub use signal::{parse_kill_signal, parse_signal};
