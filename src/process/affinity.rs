//! `process.execCPUAffinity` (runtime-spec 1.2): the CPU affinity of a process started by `exec`.
//!
//! As runc implements it: `initial` is the affinity the exec child starts with, before it is moved
//! into the container's cgroup (runc: `setnsProcess.startWithCPUAffinity` starts `runc init`
//! from a thread pinned to `initial`); `final` is set once the child is in the container's cgroup.
//! Without `final` the affinity is reset to every CPU, which the kernel narrows to the cgroup's
//! cpuset (runc >= 1.2.7/1.3.1 `tryResetCPUAffinity`), so the program does not keep `initial` or
//! the affinity of whoever ran `husk exec`. Not applied to the container's init (the spec says it
//! is not applicable there), which only gets that reset, as in runc.

use anyhow::{Context, Result};
use nix::sched::CpuSet;
use nix::unistd::Pid;
use oci_spec::runtime::Process;

/// The parsed `process.execCPUAffinity` of an exec'd process.
#[derive(Debug, Clone, Default)]
pub struct ExecAffinity {
    pub initial: Option<CpuSet>,
    pub final_: Option<CpuSet>,
}

impl ExecAffinity {
    /// Parse (strictly) the lists of `process.execCPUAffinity`, naming the bad field.
    pub fn of(process: &Process) -> Result<ExecAffinity> {
        let Some(a) = process.exec_cpu_affinity() else {
            return Ok(ExecAffinity::default());
        };
        Ok(ExecAffinity {
            initial: a
                .initial()
                .as_deref()
                .map(|s| parse_cpu_list("process.execCPUAffinity.initial", s))
                .transpose()?,
            final_: a
                .cpu_affinity_final()
                .as_deref()
                .map(|s| parse_cpu_list("process.execCPUAffinity.final", s))
                .transpose()?,
        })
    }

    /// In the exec child once it is in the container's cgroup: `final`, or without it the widest
    /// affinity the cgroup's cpuset allows.
    pub fn apply_final(&self) -> Result<()> {
        match &self.final_ {
            Some(set) => set_self(set).context("process.execCPUAffinity.final"),
            None => {
                reset_self();
                Ok(())
            }
        }
    }
}

/// A CPU list as the spec writes it: `N` or `N-M` items, comma-separated (`0-3,7`). Nothing else
/// is accepted: no empty items, blanks, signs or reversed ranges, and every CPU must fit a
/// `cpu_set_t`.
pub fn parse_cpu_list(field: &str, s: &str) -> Result<CpuSet> {
    let bad = |why: String| anyhow::anyhow!("{field}: invalid CPU list {s:?}: {why}");
    if s.is_empty() {
        return Err(bad("empty".into()));
    }
    let max = CpuSet::count();
    let num = |t: &str| -> Result<usize> {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(format!("{t:?} is not a CPU number")));
        }
        match t.parse::<usize>() {
            Ok(n) if n < max => Ok(n),
            _ => Err(bad(format!("CPU {t} is out of range (max {})", max - 1))),
        }
    };
    let mut set = CpuSet::new();
    for item in s.split(',') {
        let (lo, hi) = match item.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => {
                let n = num(item)?;
                (n, n)
            }
        };
        if lo > hi {
            return Err(bad(format!("range {item:?} ends before it starts")));
        }
        for cpu in lo..=hi {
            set.set(cpu).map_err(|e| bad(e.to_string()))?;
        }
    }
    Ok(set)
}

/// Reset the calling process's affinity to every CPU, which the kernel narrows to the cgroup's
/// cpuset. Best effort, as runc's tryResetCPUAffinity: a failure leaves the inherited affinity.
pub fn reset_self() {
    let _ = set_self(&all_cpus());
}

fn all_cpus() -> CpuSet {
    let mut set = CpuSet::new();
    for cpu in 0..CpuSet::count() {
        let _ = set.set(cpu);
    }
    set
}

/// sched_setaffinity(2) on the calling (single-threaded) process.
pub fn set_self(set: &CpuSet) -> Result<()> {
    nix::sched::sched_setaffinity(Pid::from_raw(0), set).context("sched_setaffinity")
}

/// sched_getaffinity(2) of the calling process.
pub fn get_self() -> Result<CpuSet> {
    nix::sched::sched_getaffinity(Pid::from_raw(0)).context("sched_getaffinity")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpus(set: &CpuSet) -> Vec<usize> {
        (0..CpuSet::count())
            .filter(|&c| set.is_set(c).unwrap())
            .collect()
    }

    #[test]
    fn valid_lists() {
        let f = "process.execCPUAffinity.initial";
        assert_eq!(cpus(&parse_cpu_list(f, "0").unwrap()), [0]);
        assert_eq!(cpus(&parse_cpu_list(f, "0-1").unwrap()), [0, 1]);
        assert_eq!(cpus(&parse_cpu_list(f, "0,1").unwrap()), [0, 1]);
        assert_eq!(cpus(&parse_cpu_list(f, "0-1,3").unwrap()), [0, 1, 3]);
        assert_eq!(cpus(&parse_cpu_list(f, "0-3,7").unwrap()), [0, 1, 2, 3, 7]);
        assert_eq!(cpus(&parse_cpu_list(f, "2-2").unwrap()), [2]);
        assert_eq!(cpus(&parse_cpu_list(f, "1023").unwrap()), [1023]);
    }

    #[test]
    fn invalid_lists_name_the_field_and_value() {
        for field in [
            "process.execCPUAffinity.initial",
            "process.execCPUAffinity.final",
        ] {
            for bad in [
                "", "a", "3-1", "1-", ",0", "0,", "0,,1", "-1", " 0", "0 ", "+1", "0-1-2", "1024",
                "0x1", "0;1",
            ] {
                let e = parse_cpu_list(field, bad).unwrap_err().to_string();
                assert!(
                    e.starts_with(&format!("{field}: invalid CPU list {bad:?}")),
                    "{bad:?}: {e}"
                );
            }
        }
    }

    #[test]
    fn of_names_the_field() {
        let p: Process = serde_json::from_value(serde_json::json!({
            "cwd": "/", "user": {"uid": 0, "gid": 0},
            "execCPUAffinity": {"initial": "0", "final": "3-1"}
        }))
        .unwrap();
        let e = ExecAffinity::of(&p).unwrap_err().to_string();
        assert!(e.contains("process.execCPUAffinity.final"), "{e}");
        let p: Process = serde_json::from_value(serde_json::json!({
            "cwd": "/", "user": {"uid": 0, "gid": 0},
            "execCPUAffinity": {"initial": "0-1,3"}
        }))
        .unwrap();
        let a = ExecAffinity::of(&p).unwrap();
        assert_eq!(cpus(a.initial.as_ref().unwrap()), [0, 1, 3]);
        assert!(a.final_.is_none());
    }
}
