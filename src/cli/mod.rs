//! The command line: runc's global flags and subcommands, parsed with clap.

use crate::container::{
    CheckpointOptions, CreateOptions, CriuOptions, ExecOptions, RestoreOptions, RunOptions,
    UpdateOptions,
};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

pub mod image;
pub mod up;

/// The whole command line: the runtime's verbs and the companions' (`image`, `up`, `network`…).
#[derive(Parser, Debug)]
#[command(
    name = "husk",
    about = "husk: an OCI container runtime with runc's command line",
    disable_version_flag = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The same command line with the runtime's verbs alone: what `parse` uses when the verb is
/// one of them, so that an engine's `create`/`start`/`exec`/`delete` never builds the
/// companions' argument tree (clap builds every subcommand's arguments before matching).
#[derive(Parser, Debug)]
#[command(
    name = "husk",
    about = "husk: an OCI container runtime with runc's command line",
    disable_version_flag = true
)]
struct RuntimeCli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Option<RuntimeCommand>,
}

/// Parse a command line (after `normalize_args`): as `Cli::try_parse_from`, the same result and
/// the same errors, but a runtime verb is parsed against the runtime's subcommands alone.
pub fn parse(args: &[String]) -> Result<Cli, clap::Error> {
    if verb(args).is_some_and(RuntimeCommand::has_subcommand) {
        let r = RuntimeCli::try_parse_from(args)?;
        return Ok(Cli {
            global: r.global,
            command: r.command.map(Command::Runtime),
        });
    }
    Cli::try_parse_from(args)
}

/// The subcommand word: the first argument that is neither a global flag nor a global flag's
/// value (None when something else comes first: the whole parser then decides).
fn verb(args: &[String]) -> Option<&str> {
    let mut it = args.iter().skip(1).peekable();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--root" | "--log" | "--log-format" | "--criu" => {
                it.next();
            }
            // an optional value: clap takes the next word when it is not a flag
            "--rootless" => {
                if it.peek().is_some_and(|n| !n.starts_with('-')) {
                    it.next();
                }
            }
            "--debug" | "--systemd-cgroup" => {}
            f if f.starts_with("--root=")
                || f.starts_with("--log=")
                || f.starts_with("--log-format=")
                || f.starts_with("--criu=")
                || f.starts_with("--rootless=") => {}
            f if f.starts_with('-') => return None,
            w => return Some(w),
        }
    }
    None
}

/// runc's global flags (accepted before or after the subcommand).
#[derive(Args, Debug)]
pub struct GlobalArgs {
    /// Root directory for the state of containers [default: /run/husk, or
    /// $XDG_RUNTIME_DIR/husk for a caller that is not root].
    #[arg(long, global = true)]
    pub root: Option<PathBuf>,
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
}

#[derive(Subcommand, Debug)]
pub enum Command {
    #[command(flatten)]
    Runtime(RuntimeCommand),
    /// Images: pull, push, ls, inspect, tag, rm, unpack, export, import, prune, login, logout
    /// (see `husk image --help`).
    Image(image::ImageArgs),
    /// Run an image as a new container, as `docker run` (pulled when missing): in the
    /// foreground, or with -d under a monitor of its own.
    #[command(disable_help_flag = true)]
    Up(Box<up::UpArgs>),
    /// Remove containers made by `husk up`: state, bundle and network attachments.
    Rm(up::RmArgs),
    /// Print the log of a container of `husk up -d`.
    Logs(up::LogsArgs),
    /// Stop containers of `husk up`: the stop signal, then SIGKILL after a grace time.
    Stop(up::StopArgs),
    /// Stop and start again containers of `husk up -d`.
    Restart(up::StopArgs),
    /// Attach husk's stdio to a running container of `husk up -d`, as `docker attach`.
    Attach(up::AttachArgs),
    /// The volumes of `husk up -v NAME:…`: ls, inspect, rm, prune.
    Volume(crate::up::volume::VolumeArgs),
    /// Manage networks (CNI): create, ls, inspect, rm, prune, gc, attach, detach, check.
    Network(crate::network::cli::NetworkArgs),
}

/// runc's subcommands: the runtime's command line.
#[derive(Subcommand, Debug)]
// each subcommand's arguments are built only when it is the one matched (or for help)
#[command(defer = true)]
pub enum RuntimeCommand {
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
        /// Signal: number or name, with or without SIG (default: the config's
        /// org.opencontainers.image.stopSignal annotation, else SIGTERM).
        signal: Option<String>,
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
        flags: UpdateArgs,
        id: String,
    },
    /// Print the features of this runtime (runtime-spec features.md).
    Features,
    /// Run a process in a running container.
    Exec(ExecArgs),
    /// Checkpoint a running container with CRIU.
    Checkpoint(CheckpointArgs),
    /// Restore a container from a CRIU checkpoint.
    Restore(RestoreArgs),
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
    /// Run the process in an existing sub-cgroup of the container's cgroup:
    /// [<controller>[,<controller>...]:]<path>; repeatable (one per controller).
    #[arg(long = "cgroup")]
    pub cgroup: Vec<String>,
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

// Flags `checkpoint` and `restore` share (runc's names). A plain comment: under the deferred
// build a doc comment here would become the two subcommands' about text.
#[derive(Args, Debug, Clone, Default)]
pub struct CriuArgs {
    /// Directory for the checkpoint images (default: ./checkpoint).
    #[arg(long = "image-path")]
    pub image_path: Option<PathBuf>,
    /// Directory for CRIU's log and work files (default: the image path).
    #[arg(long = "work-path")]
    pub work_path: Option<PathBuf>,
    /// Allow open TCP connections.
    #[arg(long = "tcp-established", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set)]
    pub tcp_established: bool,
    /// Allow external unix sockets.
    #[arg(long = "ext-unix-sk", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set)]
    pub ext_unix_sk: bool,
    /// Allow shell jobs.
    #[arg(long = "shell-job", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set)]
    pub shell_job: bool,
    /// Handle file locks.
    #[arg(long = "file-locks", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set)]
    pub file_locks: bool,
    /// Cgroups mode: soft, full, strict or ignore.
    #[arg(long = "manage-cgroups-mode")]
    pub manage_cgroups_mode: Option<String>,
    /// Create a namespace but do not restore its properties (e.g. network); repeatable.
    #[arg(long = "empty-ns")]
    pub empty_ns: Vec<String>,
    /// Use userfaultfd to restore memory pages lazily.
    #[arg(long = "lazy-pages", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set)]
    pub lazy_pages: bool,
    /// Deduplicate images against the parent checkpoint.
    #[arg(long = "auto-dedup", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set)]
    pub auto_dedup: bool,
}

#[derive(Args, Debug, Clone)]
pub struct CheckpointArgs {
    #[command(flatten)]
    pub criu: CriuArgs,
    /// Path of the parent images, relative to the image path (pre-dump).
    #[arg(long = "parent-path")]
    pub parent_path: Option<String>,
    /// Skip in-flight TCP connections.
    #[arg(long = "tcp-skip-in-flight", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set)]
    pub tcp_skip_in_flight: bool,
    /// Allow link remapping of deleted-but-open files.
    #[arg(long = "link-remap", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set)]
    pub link_remap: bool,
    /// Leave the container running after the checkpoint.
    #[arg(long = "leave-running", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set)]
    pub leave_running: bool,
    /// Dump only the memory (iterative migration); the container keeps running.
    #[arg(long = "pre-dump", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set)]
    pub pre_dump: bool,
    /// ADDRESS:PORT of a CRIU page server to send the pages to.
    #[arg(long = "page-server")]
    pub page_server: Option<String>,
    /// fd to which CRIU writes \0 when the lazy-pages server is ready.
    #[arg(long = "status-fd")]
    pub status_fd: Option<i32>,
    pub id: String,
}

#[derive(Args, Debug, Clone)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub criu: CriuArgs,
    /// Bundle directory (default: the current directory).
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Do not wait for the restored container.
    #[arg(short, long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set)]
    pub detach: bool,
    /// File to write the restored init's pid to.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Unix socket to receive the pty master of a terminal container.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Accepted for runc compatibility (CRIU restores the mount namespace itself).
    #[arg(long = "no-pivot", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set)]
    pub no_pivot: bool,
    /// Do not make husk a child subreaper while it waits.
    #[arg(long = "no-subreaper", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", action = clap::ArgAction::Set)]
    pub no_subreaper: bool,
    /// LSM profile for the restored process (e.g. apparmor:NAME, selinux:LABEL).
    #[arg(long = "lsm-profile")]
    pub lsm_profile: Option<String>,
    /// SELinux context for the restored mounts.
    #[arg(long = "lsm-mount-context")]
    pub lsm_mount_context: Option<String>,
    pub id: String,
}

// The flag forms of `update`. Every value may start with `-` (`--memory-swap -1`,
// `--cpu-quota -1`, `--pids-limit -1`): runc's flag parser takes the next argument as the value
// whatever it looks like. (A plain comment, as CriuArgs'.)
#[derive(Debug, Default, Args)]
pub struct UpdateArgs {
    /// LinuxResources JSON: a file, or - for stdin.
    #[arg(short, long, allow_hyphen_values = true)]
    pub resources: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    #[arg(long = "kernel-memory", allow_hyphen_values = true)]
    pub kernel_memory: Option<String>,
    #[arg(long = "kernel-memory-tcp", allow_hyphen_values = true)]
    pub kernel_memory_tcp: Option<String>,
    /// CPU shares (runc's spelling is `--cpu-share`; `--cpu-shares` is accepted too).
    #[arg(long = "cpu-share", alias = "cpu-shares", allow_hyphen_values = true)]
    pub cpu_shares: Option<u64>,
    #[arg(long = "cpu-period", allow_hyphen_values = true)]
    pub cpu_period: Option<u64>,
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    #[arg(long = "cpu-burst", allow_hyphen_values = true)]
    pub cpu_burst: Option<u64>,
    #[arg(long = "cpu-rt-period", allow_hyphen_values = true)]
    pub cpu_rt_period: Option<u64>,
    #[arg(long = "cpu-rt-runtime", allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<i64>,
    #[arg(long = "cpu-idle", allow_hyphen_values = true)]
    pub cpu_idle: Option<i64>,
    #[arg(long = "cpuset-cpus", allow_hyphen_values = true)]
    pub cpuset_cpus: Option<String>,
    #[arg(long = "cpuset-mems", allow_hyphen_values = true)]
    pub cpuset_mems: Option<String>,
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    #[arg(long = "blkio-weight", allow_hyphen_values = true)]
    pub blkio_weight: Option<u16>,
}

// The flags map onto the library's options field by field.

impl From<CreateArgs> for CreateOptions {
    fn from(a: CreateArgs) -> Self {
        CreateOptions {
            id: a.id,
            bundle: a.bundle,
            console_socket: a.console_socket,
            pidfd_socket: a.pidfd_socket,
            pid_file: a.pid_file,
            no_pivot: a.no_pivot,
            no_new_keyring: a.no_new_keyring,
            preserve_fds: a.preserve_fds,
        }
    }
}

impl From<RunArgs> for RunOptions {
    fn from(a: RunArgs) -> Self {
        RunOptions {
            create: a.create.into(),
            detach: a.detach,
            keep: a.keep,
        }
    }
}

impl From<ExecArgs> for ExecOptions {
    fn from(a: ExecArgs) -> Self {
        ExecOptions {
            id: a.id,
            process: a.process,
            command: a.command,
            tty: a.tty,
            env: a.env,
            cwd: a.cwd,
            user: a.user,
            additional_gids: a.additional_gids,
            cap: a.cap,
            no_new_privs: a.no_new_privs,
            apparmor: a.apparmor,
            process_label: a.process_label,
            preserve_fds: a.preserve_fds,
            detach: a.detach,
            pid_file: a.pid_file,
            console_socket: a.console_socket,
            pidfd_socket: a.pidfd_socket,
            ignore_paused: a.ignore_paused,
            cgroup: a.cgroup,
        }
    }
}

impl From<CriuArgs> for CriuOptions {
    fn from(a: CriuArgs) -> Self {
        CriuOptions {
            image_path: a.image_path,
            work_path: a.work_path,
            tcp_established: a.tcp_established,
            ext_unix_sk: a.ext_unix_sk,
            shell_job: a.shell_job,
            file_locks: a.file_locks,
            manage_cgroups_mode: a.manage_cgroups_mode,
            empty_ns: a.empty_ns,
            lazy_pages: a.lazy_pages,
            auto_dedup: a.auto_dedup,
        }
    }
}

impl From<CheckpointArgs> for CheckpointOptions {
    fn from(a: CheckpointArgs) -> Self {
        CheckpointOptions {
            id: a.id,
            criu: a.criu.into(),
            parent_path: a.parent_path,
            tcp_skip_in_flight: a.tcp_skip_in_flight,
            link_remap: a.link_remap,
            leave_running: a.leave_running,
            pre_dump: a.pre_dump,
            page_server: a.page_server,
            status_fd: a.status_fd,
        }
    }
}

impl From<RestoreArgs> for RestoreOptions {
    fn from(a: RestoreArgs) -> Self {
        RestoreOptions {
            id: a.id,
            criu: a.criu.into(),
            bundle: a.bundle,
            detach: a.detach,
            pid_file: a.pid_file,
            console_socket: a.console_socket,
            no_pivot: a.no_pivot,
            no_subreaper: a.no_subreaper,
            lsm_profile: a.lsm_profile,
            lsm_mount_context: a.lsm_mount_context,
        }
    }
}

impl From<UpdateArgs> for UpdateOptions {
    fn from(a: UpdateArgs) -> Self {
        UpdateOptions {
            resources: a.resources,
            memory: a.memory,
            memory_reservation: a.memory_reservation,
            memory_swap: a.memory_swap,
            kernel_memory: a.kernel_memory,
            kernel_memory_tcp: a.kernel_memory_tcp,
            cpu_shares: a.cpu_shares,
            cpu_period: a.cpu_period,
            cpu_quota: a.cpu_quota,
            cpu_burst: a.cpu_burst,
            cpu_rt_period: a.cpu_rt_period,
            cpu_rt_runtime: a.cpu_rt_runtime,
            cpu_idle: a.cpu_idle,
            cpuset_cpus: a.cpuset_cpus,
            cpuset_mems: a.cpuset_mems,
            pids_limit: a.pids_limit,
            blkio_weight: a.blkio_weight,
        }
    }
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
    "-cgroup",
    "-image-path",
    "-work-path",
    "-parent-path",
    "-leave-running",
    "-tcp-established",
    "-ext-unix-sk",
    "-shell-job",
    "-file-locks",
    "-manage-cgroups-mode",
    "-empty-ns",
    "-lazy-pages",
    "-status-fd",
    "-pre-dump",
    "-auto-dedup",
    "-page-server",
    "-lsm-profile",
    "-lsm-mount-context",
    "-tcp-skip-in-flight",
    "-link-remap",
];

/// `husk init-reaper [--] COMMAND [ARG…]`, the hidden subcommand `husk up --init` runs as the
/// container's pid 1 (`up::init`): its command, when `args` (the process's own, program
/// first) are that subcommand's. Taken raw — no `-flag` rewriting, any bytes — since everything
/// after it is the container's command line.
pub fn init_reaper_command(args: &[std::ffi::OsString]) -> Option<Vec<std::ffi::OsString>> {
    crate::up::init::reaper_command(args)
}

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
        "--cgroup",
    ];
    WITH_VALUE.contains(&flag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime(c: Option<Command>) -> Option<RuntimeCommand> {
        match c {
            Some(Command::Runtime(r)) => Some(r),
            _ => None,
        }
    }

    /// `parse` (the runtime's verbs alone when the verb is one of them) and the whole parser
    /// agree, in results and in errors, whatever comes before the verb.
    #[test]
    fn runtime_parse_is_the_whole_parse() {
        let lines: &[&[&str]] = &[
            &["husk", "run", "--bundle", "/b", "x"],
            &[
                "husk",
                "--root",
                "/r",
                "--log",
                "/l",
                "--log-format",
                "json",
                "create",
                "x",
            ],
            &[
                "husk",
                "--root=/r",
                "--systemd-cgroup",
                "--debug",
                "exec",
                "-t",
                "x",
                "sh",
            ],
            &["husk", "--rootless", "false", "state", "x"],
            &["husk", "--rootless", "--root", "/r", "delete", "-f", "x"],
            &["husk", "ls", "-q"],
            &["husk", "kill", "x", "KILL"],
            &["husk", "run", "--bogus", "x"],
            &["husk", "create"],
            &["husk", "start", "a", "b"],
            &["husk", "update", "--memory", "12q", "x"],
            &["husk", "image", "ls"],
            &["husk", "up", "--rm", "busybox"],
            &["husk", "--bogus", "run", "x"],
            &["husk", "bogus"],
            &["husk"],
        ];
        for l in lines {
            let args: Vec<String> = l.iter().map(|a| a.to_string()).collect();
            let fast = parse(&args).map(|c| format!("{c:?}"));
            let whole = Cli::try_parse_from(&args).map(|c| format!("{c:?}"));
            match (fast, whole) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{l:?}"),
                (Err(a), Err(b)) => {
                    assert_eq!(a.kind(), b.kind(), "{l:?}");
                    assert_eq!(a.to_string(), b.to_string(), "{l:?}");
                }
                (a, b) => panic!("{l:?}: {a:?} against {b:?}"),
            }
        }
        let w = |l: &[&str]| {
            verb(&l.iter().map(|a| a.to_string()).collect::<Vec<_>>()).map(String::from)
        };
        assert_eq!(w(&["husk", "--root", "/r", "run"]).as_deref(), Some("run"));
        assert_eq!(w(&["husk", "--rootless", "run"]).as_deref(), None);
        assert_eq!(
            w(&["husk", "--rootless", "--debug", "run"]).as_deref(),
            Some("run")
        );
        assert_eq!(w(&["husk", "-x", "run"]), None);
    }

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
        assert_eq!(c.global.root, Some(PathBuf::from("/x")));
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
        match runtime(c.command) {
            Some(RuntimeCommand::Exec(e)) => assert_eq!(e.command, ["ls", "-tty", "-process"]),
            _ => panic!(),
        }
    }

    #[test]
    fn rootless_flag_forms() {
        let c = Cli::try_parse_from(["husk", "spec", "--rootless"]).unwrap();
        assert_eq!(c.global.rootless.as_deref(), Some("true"));
        let c = Cli::try_parse_from(["husk", "--rootless", "false", "state", "x"]).unwrap();
        assert_eq!(c.global.rootless.as_deref(), Some("false"));
    }

    #[test]
    fn podman_restore_command_line() {
        // podman's form: single-dash -no-subreaper among double-dash flags
        let v = normalize_args(
            [
                "husk",
                "--root",
                "/r",
                "restore",
                "--image-path",
                "/img",
                "--work-path",
                "/w",
                "--bundle",
                "/b",
                "-no-subreaper",
                "--detach",
                "--pid-file",
                "/p",
                "--tcp-established",
                "--file-locks",
                "--lsm-profile",
                "selinux:x",
                "--lsm-mount-context",
                "ctx",
                "--manage-cgroups-mode",
                "soft",
                "c1",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        let c = Cli::try_parse_from(&v).unwrap();
        match runtime(c.command) {
            Some(RuntimeCommand::Restore(r)) => {
                assert!(r.no_subreaper && r.detach && r.criu.tcp_established);
                assert!(r.criu.file_locks && !r.criu.shell_job);
                assert_eq!(r.id, "c1");
                assert_eq!(r.bundle, PathBuf::from("/b"));
                assert_eq!(r.pid_file, Some(PathBuf::from("/p")));
                assert_eq!(r.criu.image_path, Some(PathBuf::from("/img")));
                assert_eq!(r.criu.work_path, Some(PathBuf::from("/w")));
                assert_eq!(r.lsm_profile.as_deref(), Some("selinux:x"));
                assert_eq!(r.lsm_mount_context.as_deref(), Some("ctx"));
                assert_eq!(r.criu.manage_cgroups_mode.as_deref(), Some("soft"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn checkpoint_flags() {
        let v = normalize_args(
            [
                "husk",
                "checkpoint",
                "-image-path=/i",
                "--leave-running",
                "--tcp-established",
                "--ext-unix-sk",
                "--shell-job",
                "--file-locks",
                "--empty-ns",
                "network",
                "--lazy-pages",
                "--status-fd",
                "7",
                "--pre-dump",
                "--parent-path",
                "../p",
                "--auto-dedup",
                "--page-server",
                "127.0.0.1:9",
                "--work-path",
                "/w",
                "c2",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        let c = Cli::try_parse_from(&v).unwrap();
        match runtime(c.command) {
            Some(RuntimeCommand::Checkpoint(a)) => {
                assert_eq!(a.criu.image_path, Some(PathBuf::from("/i")));
                assert!(a.leave_running && a.pre_dump && a.criu.lazy_pages && a.criu.auto_dedup);
                assert!(a.criu.tcp_established && a.criu.ext_unix_sk && a.criu.shell_job);
                assert_eq!(a.criu.empty_ns, ["network"]);
                assert_eq!(a.status_fd, Some(7));
                assert_eq!(a.parent_path.as_deref(), Some("../p"));
                assert_eq!(a.page_server.as_deref(), Some("127.0.0.1:9"));
                assert_eq!(a.id, "c2");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn checkpoint_bool_flags_take_urfave_values() {
        // callers (go-runc users) pass `--leave-running=false`; the id must not be eaten
        let c = Cli::try_parse_from([
            "husk",
            "checkpoint",
            "--leave-running=false",
            "--tcp-established=true",
            "--tcp-skip-in-flight",
            "--link-remap",
            "--shell-job",
            "c3",
        ])
        .unwrap();
        match runtime(c.command) {
            Some(RuntimeCommand::Checkpoint(a)) => {
                assert!(!a.leave_running && a.criu.tcp_established && a.tcp_skip_in_flight);
                assert!(a.link_remap && a.criu.shell_job);
                assert_eq!(a.id, "c3");
            }
            other => panic!("{other:?}"),
        }
        let c =
            Cli::try_parse_from(["husk", "restore", "-d", "--no-subreaper=false", "c4"]).unwrap();
        match runtime(c.command) {
            Some(RuntimeCommand::Restore(r)) => {
                assert!(r.detach && !r.no_subreaper && r.id == "c4")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn update_takes_negative_values_and_cpu_share() {
        let c = Cli::try_parse_from([
            "husk",
            "update",
            "--memory-swap",
            "-1",
            "--cpu-quota",
            "-1",
            "--pids-limit",
            "-1",
            "--cpu-rt-runtime",
            "-1",
            "--cpu-idle",
            "-1",
            "--cpu-share",
            "512",
            "c",
        ])
        .unwrap();
        match runtime(c.command) {
            Some(RuntimeCommand::Update { flags, id }) => {
                assert_eq!(flags.memory_swap.as_deref(), Some("-1"));
                assert_eq!(flags.cpu_quota, Some(-1));
                assert_eq!(flags.pids_limit, Some(-1));
                assert_eq!(flags.cpu_rt_runtime, Some(-1));
                assert_eq!(flags.cpu_idle, Some(-1));
                assert_eq!(flags.cpu_shares, Some(512));
                assert_eq!(id, "c");
            }
            other => panic!("{other:?}"),
        }
        let c = Cli::try_parse_from(["husk", "update", "--cpu-shares", "2", "c"]).unwrap();
        assert!(
            matches!(runtime(c.command), Some(RuntimeCommand::Update { flags, .. }) if flags.cpu_shares == Some(2))
        );
    }

    #[test]
    fn exec_cgroup_flag_is_not_the_command() {
        let v = normalize_args(
            [
                "husk", "exec", "--cgroup", "sub", "c1", "ls", "--cgroup", "x",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        let c = Cli::try_parse_from(&v).unwrap();
        match runtime(c.command) {
            Some(RuntimeCommand::Exec(e)) => {
                assert_eq!(e.cgroup, ["sub"]);
                assert_eq!(e.id, "c1");
                assert_eq!(e.command, ["ls", "--cgroup", "x"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn attach_flags_as_docker_attach() {
        let c = Cli::try_parse_from(["husk", "attach", "c1"]).unwrap();
        match c.command {
            Some(Command::Attach(a)) => {
                assert!(a.sig_proxy && !a.no_stdin && a.detach_keys.is_none());
                assert_eq!(a.name, "c1");
            }
            other => panic!("{other:?}"),
        }
        let c = Cli::try_parse_from([
            "husk",
            "attach",
            "--sig-proxy=false",
            "--no-stdin",
            "--detach-keys",
            "ctrl-a",
            "c1",
        ])
        .unwrap();
        match c.command {
            Some(Command::Attach(a)) => {
                assert!(!a.sig_proxy && a.no_stdin);
                assert_eq!(a.detach_keys.as_deref(), Some("ctrl-a"));
            }
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["husk", "attach", "--sig-proxy=maybe", "c1"]).is_err());
        // (a bool flag takes its value after =, as docker's: the next word is the name)
        match Cli::try_parse_from(["husk", "attach", "--sig-proxy", "c1"])
            .unwrap()
            .command
        {
            Some(Command::Attach(a)) => assert!(a.sig_proxy && a.name == "c1"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn kill_defaults_to_term() {
        let c = Cli::try_parse_from(["husk", "kill", "c"]).unwrap();
        match runtime(c.command) {
            Some(RuntimeCommand::Kill { signal, all, .. }) => {
                assert_eq!(signal, None);
                assert!(!all);
            }
            _ => panic!(),
        }
    }
}
