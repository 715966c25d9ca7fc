//! The command line: runc's global flags and subcommands, parsed with clap.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "husk",
    about = "husk: an OCI container runtime with runc's command line",
    disable_version_flag = true
)]
pub struct Cli {
    /// Root directory for the state of containers.
    #[arg(long, global = true, default_value = "/run/husk")]
    pub root: PathBuf,
    /// Log file (default: stderr).
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long = "log-format", global = true, default_value = "text")]
    pub log_format: String,
    /// Debug logging.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Use systemd to manage cgroups.
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// Rootless mode: true, false or auto.
    #[arg(long, global = true, num_args = 0..=1, default_missing_value = "true")]
    pub rootless: Option<String>,
    /// Path to criu (checkpoint/restore).
    #[arg(long, global = true, hide = true)]
    pub criu: Option<String>,
    /// Print the version.
    #[arg(short = 'v', long = "version")]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a container from a bundle; it waits for `start` before running the program.
    Create(CreateArgs),
    /// Run the program of a created container.
    Start { id: String },
    /// Create and start a container.
    Run(RunArgs),
    /// Print the state of a container.
    State { id: String },
    /// Send a signal to the container's init (or every process with --all).
    Kill {
        /// Send the signal to every process of the container.
        #[arg(short, long)]
        all: bool,
        id: String,
        /// Signal: number or name, with or without SIG (default SIGTERM).
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a container and everything it holds.
    Delete {
        /// Kill a running container first.
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// List containers.
    #[command(alias = "ls")]
    List {
        /// table or json.
        #[arg(short, long, default_value = "table")]
        format: String,
        /// Print only the ids.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Freeze every process of the container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// List the container's processes.
    Ps {
        /// table or json.
        #[arg(short, long, default_value = "table")]
        format: String,
        id: String,
        /// Arguments for ps(1) (table format).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Container events: stats and OOM notifications.
    Events {
        /// Print one stats event and exit.
        #[arg(long)]
        stats: bool,
        /// Interval between stats events.
        #[arg(long, default_value = "5s")]
        interval: String,
        id: String,
    },
    /// Change the resources of a running container.
    Update {
        #[command(flatten)]
        flags: crate::container::UpdateFlags,
        id: String,
    },
    /// Print the features of this runtime (runtime-spec features.md).
    Features,
    /// Run a process in a running container.
    Exec(ExecArgs),
    /// Write a default config.json.
    Spec {
        /// The bundle directory.
        #[arg(short, long)]
        bundle: Option<PathBuf>,
        // `--rootless` here is the global flag (with no value it means true).
    },
}

#[derive(Args, Debug, Clone)]
pub struct CreateArgs {
    /// Bundle directory (default: the current directory).
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Unix socket to receive the pty master of a terminal container.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Unix socket to receive a pidfd of the container's process.
    #[arg(long = "pidfd-socket")]
    pub pidfd_socket: Option<PathBuf>,
    /// File to write the container's pid to.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Use MS_MOVE + chroot instead of pivot_root.
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Do not create a new session keyring.
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass N more fds (from 3) to the container.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    pub id: String,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// process.json describing the process (instead of the command line).
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    /// Allocate a pseudo-TTY.
    #[arg(short, long)]
    pub tty: bool,
    /// Set an environment variable (KEY=VALUE); repeatable.
    #[arg(short, long)]
    pub env: Vec<String>,
    /// Working directory in the container.
    #[arg(long)]
    pub cwd: Option<String>,
    /// uid[:gid].
    #[arg(short, long)]
    pub user: Option<String>,
    /// Additional gids; repeatable.
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// Add a capability; repeatable.
    #[arg(short, long)]
    pub cap: Vec<String>,
    /// Set no_new_privs.
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// AppArmor profile.
    #[arg(long)]
    pub apparmor: Option<String>,
    /// SELinux process label.
    #[arg(long = "process-label")]
    pub process_label: Option<String>,
    /// Pass N more fds (from 3).
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Detach from the process.
    #[arg(short, long)]
    pub detach: bool,
    /// File to write the process's pid to.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Unix socket to receive the pty master.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Unix socket to receive a pidfd of the process.
    #[arg(long = "pidfd-socket")]
    pub pidfd_socket: Option<PathBuf>,
    /// Exec even if the container is paused.
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
    pub id: String,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub create: CreateArgs,
    /// Detach from the container's process.
    #[arg(short, long)]
    pub detach: bool,
    /// Keep the container's state after it exits.
    #[arg(long)]
    pub keep: bool,
}

/// Long flags that callers pass with a single dash (urfave/cli accepts both forms).
const SINGLE_DASH_OK: &[&str] = &[
    "-bundle",
    "-console-socket",
    "-pid-file",
    "-no-pivot",
    "-no-new-keyring",
    "-preserve-fds",
    "-detach",
    "-keep",
    "-force",
    "-all",
    "-format",
    "-quiet",
    "-root",
    "-log",
    "-log-format",
    "-debug",
    "-systemd-cgroup",
    "-rootless",
    "-no-subreaper",
    "-pidfd-socket",
    "-process",
    "-tty",
    "-cwd",
    "-user",
    "-cap",
    "-no-new-privs",
    "-ignore-paused",
];

/// Rewrite `-flag` to `--flag` for the long flags above (also in `-flag=value` form).
/// For `exec`, rewriting stops at the first positional (the container id): what follows is the
/// container's command line.
pub fn normalize_args(args: impl Iterator<Item = String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_exec = false;
    let mut positional_seen = false;
    for (i, a) in args.enumerate() {
        if positional_seen {
            out.push(a);
            continue;
        }
        let name = a.split('=').next().unwrap_or("");
        let fixed = if i > 0 && !a.starts_with("--") && SINGLE_DASH_OK.contains(&name) {
            format!("-{a}")
        } else {
            a
        };
        if in_exec
            && !fixed.starts_with('-')
            && !out.last().is_some_and(|p: &String| takes_value(p))
        {
            positional_seen = true;
        }
        if fixed == "exec" {
            in_exec = true;
        }
        out.push(fixed);
    }
    out
}

fn takes_value(flag: &str) -> bool {
    const WITH_VALUE: &[&str] = &[
        "--root",
        "--log",
        "--log-format",
        "--process",
        "-p",
        "--env",
        "-e",
        "--cwd",
        "--user",
        "-u",
        "--additional-gids",
        "-g",
        "--cap",
        "-c",
        "--apparmor",
        "--process-label",
        "--preserve-fds",
        "--pid-file",
        "--console-socket",
        "--pidfd-socket",
        "--criu",
    ];
    WITH_VALUE.contains(&flag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_dash_long_flags() {
        let v = normalize_args(
            ["husk", "-root", "/x", "create", "-bundle=/b", "-x", "id"]
                .iter()
                .map(|s| s.to_string()),
        );
        assert_eq!(
            v,
            ["husk", "--root", "/x", "create", "--bundle=/b", "-x", "id"]
        );
        let c = Cli::try_parse_from(v.iter().filter(|a| *a != "-x")).unwrap();
        assert_eq!(c.root, PathBuf::from("/x"));
    }

    #[test]
    fn exec_command_is_left_alone() {
        let v = normalize_args(
            [
                "husk", "exec", "-tty", "--cwd", "/", "c1", "ls", "-tty", "-process",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        assert_eq!(
            v,
            ["husk", "exec", "--tty", "--cwd", "/", "c1", "ls", "-tty", "-process"]
        );
        let c = Cli::try_parse_from(&v).unwrap();
        match c.command {
            Some(Command::Exec(e)) => assert_eq!(e.command, ["ls", "-tty", "-process"]),
            _ => panic!(),
        }
    }

    #[test]
    fn rootless_flag_forms() {
        let c = Cli::try_parse_from(["husk", "spec", "--rootless"]).unwrap();
        assert_eq!(c.rootless.as_deref(), Some("true"));
        let c = Cli::try_parse_from(["husk", "--rootless", "false", "state", "x"]).unwrap();
        assert_eq!(c.rootless.as_deref(), Some("false"));
    }

    #[test]
    fn kill_defaults_to_term() {
        let c = Cli::try_parse_from(["husk", "kill", "c"]).unwrap();
        match c.command {
            Some(Command::Kill { signal, all, .. }) => {
                assert_eq!(signal, "SIGTERM");
                assert!(!all);
            }
            _ => panic!(),
        }
    }
}
