#!/usr/bin/env python3
"""Write the engine default seccomp profiles used as test data, as an x86_64 host with the
engines' default capability set gets them (OCI `linux.seccomp` JSON):

- docker-default.json: moby profiles/seccomp/default.json (moby/moby commit
  00f3d189e420d485e42d15fe494f96d272284e0e) resolved for amd64: archMap entry of
  SCMP_ARCH_X86_64, rules whose `includes` hold (arch amd64, kernel >= 4.8, capabilities:
  Docker's default set, of which only CAP_SYS_CHROOT is named by a rule) and whose `excludes`
  do not (no CAP_SYS_ADMIN).
- containerd-default.json: containerd contrib/seccomp/seccomp_default.go
  (containerd/containerd commit 078b6d91bea47e9235bd09ea8bfa9ff40281a8a0) DefaultProfile for
  GOARCH amd64 and the default OCI spec's bounding set (CAP_SYS_CHROOT, no CAP_SYS_ADMIN).
- docker-arch-names.json: the names Docker's profile allows only on other architectures, by
  architecture (for the name-resolution test).

Usage: python3 tests/data/seccomp/gen.py  (writes next to itself)
"""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
DOCKER_NAMES = open(os.path.join(HERE, "docker_names.txt")).read().split()
CLONE_NS = 0x7E020000  # CLONE_NEWNS|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET|NEWCGROUP


def personality(values):
    return [{"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": v, "op": "SCMP_CMP_EQ"}]} for v in values]


def clone_masked():
    return {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": CLONE_NS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]}


docker = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 1,
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "syscalls": [
        {"names": DOCKER_NAMES, "action": "SCMP_ACT_ALLOW"},
        {"names": ["process_vm_readv", "process_vm_writev", "ptrace"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]},
        *personality([0, 8, 131072, 131080, 4294967295]),
        {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["modify_ldt"], "action": "SCMP_ACT_ALLOW"},
        clone_masked(),
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
        {"names": ["chroot"], "action": "SCMP_ACT_ALLOW"},
    ],
}

# containerd's list: Docker's without the calls containerd's (older) list lacks, plus socket
# (unconditional there) and syslog.
NOT_IN_CONTAINERD = {
    "adjtimex", "clock_adjtime", "clock_adjtime64", "close_range", "epoll_pwait2", "futex_waitv",
    "io_uring_enter", "io_uring_register", "io_uring_setup", "landlock_add_rule",
    "landlock_create_ruleset", "landlock_restrict_self", "membarrier", "memfd_secret",
    "name_to_handle_at", "pidfd_open", "pidfd_send_signal", "pkey_alloc", "pkey_free",
    "pkey_mprotect", "preadv2", "process_mrelease", "pwritev2", "rseq",
}
containerd_names = sorted(
    (set(DOCKER_NAMES) - NOT_IN_CONTAINERD) | {"socket", "syslog"},
    key=lambda n: n.lstrip("_"),
)
containerd = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "syscalls": [
        {"names": containerd_names, "action": "SCMP_ACT_ALLOW"},
        *personality([0, 8, 4294967295]),
        {"names": ["arch_prctl", "modify_ldt"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["chroot"], "action": "SCMP_ACT_ALLOW"},
        clone_masked(),
    ],
}

arch_names = {
    "aarch64": ["arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint",
                "cacheflush", "set_tls"],
    "arm": ["arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint",
            "cacheflush", "set_tls"],
    "ppc64le": ["sync_file_range2", "swapcontext"],
    "s390x": ["s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"],
    "riscv64": ["riscv_flush_icache"],
}

for name, data in [("docker-default.json", docker), ("containerd-default.json", containerd),
                   ("docker-arch-names.json", arch_names)]:
    with open(os.path.join(HERE, name), "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
