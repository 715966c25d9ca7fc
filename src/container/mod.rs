//! Lifecycle operations behind the subcommands.

mod lifecycle;
mod run;
mod signal;

pub use lifecycle::{create, delete, kill, list, start, state, status_of, Global};
pub use run::run;
pub use signal::parse_signal;
