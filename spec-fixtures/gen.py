#!/usr/bin/env python3
"""Regenerate spec-fixtures/*/config.json from default/config.json.

default/config.json is `runc spec` output (runc 1.1.5) with args ["/probe"] and terminal false.
Every other fixture is that plus a small change, so each stays reviewable as a diff.
Placeholders the test harness substitutes: @HOOKDIR@ (host dir for hook output), @NS_<TYPE>@
(a /proc/PID/ns/TYPE path). Run: python3 spec-fixtures/gen.py
"""
import copy, json, os

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "default", "config.json")) as f:
    BASE = json.load(f)


def fx(name, change, raw=None):
    d = os.path.join(HERE, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        if raw is not None:
            f.write(raw)
            return
        c = copy.deepcopy(BASE)
        change(c)
        json.dump(c, f, indent=2)
        f.write("\n")


def user(c):
    c["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [1001, 5], "umask": 0o027}


def caps(c):
    c["process"]["capabilities"] = {
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SETUID"],
        "effective": ["CAP_CHOWN", "CAP_KILL"],
        "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"],
        "inheritable": [],
        "ambient": [],
    }


def rlimits(c):
    c["process"]["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "soft": 256, "hard": 512},
        {"type": "RLIMIT_CORE", "soft": 1024, "hard": 2048},
        {"type": "RLIMIT_MSGQUEUE", "soft": 4096, "hard": 8192},
    ]


def hostname(c):
    c["hostname"] = "fixture-host"
    c["domainname"] = "fixture.domain"


def mounts(c):
    for m in c["mounts"]:
        if m["destination"] == "/proc":
            m["options"] = ["nosuid", "noexec", "nodev"]
    c["mounts"] += [
        {"destination": "/mnt/tmpfs", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "nodev", "noexec", "mode=1770", "size=1m"]},
        {"destination": "/mnt/bind-ro", "type": "bind", "source": "bind-src", "options": ["rbind", "ro"]},
        {"destination": "/mnt/bind-rw", "type": "bind", "source": "bind-src", "options": ["bind", "rw", "nosuid"]},
        {"destination": "/mnt/pts", "type": "devpts", "source": "devpts", "options": ["newinstance", "ptmxmode=0666", "mode=0620"]},
        {"destination": "/mnt/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
    ]


def masked(c):
    c["linux"]["maskedPaths"] = c["linux"].get("maskedPaths", []) + ["/etc/hostname", "/root"]
    c["linux"]["readonlyPaths"] = c["linux"].get("readonlyPaths", []) + ["/home/user"]
    c["root"]["readonly"] = False


def root_rw(c):
    c["root"]["readonly"] = False


def sysctl(c):
    c["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shm_rmid_forced": "1"}
    c["process"]["args"] = ["/probe", "--sysctl", "net.ipv4.ip_forward", "--sysctl", "kernel.shm_rmid_forced"]


def devices(c):
    c["linux"]["devices"] = [
        {"path": "/dev/testnull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640, "uid": 0, "gid": 0},
        {"path": "/dev/testzero", "type": "c", "major": 1, "minor": 5, "fileMode": 0o600, "uid": 1000, "gid": 1000},
    ]
    c["linux"]["resources"]["devices"] += [
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
    ]


def devices_node_only(c):
    # a node without a linux.resources.devices rule: created, but the devices cgroup denies it
    c["linux"]["devices"] = [{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11}]
    c["process"]["args"] = ["/probe", "open-write", "/dev/kmsg"]


def no_pivot_proc(c):
    # run with `create --no-pivot` (create-flags): a user of the container mounting a new procfs
    # from a new user and pid namespace is refused (the host's procfs must not be reachable)
    c["process"]["user"] = {"uid": 1000, "gid": 1000}
    c["process"]["args"] = ["/bin/sh", "-c",
        "unshare -mrpf true; u=$?; unshare -mrpf sh -c 'mount -t proc none /proc' 2>/dev/null; "
        "echo \"{\\\"userns\\\": $u, \\\"proc_mount\\\": $?}\""]


def ns_path(c):
    for n in c["linux"]["namespaces"]:
        if n["type"] in ("network", "uts", "ipc"):
            n["path"] = "@NS_%s@" % n["type"].upper()
    c.pop("hostname", None)


def userns(c):
    c["linux"]["namespaces"].append({"type": "user"})
    c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]


def seccomp(c):
    c["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 123}],
    }


def hooks(c):
    def host(name):
        return {"path": "/bin/sh", "args": ["sh", "-c", "cat > @HOOKDIR@/%s.json; echo %s >> @HOOKDIR@/order" % (name, name)]}

    def cont(name):  # startContainer runs after pivot_root in the container: its /bin/sh, /hookout
        return {"path": "/bin/sh", "args": ["sh", "-c", "cat > /hookout/%s.json; echo %s >> /hookout/order" % (name, name)]}

    c["root"]["readonly"] = False
    c["mounts"].append({"destination": "/hookout", "type": "bind", "source": "@HOOKDIR@", "options": ["bind", "rw"]})
    c["hooks"] = {
        "prestart": [host("prestart")],
        "createRuntime": [host("createRuntime")],
        # createContainer runs in the container's namespaces but before pivot_root: host paths
        "createContainer": [host("createContainer")],
        "startContainer": [cont("startContainer")],
        "poststart": [host("poststart")],
        "poststop": [host("poststop")],
    }


def hooks_seccomp(c):
    # a startContainer hook runs under the container's seccomp filter: it records its own
    # Seccomp mode and a denied mkdir; the program prints what the hook saw
    seccomp(c)
    c["root"]["readonly"] = False
    c["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": [
        "sh", "-c", "grep '^Seccomp:' /proc/self/status > /hook-out; /probe syscall mkdir >> /hook-out; exit 0"]}]}
    c["process"]["args"] = ["/probe", "read", "/hook-out"]


def hooks_prestart_fail(c):
    c["hooks"] = {"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", "echo prestart-fails >&2; exit 3"]}]}


def hooks_poststart_fail(c):
    c["hooks"] = {"poststart": [{"path": "/bin/sh", "args": ["sh", "-c", "echo poststart-fails >&2; exit 4"]}]}


def nnp(c):
    c["process"]["noNewPrivileges"] = True
    c["process"]["user"] = {"uid": 1000, "gid": 1000}


def nnp_off(c):
    c["process"]["noNewPrivileges"] = False


def oom(c):
    c["process"]["oomScoreAdj"] = 423


def cgroups(c):
    c["linux"]["resources"]["memory"] = {"limit": 67108864}
    c["linux"]["resources"]["pids"] = {"limit": 32}
    c["linux"]["resources"]["cpu"] = {"shares": 512}


def env_cwd(c):
    c["process"]["env"] = ["PATH=/bin:/usr/bin", "FOO=bar", "EMPTY=", "WITH_EQ=a=b"]
    c["process"]["cwd"] = "/home/user"


# invalid fixtures: each must make create/run exit non-zero, name the field, leave nothing.
def wrong_type(c):
    c["process"]["user"]["uid"] = "zero"


def missing_rootfs(c):
    c["root"]["path"] = "no-such-rootfs"


def relative_cwd(c):
    c["process"]["cwd"] = "relative/dir"


def unknown_cap(c):
    c["process"]["capabilities"]["bounding"].append("CAP_NOT_A_CAPABILITY")
    c["process"]["capabilities"]["permitted"].append("CAP_NOT_A_CAPABILITY")


def bad_mount_option(c):
    c["mounts"].append({"destination": "/mnt/bad", "type": "tmpfs", "source": "tmpfs", "options": ["size=not-a-size"]})


def missing_exe(c):
    c["process"]["args"] = ["no-such-binary-in-path"]


# more valid fixtures: together with the above they touch every config field husk implements
def annotations(c):
    c["annotations"] = {"org.example.key": "value", "com.example.other": "x=y"}
    c["x-unknown-top-level"] = {"ignored": True}  # config.md: unknown properties MUST be ignored
    c["process"]["x-unknown-nested"] = 1


def personality(c):
    c["linux"]["personality"] = {"domain": "LINUX32"}


def sched_ioprio(c):
    c["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_BE", "priority": 6}
    c["process"]["scheduler"] = {"policy": "SCHED_BATCH", "nice": 7}


def timens(c):
    c["linux"]["namespaces"].append({"type": "time"})
    c["linux"]["timeOffsets"] = {"monotonic": {"secs": 86400, "nanosecs": 0},
                                 "boottime": {"secs": 172800, "nanosecs": 0}}


def cgroupns(c):
    c["linux"]["namespaces"].append({"type": "cgroup"})


def cgroup_rw(c):
    # no "ro" on the cgroup mount: read-write (mount(8)), the container may write its own cgroup
    c["linux"]["namespaces"].append({"type": "cgroup"})
    for m in c["mounts"]:
        if m["destination"] == "/sys/fs/cgroup":
            m["options"] = [o for o in m["options"] if o != "ro"]
    c["process"]["args"] = ["/bin/sh", "-c",
        "f=/sys/fs/cgroup/pids/pids.max; [ -e $f ] || f=/sys/fs/cgroup/pids.max; exec /probe open-write $f"]


def cgroups_cpu(c):
    c["linux"]["resources"]["cpu"] = {"quota": 50000, "period": 100000, "shares": 256}
    c["linux"]["resources"]["memory"] = {"limit": 134217728, "reservation": 67108864, "swap": 268435456}
    c["linux"]["resources"]["pids"] = {"limit": 100}
    c["linux"]["resources"]["blockIO"] = {"weight": 500}


def propagation_private(c):
    c["linux"]["rootfsPropagation"] = "private"


def relative_args(c):
    c["process"]["args"] = ["sh", "-c", "exec /probe"]
    c["process"]["env"] = ["PATH=/bin:/usr/bin"]


def args_path_lookup_env(c):
    c["process"]["args"] = ["env"]
    c["process"]["env"] = ["PATH=/usr/bin:/bin", "A=1"]


def seccomp_args(c):
    c["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "defaultErrnoRet": None,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "flags": ["SECCOMP_FILTER_FLAG_LOG"],
        "syscalls": [
            {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
             "args": [{"index": 0, "value": 4294967295, "op": "SCMP_CMP_EQ"}]},
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
        ],
    }
    del c["linux"]["seccomp"]["defaultErrnoRet"]


def seccomp_same_index(c):
    # Two conditions on one argument are alternatives (runc gives each its own rule), not an
    # AND that never holds: personality(1) and personality(2) are denied, the query allowed.
    c["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 121,
                      "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                               {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]}],
    }
    c["process"]["args"] = ["/probe", "syscalls", "personality:1", "personality:2",
                            "personality:ffffffff"]


def seccomp_rule_order(c):
    # An unconditional rule replaces the syscall's conditional ones whatever the order:
    # mkdirat is EACCES for every mode, the LOG rule for mode 0755 never applies.
    c["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["mkdirat"], "action": "SCMP_ACT_LOG",
             "args": [{"index": 2, "value": 0o755, "op": "SCMP_CMP_EQ"}]},
            {"names": ["mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
        ],
    }
    c["process"]["args"] = ["/probe", "syscalls", "mkdir:755", "mkdir:700", "getpid"]


def seccomp_docker_default(c):
    # Docker's default profile as an amd64 host gets it (tests/data/seccomp/gen.py).
    with open(os.path.join(HERE, "..", "tests", "data", "seccomp", "docker-default.json")) as f:
        c["linux"]["seccomp"] = json.load(f)
    c["process"]["args"] = ["/probe", "syscalls", "getpid", "mkdir:755", "personality:ffffffff",
                            "unshare", "mount", "keyctl", "chroot"]


def cpuset_swappiness(c):
    c["linux"]["resources"]["cpu"] = {"cpus": "0", "mems": "0", "shares": 2048}
    c["linux"]["resources"]["memory"] = {"limit": 268435456, "swappiness": 10, "disableOOMKiller": False}


def cwd_root_as_user(c):
    # /root is 0700 root: the runtime enters it before switching to the user (as runc)
    c["process"]["user"] = {"uid": 1000, "gid": 1000}
    c["process"]["cwd"] = "/root"


def no_user(c):
    # config.md: only process.cwd is REQUIRED; uid 0 / gid 0 by default (as runc)
    del c["process"]["user"]


def hook_create_cwd(c):
    # createContainer hooks run with the container's rootfs as cwd (as runc)
    c["root"]["readonly"] = False
    c["hooks"] = {"createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "touch created-in-hook-cwd"]}]}
    c["process"]["args"] = ["/probe", "stat", "/created-in-hook-cwd"]


def userns_private_bind(c):
    # the source is under a 0700 directory of the host's root (made by the harness): only the
    # runtime, before entering the user namespace, can open it (runc's mount source fds)
    userns(c)
    c["mounts"].append({"destination": "/mnt", "type": "bind", "source": "private/bind-src",
                        "options": ["rbind", "ro"]})
    c["process"]["args"] = ["/probe", "read", "/mnt/hello"]


# more invalid fixtures (each has an expect-error file: words one of which the error must name)
def missing_oci_version(c):
    del c["ociVersion"]


def relative_ns_path(c):
    for n in c["linux"]["namespaces"]:
        if n["type"] == "network":
            n["path"] = "proc/1/ns/net"


def bad_ns_path(c):
    for n in c["linux"]["namespaces"]:
        if n["type"] == "network":
            n["path"] = "/no/such/netns"


def ns_path_wrong_type(c):
    for n in c["linux"]["namespaces"]:
        if n["type"] == "network":
            n["path"] = "@NS_UTS@"


def unknown_ns_type(c):
    c["linux"]["namespaces"].append({"type": "bogus"})


def duplicate_ns(c):
    c["linux"]["namespaces"].append({"type": "pid"})


def relative_hook_path(c):
    c["hooks"] = {"prestart": [{"path": "bin/true"}]}


def hook_timeout_zero(c):
    c["hooks"] = {"poststart": [{"path": "/bin/true", "timeout": 0}]}


def unknown_rlimit(c):
    c["process"]["rlimits"] = [{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]


def duplicate_rlimit(c):
    c["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 10},
                               {"type": "RLIMIT_NOFILE", "soft": 20, "hard": 20}]


def empty_args(c):
    c["process"]["args"] = []


def seccomp_bad_action(c):
    c["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_BOGUS"}


def seccomp_errno_on_allow(c):
    c["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                             "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ALLOW", "errnoRet": 5}]}


def bad_device_type(c):
    c["linux"]["devices"] = [{"path": "/dev/bad", "type": "x", "major": 1, "minor": 3}]


def relative_masked_path(c):
    c["linux"]["maskedPaths"] = ["proc/kcore"]


def bad_propagation(c):
    c["linux"]["rootfsPropagation"] = "sideways"


def bad_mount_type_proc_src(c):
    c["mounts"].append({"destination": "/mnt/x", "type": "no-such-fs-type", "source": "none"})


def negative_uid(c):
    c["process"]["user"]["uid"] = -1


def bad_sysctl(c):
    c["linux"]["sysctl"] = {"kernel.no_such_sysctl_xyz": "1"}


def unified_on_v1(c):
    c["linux"]["resources"]["unified"] = {"memory.max": "67108864"}


for name, fn in [
    ("user", user), ("capabilities", caps), ("rlimits", rlimits), ("hostname", hostname),
    ("mounts", mounts), ("masked-readonly", masked), ("root-rw", root_rw), ("sysctl", sysctl),
    ("devices", devices), ("devices-node-only", devices_node_only), ("no-pivot-proc", no_pivot_proc), ("ns-path", ns_path), ("userns", userns), ("seccomp", seccomp),
    ("hooks", hooks), ("hooks-seccomp", hooks_seccomp), ("hooks-prestart-fail", hooks_prestart_fail),
    ("hooks-poststart-fail", hooks_poststart_fail), ("no-new-privs", nnp), ("no-new-privs-off", nnp_off),
    ("oom-score-adj", oom), ("cgroups", cgroups), ("env-cwd", env_cwd), ("missing-exe", missing_exe),
    ("invalid-wrong-type", wrong_type), ("invalid-missing-rootfs", missing_rootfs),
    ("invalid-relative-cwd", relative_cwd), ("unknown-cap", unknown_cap),
    ("invalid-bad-mount-option", bad_mount_option),
    ("annotations", annotations), ("personality", personality), ("sched-ioprio", sched_ioprio),
    ("timens", timens), ("cgroupns", cgroupns), ("cgroup-rw", cgroup_rw), ("cgroups-cpu", cgroups_cpu),
    ("propagation-private", propagation_private), ("relative-args", relative_args),
    ("args-path-lookup", args_path_lookup_env), ("seccomp-args", seccomp_args),
    ("cpuset-swappiness", cpuset_swappiness), ("cwd-root-as-user", cwd_root_as_user),
    ("no-user", no_user), ("hook-create-cwd", hook_create_cwd),
    ("userns-private-bind", userns_private_bind), ("seccomp-same-index", seccomp_same_index),
    ("seccomp-rule-order", seccomp_rule_order), ("seccomp-docker-default", seccomp_docker_default),
    ("invalid-missing-ociversion", missing_oci_version), ("invalid-relative-ns-path", relative_ns_path),
    ("invalid-bad-ns-path", bad_ns_path), ("invalid-ns-path-wrong-type", ns_path_wrong_type),
    ("invalid-unknown-ns-type", unknown_ns_type), ("invalid-duplicate-ns", duplicate_ns),
    ("invalid-relative-hook-path", relative_hook_path), ("invalid-hook-timeout-zero", hook_timeout_zero),
    ("invalid-unknown-rlimit", unknown_rlimit), ("invalid-duplicate-rlimit", duplicate_rlimit),
    ("invalid-empty-args", empty_args), ("invalid-seccomp-bad-action", seccomp_bad_action),
    ("invalid-seccomp-errno-on-allow", seccomp_errno_on_allow), ("invalid-bad-device-type", bad_device_type),
    ("invalid-relative-masked-path", relative_masked_path), ("invalid-bad-propagation", bad_propagation),
    ("invalid-bad-mount-type", bad_mount_type_proc_src), ("invalid-negative-uid", negative_uid),
    ("invalid-unknown-sysctl", bad_sysctl), ("invalid-unified-on-v1", unified_on_v1),
]:
    fx(name, fn)
fx("invalid-malformed-json", None, raw='{"ociVersion": "1.0.2-dev", "process": {"args": ["/probe"]\n')

# the words (any one) an invalid fixture's error must contain: the JSON field or the bad value
EXPECT_ERROR = {
    "invalid-malformed-json": ["config.json", "json", "eof"],
    "invalid-wrong-type": ["process.user.uid", "uid"],
    "invalid-missing-rootfs": ["root.path", "no-such-rootfs"],
    "invalid-relative-cwd": ["process.cwd", "cwd"],
    "invalid-bad-mount-option": ["size=not-a-size", "/mnt/bad"],
    "invalid-missing-ociversion": ["ociVersion"],
    "invalid-relative-ns-path": ["proc/1/ns/net", "namespaces"],
    "invalid-bad-ns-path": ["/no/such/netns"],
    "invalid-ns-path-wrong-type": ["network", "namespaces"],
    "invalid-unknown-ns-type": ["bogus"],
    "invalid-duplicate-ns": ["pid", "duplicate"],
    "invalid-relative-hook-path": ["bin/true", "hooks.prestart"],
    "invalid-hook-timeout-zero": ["timeout"],
    "invalid-unknown-rlimit": ["RLIMIT_BOGUS"],
    "invalid-duplicate-rlimit": ["RLIMIT_NOFILE"],
    "invalid-empty-args": ["process.args", "args"],
    "invalid-seccomp-bad-action": ["SCMP_ACT_BOGUS"],
    "invalid-seccomp-errno-on-allow": ["errnoRet"],
    "invalid-bad-device-type": ["linux.devices", "/dev/bad", "type"],
    "invalid-relative-masked-path": ["proc/kcore", "maskedPaths"],
    "invalid-bad-propagation": ["sideways", "rootfsPropagation"],
    "invalid-bad-mount-type": ["no-such-fs-type", "/mnt/x"],
    "invalid-negative-uid": ["process.user.uid", "uid"],
    "invalid-unknown-sysctl": ["kernel.no_such_sysctl_xyz"],
    "invalid-unified-on-v1": ["unified", "memory.max"],
}
# create flags (one per line) the differential runner passes to every runtime
CREATE_FLAGS = {"no-pivot-proc": ["--no-pivot"]}
for name, flags in CREATE_FLAGS.items():
    with open(os.path.join(HERE, name, "create-flags"), "w") as f:
        f.write("\n".join(flags) + "\n")

for name, words in EXPECT_ERROR.items():
    with open(os.path.join(HERE, name, "expect-error"), "w") as f:
        f.write("\n".join(words) + "\n")
