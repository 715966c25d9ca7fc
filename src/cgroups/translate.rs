//! Pure value translations between the runtime spec (designed around cgroup v1) and the files
//! the kernel reads. Each mirrors what runc does (opencontainers/cgroups `utils.go`, `fs2/*.go`).

use anyhow::{bail, Result};

/// cpu.shares (v1, 2..=262144, default 1024) to cpu.weight (v2, 1..=10000, default 100).
///
/// This is the conversion of current runc (opencontainers/cgroups, runc PR #4785, also crun
/// 1.23 and later): a quadratic in log2(shares) through (2,1), (1024,100) and (262144,10000), so the
/// default maps to the default. The older linear formula `1 + (shares-2)*9999/262142` mapped 1024
/// to 39, far below the v2 default.  0 means unset.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    if shares <= 2 {
        return 1;
    }
    if shares >= 262_144 {
        return 10_000;
    }
    let l = (shares as f64).log2();
    let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
    // Rounded to 9 decimal places before ceil so that exact points such as 1024 -> 100 do not
    // become 101 through the last bit of floating point noise.
    let v = 10f64.powf(exponent);
    let v = (v * 1e9).round() / 1e9;
    v.ceil() as u64
}

/// blkio.weight (10..=1000) to io.weight (1..=10000), runc's `ConvertBlkIOToIOWeightValue`.
pub fn blkio_weight_to_io_weight(w: u16) -> u64 {
    if w == 0 {
        return 0;
    }
    1 + (u64::from(w).saturating_sub(10)) * 9999 / 990
}

/// The spec's memory.swap is memory+swap (v1 memsw). v2 memory.swap.max is swap alone.
/// Returns the value for memory.swap.max: None = leave it alone, Some(-1) = "max".
/// runc's `ConvertMemorySwapToCgroupV2Value`, including its special cases.
pub fn swap_to_v2(swap: Option<i64>, limit: Option<i64>) -> Result<Option<i64>> {
    let memory = limit.unwrap_or(0);
    let swap = swap.unwrap_or(0);
    if memory == -1 && swap == 0 {
        // memory unlimited and swap unset: both unlimited, as on v1
        return Ok(Some(-1));
    }
    if swap == -1 {
        return Ok(Some(-1));
    }
    if swap == 0 {
        return Ok(None);
    }
    if memory == 0 || memory == -1 {
        bail!("unable to set swap limit without memory limit");
    }
    if memory < 0 {
        bail!("invalid memory value: {memory}");
    }
    if swap < memory {
        bail!("memory+swap limit should be >= memory limit");
    }
    Ok(Some(swap - memory))
}

/// A limit as v2 files want it: -1 (or any negative) is "max".
pub fn v2_limit(v: i64) -> String {
    if v < 0 {
        "max".to_string()
    } else {
        v.to_string()
    }
}

/// The cpu.max line for a quota and period; None when neither is set (runc writes cpu.max only
/// when one of them is non-zero). Quota <= 0 with a period is "max PERIOD".
pub fn cpu_max(quota: Option<i64>, period: Option<u64>) -> Option<String> {
    let q = quota.unwrap_or(0);
    let p = period.unwrap_or(0);
    if q == 0 && p == 0 {
        return None;
    }
    let mut s = if q > 0 {
        q.to_string()
    } else {
        "max".to_string()
    };
    if p != 0 {
        s.push(' ');
        s.push_str(&p.to_string());
    }
    Some(s)
}

/// pids.limit as written to pids.max: 0 = unset (runc), negative = "max".
pub fn pids_max(limit: i64) -> Option<String> {
    match limit {
        0 => None,
        l if l < 0 => Some("max".to_string()),
        l => Some(l.to_string()),
    }
}

/// The hugetlb page size as the kernel names it in file names. The spec uses the same "2MB",
/// "1GB", "64KB" form; only validate it.
pub fn hugepage_size(s: &str) -> Result<&str> {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &s[digits.len()..];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        bail!("invalid hugepage size {s:?}");
    }
    match unit {
        "KB" | "MB" | "GB" | "TB" | "PB" => Ok(s),
        _ => bail!("invalid hugepage size {s:?}"),
    }
}

/// "hugepages-2048kB" (a /sys/kernel/mm/hugepages entry) to "2MB", the form in file names.
pub fn hugepage_dir_to_size(dir: &str) -> Option<String> {
    let kb: u64 = dir
        .strip_prefix("hugepages-")?
        .strip_suffix("kB")?
        .parse()
        .ok()?;
    let units = ["KB", "MB", "GB", "TB", "PB"];
    let mut v = kb;
    let mut i = 0;
    while v >= 1024 && v % 1024 == 0 && i + 1 < units.len() {
        v /= 1024;
        i += 1;
    }
    Some(format!("{v}{}", units[i]))
}

/// One rdma.max line: "mlx4_0 hca_handle=2 hca_object=2000"; None when neither limit is set.
pub fn rdma_line(dev: &str, handles: Option<u32>, objects: Option<u32>) -> Option<String> {
    if handles.is_none() && objects.is_none() {
        return None;
    }
    let mut s = dev.to_string();
    if let Some(h) = handles {
        s.push_str(&format!(" hca_handle={h}"));
    }
    if let Some(o) = objects {
        s.push_str(&format!(" hca_object={o}"));
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_weight() {
        assert_eq!(shares_to_weight(0), 0);
        assert_eq!(shares_to_weight(1), 1);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 100);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1_000_000), 10_000);
        // expected values computed independently with Python's math.pow/ceil (as Go does)
        assert_eq!(shares_to_weight(512), 59);
        assert_eq!(shares_to_weight(2048), 174);
        assert_eq!(shares_to_weight(100), 17);
        assert_eq!(shares_to_weight(10_000), 627);
        // monotonic
        let mut last = 0;
        for s in (2..262_144).step_by(97) {
            let w = shares_to_weight(s);
            assert!(w >= last, "{s}: {w} < {last}");
            last = w;
        }
    }

    #[test]
    fn blkio_weight() {
        assert_eq!(blkio_weight_to_io_weight(0), 0);
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(1000), 10_000);
        assert_eq!(blkio_weight_to_io_weight(500), 1 + 490 * 9999 / 990);
    }

    #[test]
    fn swap() {
        assert_eq!(swap_to_v2(None, None).unwrap(), None);
        assert_eq!(swap_to_v2(None, Some(-1)).unwrap(), Some(-1));
        assert_eq!(swap_to_v2(Some(-1), Some(100)).unwrap(), Some(-1));
        assert_eq!(swap_to_v2(Some(300), Some(100)).unwrap(), Some(200));
        assert_eq!(swap_to_v2(Some(100), Some(100)).unwrap(), Some(0));
        assert!(swap_to_v2(Some(50), Some(100)).is_err());
        assert!(swap_to_v2(Some(50), None).is_err());
        assert!(swap_to_v2(Some(50), Some(-1)).is_err());
        assert_eq!(swap_to_v2(None, Some(100)).unwrap(), None);
    }

    #[test]
    fn cpu_max_line() {
        assert_eq!(cpu_max(None, None), None);
        assert_eq!(cpu_max(Some(0), Some(0)), None);
        assert_eq!(cpu_max(Some(50_000), None).as_deref(), Some("50000"));
        assert_eq!(
            cpu_max(Some(50_000), Some(100_000)).as_deref(),
            Some("50000 100000")
        );
        assert_eq!(cpu_max(Some(-1), None).as_deref(), Some("max"));
        assert_eq!(
            cpu_max(Some(-1), Some(10_000)).as_deref(),
            Some("max 10000")
        );
        assert_eq!(cpu_max(None, Some(10_000)).as_deref(), Some("max 10000"));
    }

    #[test]
    fn limits() {
        assert_eq!(v2_limit(-1), "max");
        assert_eq!(v2_limit(4096), "4096");
        assert_eq!(pids_max(0), None);
        assert_eq!(pids_max(-1).as_deref(), Some("max"));
        assert_eq!(pids_max(20).as_deref(), Some("20"));
    }

    #[test]
    fn hugepages() {
        assert_eq!(hugepage_size("2MB").unwrap(), "2MB");
        assert!(hugepage_size("2M").is_err());
        assert!(hugepage_size("MB").is_err());
        assert!(hugepage_size("../x").is_err());
        assert_eq!(
            hugepage_dir_to_size("hugepages-2048kB").as_deref(),
            Some("2MB")
        );
        assert_eq!(
            hugepage_dir_to_size("hugepages-1048576kB").as_deref(),
            Some("1GB")
        );
        assert_eq!(
            hugepage_dir_to_size("hugepages-64kB").as_deref(),
            Some("64KB")
        );
        assert_eq!(hugepage_dir_to_size("foo"), None);
    }

    #[test]
    fn rdma() {
        assert_eq!(rdma_line("mlx4_0", None, None), None);
        assert_eq!(
            rdma_line("mlx4_0", Some(2), Some(2000)).as_deref(),
            Some("mlx4_0 hca_handle=2 hca_object=2000")
        );
        assert_eq!(
            rdma_line("mlx4_0", None, Some(7)).as_deref(),
            Some("mlx4_0 hca_object=7")
        );
    }
}
