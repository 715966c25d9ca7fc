//! Lifecycle operations behind the subcommands.

mod exec;
mod lifecycle;
mod run;
mod signal;

pub use exec::{exec, parse_user};
pub use lifecycle::{create, delete, kill, list, start, state, status_of, Global};
pub use run::run;
pub use signal::parse_signal;
