//! rlimits, scheduler, I/O priority, personality, no_new_privs.

use std::io;

use anyhow::{bail, Context, Result};
use nix::sys::resource::{setrlimit, Resource};
use oci_spec::runtime::{
    IOPriorityClass, LinuxIOPriority, LinuxPersonality, LinuxPersonalityDomain, LinuxSchedulerFlag,
    LinuxSchedulerPolicy, PosixRlimit, PosixRlimitType, Scheduler,
};

fn resource(t: PosixRlimitType) -> Resource {
    match t {
        PosixRlimitType::RlimitCpu => Resource::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => Resource::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => Resource::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => Resource::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => Resource::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => Resource::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => Resource::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => Resource::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => Resource::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => Resource::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => Resource::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => Resource::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => Resource::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => Resource::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => Resource::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => Resource::RLIMIT_RTTIME,
    }
}

/// The values of `process` that are wrong whatever the host: checked at create before anything
/// exists (and again where they are applied). Unknown rlimit types and scheduler policies are
/// already rejected when the spec is parsed (they are enums).
pub fn check_process(p: &oci_spec::runtime::Process) -> Result<()> {
    for (i, l) in p.rlimits().iter().flatten().enumerate() {
        check_rlimit(i, l)?;
    }
    if let Some(adj) = p.oom_score_adj() {
        if !(-1000..=1000).contains(&adj) {
            bail!("process.oomScoreAdj: {adj} is out of range (-1000 to 1000)");
        }
    }
    if let Some(io) = p.io_priority() {
        check_io_priority(io)?;
    }
    if let Some(s) = p.scheduler() {
        check_scheduler(s)?;
    }
    Ok(())
}

fn check_rlimit(i: usize, l: &PosixRlimit) -> Result<()> {
    if l.soft() > l.hard() {
        bail!(
            "process.rlimits[{i}] ({}): soft limit {} is greater than hard limit {}",
            l.typ(),
            l.soft(),
            l.hard()
        );
    }
    Ok(())
}

fn check_io_priority(p: &LinuxIOPriority) -> Result<()> {
    if !(0..=7).contains(&p.priority()) {
        bail!(
            "process.ioPriority.priority: {} is out of range (0-7)",
            p.priority()
        );
    }
    Ok(())
}

/// sched(7)'s ranges: nice -20..19; a static priority 1..99 for SCHED_FIFO and SCHED_RR and 0
/// for the others; runtime, deadline and period only for SCHED_DEADLINE (as runc checks).
fn check_scheduler(s: &Scheduler) -> Result<()> {
    let nice = s.nice().unwrap_or(0);
    if !(-20..=19).contains(&nice) {
        bail!("process.scheduler.nice: {nice} is out of range (-20 to 19)");
    }
    let priority = s.priority().unwrap_or(0);
    let realtime = matches!(
        s.policy(),
        LinuxSchedulerPolicy::SchedFifo | LinuxSchedulerPolicy::SchedRr
    );
    if realtime && !(1..=99).contains(&priority) {
        bail!(
            "process.scheduler.priority: {priority} is out of range (1-99) for {:?}",
            s.policy()
        );
    }
    if !realtime && priority != 0 {
        bail!(
            "process.scheduler.priority: {priority} is only for SCHED_FIFO and SCHED_RR              ({:?} takes 0)",
            s.policy()
        );
    }
    let deadline = [s.runtime(), s.deadline(), s.period()];
    if *s.policy() != LinuxSchedulerPolicy::SchedDeadline
        && deadline.iter().any(|v| v.is_some_and(|v| v != 0))
    {
        bail!(
            "process.scheduler: runtime, deadline and period are only for SCHED_DEADLINE              (policy is {:?})",
            s.policy()
        );
    }
    Ok(())
}

/// `process.rlimits`, each checked ([`check_process`]) and set.
pub fn rlimits(r: &[PosixRlimit]) -> Result<()> {
    for (i, l) in r.iter().enumerate() {
        check_rlimit(i, l)?;
        setrlimit(resource(l.typ()), l.soft() as _, l.hard() as _).with_context(|| {
            format!(
                "process.rlimits[{i}] ({}): setrlimit(soft {}, hard {})",
                l.typ(),
                l.soft(),
                l.hard()
            )
        })?;
    }
    Ok(())
}

/// struct sched_attr, SCHED_ATTR_SIZE_VER1 (with the util-clamp fields).
#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
    util_min: u32,
    util_max: u32,
}

/// `process.scheduler` via sched_setattr(2).
pub fn scheduler(s: &Scheduler) -> Result<()> {
    let policy = match s.policy() {
        LinuxSchedulerPolicy::SchedOther => 0,
        LinuxSchedulerPolicy::SchedFifo => 1,
        LinuxSchedulerPolicy::SchedRr => 2,
        LinuxSchedulerPolicy::SchedBatch => 3,
        LinuxSchedulerPolicy::SchedIso => 4,
        LinuxSchedulerPolicy::SchedIdle => 5,
        LinuxSchedulerPolicy::SchedDeadline => 6,
    };
    let mut flags = 0u64;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSchedulerFlag::SchedResetOnFork => 0x01,
            LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
            LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
            LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
            LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
            LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
            LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
        };
    }
    check_scheduler(s)?;
    let priority = s.priority().unwrap_or(0);
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy,
        flags,
        nice: s.nice().unwrap_or(0),
        priority: priority as u32,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
        ..Default::default()
    };
    // SAFETY: `attr` is a valid sched_attr whose size field matches its layout; pid 0 = self.
    let r = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error())
            .with_context(|| format!("process.scheduler: sched_setattr({:?})", s.policy()));
    }
    Ok(())
}

/// `process.ioPriority` via ioprio_set(IOPRIO_WHO_PROCESS, self).
pub fn io_priority(p: &LinuxIOPriority) -> Result<()> {
    let class: i64 = match p.class() {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    check_io_priority(p)?;
    let prio = (class << 13) | p.priority();
    // SAFETY: ioprio_set takes integers only; IOPRIO_WHO_PROCESS (1) with pid 0 = self.
    let r = unsafe { libc::syscall(libc::SYS_ioprio_set, 1, 0, prio) };
    if r < 0 {
        return Err(io::Error::last_os_error()).with_context(|| {
            format!(
                "process.ioPriority: ioprio_set({:?}, {})",
                p.class(),
                p.priority()
            )
        });
    }
    Ok(())
}

/// `linux.personality`. The runtime spec defines no flags yet; any given is an error.
pub fn personality(p: &LinuxPersonality) -> Result<()> {
    if let Some(f) = p.flags().as_ref().filter(|f| !f.is_empty()) {
        bail!("linux.personality.flags: {f:?} not supported (the runtime spec defines none)");
    }
    let persona: libc::c_ulong = match p.domain() {
        LinuxPersonalityDomain::PerLinux => 0x0000,
        LinuxPersonalityDomain::PerLinux32 => 0x0008,
    };
    // SAFETY: personality takes an integer.
    if unsafe { libc::personality(persona) } < 0 {
        return Err(io::Error::last_os_error())
            .with_context(|| format!("linux.personality: personality({})", p.domain()));
    }
    Ok(())
}

/// `process.noNewPrivileges`.
pub fn no_new_privs() -> Result<()> {
    // SAFETY: PR_SET_NO_NEW_PRIVS takes integer arguments only.
    let r = unsafe {
        libc::prctl(
            libc::PR_SET_NO_NEW_PRIVS,
            1 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error())
            .context("process.noNewPrivileges: prctl(PR_SET_NO_NEW_PRIVS)");
    }
    Ok(())
}
