//! The options of the container operations: plain data, filled by the command line (`cli/`) or
//! by a companion (`husk up`) calling the library directly. Field meanings are runc's flags of
//! the same names.

use std::path::PathBuf;

/// `create` (and the creating half of `run`).
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub id: String,
    /// The bundle directory (holds config.json).
    pub bundle: PathBuf,
    /// Unix socket to receive the pty master of a terminal container.
    pub console_socket: Option<PathBuf>,
    /// Unix socket to receive a pidfd of the container's process.
    pub pidfd_socket: Option<PathBuf>,
    /// File to write the container's pid to.
    pub pid_file: Option<PathBuf>,
    /// MS_MOVE + chroot instead of pivot_root.
    pub no_pivot: bool,
    /// Keep the caller's session keyring.
    pub no_new_keyring: bool,
    /// Pass this many more fds (from 3) to the container.
    pub preserve_fds: u32,
}

/// `run`: create, start, and (unless detached) wait.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub create: CreateOptions,
    /// Return once the container runs instead of waiting for it.
    pub detach: bool,
    /// Keep the container's state after it exits.
    pub keep: bool,
}

/// `exec`: a new process in a running container.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub id: String,
    /// process.json describing the process (instead of the fields below).
    pub process: Option<PathBuf>,
    /// The command and its arguments.
    pub command: Vec<String>,
    pub tty: bool,
    /// KEY=VALUE pairs added to the container's environment.
    pub env: Vec<String>,
    pub cwd: Option<String>,
    /// uid[:gid].
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    /// Capabilities added to the container's sets.
    pub cap: Vec<String>,
    pub no_new_privs: bool,
    pub apparmor: Option<String>,
    pub process_label: Option<String>,
    pub preserve_fds: u32,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub pidfd_socket: Option<PathBuf>,
    /// Exec even if the container is paused.
    pub ignore_paused: bool,
    /// `[<controller>[,<controller>...]:]<path>` sub-cgroups of the container's cgroup.
    pub cgroup: Vec<String>,
}

pub use crate::criu::request::CriuOptions;

/// `checkpoint`.
#[derive(Debug, Clone, Default)]
pub struct CheckpointOptions {
    pub id: String,
    pub criu: CriuOptions,
    /// Parent images, relative to the image path (pre-dump).
    pub parent_path: Option<String>,
    pub tcp_skip_in_flight: bool,
    pub link_remap: bool,
    pub leave_running: bool,
    pub pre_dump: bool,
    /// ADDRESS:PORT of a CRIU page server.
    pub page_server: Option<String>,
    /// fd to which CRIU writes \0 when the lazy-pages server is ready.
    pub status_fd: Option<i32>,
}

/// `restore`.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    pub id: String,
    pub criu: CriuOptions,
    pub bundle: PathBuf,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_subreaper: bool,
    /// apparmor:NAME or selinux:LABEL for the restored process.
    pub lsm_profile: Option<String>,
    pub lsm_mount_context: Option<String>,
}

/// `update`: a LinuxResources document and/or single values, as runc's flags give them
/// (sizes such as `512m`, `-1` for unlimited).
#[derive(Debug, Clone, Default)]
pub struct UpdateOptions {
    /// LinuxResources JSON: a file, or - for stdin.
    pub resources: Option<String>,
    pub memory: Option<String>,
    pub memory_reservation: Option<String>,
    pub memory_swap: Option<String>,
    pub kernel_memory: Option<String>,
    pub kernel_memory_tcp: Option<String>,
    pub cpu_shares: Option<u64>,
    pub cpu_period: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_burst: Option<u64>,
    pub cpu_rt_period: Option<u64>,
    pub cpu_rt_runtime: Option<i64>,
    pub cpu_idle: Option<i64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub pids_limit: Option<i64>,
    pub blkio_weight: Option<u16>,
}
