#!/bin/bash
# run.sh -- husk's cgroup v2, systemd and LSM tests in throw-away User-mode Linux guests.
#
#   integration/vm/run.sh [plain|systemd|systemd-hybrid|apparmor|selinux|systemd-cri]...   (default: all)
#
# plain:   a pure cgroup v2 guest (cgroupfs driver);
# systemd: the Debian 12 guest with systemd 252 as PID 1 (husk --systemd-cgroup, checked with
#          systemctl show);
# systemd-hybrid: the same guest booted with the v1/hybrid layout (a smaller set,
#          hybrid-checks.sh: v1 limits, unit, update, freezer, cleanup in every hierarchy; a
#          rootless --systemd-cgroup container refused, the user manager being v2 only).
# apparmor: the plain guest booted with lsm=capability,apparmor (VM_APPEND); lsm-checks.sh loads
#          a test profile with apparmor_parser and checks process.apparmorProfile, `exec
#          --apparmor`, a process.json's profile, an unloaded profile refused by name leaving
#          nothing behind, `features`, each against Debian's runc in the same guest; then `husk
#          up`'s default profile husk-default (loaded once, by concurrent `husk up`s too; what
#          it denies; --privileged and apparmor=unconfined; apparmor_parser missing; timed).
# selinux: the plain guest booted with lsm=capability,selinux, no policy loaded (none is, ever):
#          a selinuxLabel and an apparmorProfile (AppArmor not active) each refused by name
#          leaving nothing behind (lsm-checks.sh).
# In the plain and systemd guests: (a) the library's cgroups tests (unit + root tests, as
# cgroup-v2-tests.sh); plain only: tests/recovery.rs's freeze stuck half way (cgroup.freeze 1
# while cgroup.events says frozen 0, a task waiting on a FUSE server that never answers): state
# says paused, resume thaws, delete --force removes everything; then
# (b) real containers with target/debug/husk and target/testroot/rootfs: memory/pids limits read
# back inside, a fork bomb stopping at pids.max, an OOM kill seen by `husk events`, update
# --memory, pause/resume, a cgroup frozen by hand (state says paused, resume thaws, delete
# --force removes it), a denied device, nothing left after delete, and each resource read
# back inside (memory swap/low, cpu weight/max/burst/idle, unified, io.max) or, where the guest
# lacks the controller (cpuset, hugetlb, rdma, io.weight), refused by name (guest-checks.sh),
# and cgroup v2 delegation to a user-namespaced container (guest-checks.sh section 9);
# systemd only (section 10, rootless-systemd-checks.sh): rootless --systemd-cgroup containers of
# the guest's lingering user husktest (uid 1000) in its own systemd instance (user@1000.service,
# over /run/user/1000/bus): limits read back inside, the scope under user@1000.service and
# state.json's driver "systemd-user", ps/pause/resume/update/kill/delete through the user
# manager with nothing left, a limit on a controller the user manager lacks refused by field
# name, the missing-bus errors, the podman-like case (husk as root of `unshare --user
# --map-root-user`, cgroupsPath user.slice:libpod:ID), and Debian's runc doing the same (printed).
# systemd only (section 11): the fault injection test (tests/faults.rs) with the systemd driver:
# husk killed with SIGKILL at each step boundary and at random moments of the nine operations,
# then delete --force; no process, mount, cgroup, state entry or husk-*.scope unit may remain
# (HUSK_VM_FAULTS injections, default 90; seeded, the seed printed; HUSK_FAULT_SEED replays).
# systemd-cri: the systemd guest again, booted for Kubernetes' view with a kubelet's default
# cgroup driver: the CRI scenarios of integration/cri.sh (a private containerd, SystemdCgroup =
# true, pods in slices of their own) under husk and runc; no cri-containerd-*.scope unit, scope
# cgroup or pod slice left (cri-checks.sh). Each scenario's start and end stream as they
# happen; one taking longer than CRI_SCENARIO_TIMEOUT (default 300 s here) fails naming the CRI
# call it was in. 4-13 minutes in the guest (husk's 13 scenarios 5-35 s each, runc's up to
# twice that).
# systemd-hybrid: also net_cls and net_prio (and hugetlb) read back inside where the guest
# kernel has them, a named skip and a refusal by field name where not (hybrid-checks.sh).
# Builds on the host first (cargo build, cargo test --no-run for the library, tests/faults.rs and
# tests/recovery.rs;
# `make testroot` must have run).
# Prints ok/not ok per check and "N passed, N failed"; exits non-zero if anything failed.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
modes=("$@")
[ ${#modes[@]} -gt 0 ] || modes=(plain systemd systemd-hybrid apparmor selinux systemd-cri)

if [ "$(id -u)" != 0 ]; then
	echo "vm-test: skipped: needs root (User-mode Linux guest, cgroup writes)" >&2
	exit 0
fi
rootfs=$root/target/testroot/rootfs
[ -x "$rootfs/bin/busybox" ] || { echo "vm-test: $rootfs missing (make testroot)" >&2; exit 2; }
command -v jq >/dev/null || { echo "vm-test: jq missing (make deps)" >&2; exit 2; }

cargo build --bins || exit 2
husk=$root/target/debug/husk
testbin=$(cargo test --lib --no-run 2>&1 |
	sed -n 's/^ *Executable unittests src\/lib\.rs (\(.*\))$/\1/p' | tail -1)
[ -n "$testbin" ] && [ -x "$testbin" ] || { echo "vm-test: no library test binary" >&2; exit 2; }
testbin=$root/$testbin
# the fault injection test (tests/faults.rs), run in the systemd guest with the systemd driver
faultsbin=$(cargo test --test faults --no-run 2>&1 |
	sed -n 's/^ *Executable tests\/faults\.rs (\(.*\))$/\1/p' | tail -1)
[ -n "$faultsbin" ] && [ -x "$faultsbin" ] || { echo "vm-test: no faults test binary" >&2; exit 2; }
faultsbin=$root/$faultsbin
# the plain guest runs tests/recovery.rs's freeze stuck half way (a task waiting on FUSE)
recoverybin=$(cargo test --test recovery --no-run 2>&1 |
	sed -n 's/^ *Executable tests\/recovery\.rs (\(.*\))$/\1/p' | tail -1)
[ -n "$recoverybin" ] && [ -x "$recoverybin" ] || { echo "vm-test: no recovery test binary" >&2; exit 2; }
recoverybin=$root/$recoverybin
# its bound: HUSK_VM_FAULTS injections (10 per operation: ~2.5 minutes in the guest), seeded
# from the clock unless HUSK_FAULT_SEED is set (the seed is printed either way)
vm_faults=${HUSK_VM_FAULTS:-90}
fault_seed=${HUSK_FAULT_SEED:-}
# the systemd-cri guest runs the CRI scenarios with containerd's systemd cgroup driver:
# the CRI client and the two images are made here (the guest has no protoc, cargo cache or
# python json module); containerd, its shim, ctr and the CNI plugins come from the host's /
# (read-only at /host in the guest).
cridir=
if [[ " ${modes[*]} " == *" systemd-cri "* ]]; then
	for c in containerd containerd-shim-runc-v2 ctr protoc; do
		command -v "$c" >/dev/null || { echo "vm-test: $c missing (make deps)" >&2; exit 2; }
	done
	[ -x /usr/lib/cni/bridge ] || { echo "vm-test: /usr/lib/cni/bridge missing (make deps)" >&2; exit 2; }
	(cd integration/cri && cargo build --release --quiet) || { echo "vm-test: the CRI client does not build" >&2; exit 2; }
	cridir=$root/target/vm-test/cri
	rm -rf "$cridir" && mkdir -p "$cridir"
	cp integration/cri/target/release/husk-cri-test "$cridir/" || exit 2
	python3 integration/cri/image.py "$rootfs" "$cridir/probe.tar" docker.io/library/husk-cri-probe:1 null '["/probe"]' &&
		python3 integration/cri/image.py "$rootfs" "$cridir/pause.tar" docker.io/library/husk-cri-pause:1 '["/probe","pause"]' null ||
		{ echo "vm-test: the CRI images" >&2; exit 2; }
fi

# Bundles, prepared here because the systemd guest has no jq.
b=$root/target/vm-test/bundles
rm -rf "$b" && mkdir -p "$b"
# The guests are cgroup v2: give every bundle its own cgroup namespace, as `husk spec` (like
# crun's) does on a v2 host but not on this v1 host, so /sys/fs/cgroup inside is its own cgroup.
base=$(cd "$b" && "$husk" spec >/dev/null && jq '.linux.namespaces |=
	(if any(.[]; .type == "cgroup") then . else . + [{"type": "cgroup"}] end)' config.json &&
	rm config.json)
mk() { # mk NAME JQ-FILTER
	mkdir -p "$b/$1"
	jq --arg rootfs "$rootfs" '.root.path = $rootfs | .root.readonly = true
		| .process.terminal = false | '"$2" <<<"$base" >"$b/$1/config.json" || exit 2
}
sh_args() { jq -cn --arg s "$1" '["/bin/sh", "-c", $s]'; }
mk limits '.linux.resources.memory.limit = 67108864 | .linux.resources.pids.limit = 20
	| .process.args = '"$(sh_args 'read m </sys/fs/cgroup/memory.max; read p </sys/fs/cgroup/pids.max; echo memory.max=$m; echo pids.max=$p')"
mk forkbomb '.linux.resources.pids.limit = 20 | .process.args = ["/probe", "fork-bomb", "1000"]'
mk oom '.linux.resources.memory.limit = 33554432 | .linux.resources.memory.swap = 33554432
	| .process.args = '"$(sh_args 'sleep 2; head -c 300m /dev/zero | tail >/dev/null; sleep 600')"
mk long '.linux.resources.memory.limit = 67108864 | .linux.resources.pids.limit = 64
	| .annotations["org.systemd.property.TimeoutStopSec"] = "uint64 7"
	| .annotations["org.systemd.property.CollectMode"] = "'"'inactive-or-failed'"'"
	| .process.capabilities.bounding += ["CAP_MKNOD"] | .process.capabilities.effective += ["CAP_MKNOD"]
	| .process.capabilities.permitted += ["CAP_MKNOD"]
	| .process.args = '"$(sh_args 'i=0; while :; do i=$((i+1)); echo $i >/dev/shm/c.new; mv /dev/shm/c.new /dev/shm/c; sleep 0.1; done')"
# a node in linux.devices is not a permission: under the spec's deny-all it stays unopenable
mk devnode '.linux.devices = [{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11}]
	| .process.args = ["/probe", "open-write", "/dev/kmsg"]'

# resources read back from inside (guest-checks.sh, section 8): each prints FILE=VALUE
show() { sh_args "for f in $*; do printf '%s=%s\\n' \$f \"\$(cat /sys/fs/cgroup/\$f 2>&1)\"; done"; }
mk v2res '.linux.resources.memory = {"limit": 67108864, "swap": 100663296, "reservation": 33554432}
	| .linux.resources.cpu = {"shares": 512, "quota": 50000, "period": 100000, "burst": 20000}
	| .linux.resources.unified = {"pids.max": "33", "memory.high": "50331648"}
	| .process.args = '"$(show memory.max memory.swap.max memory.low cpu.weight cpu.max cpu.max.burst pids.max memory.high)"
mk idle '.linux.resources.cpu = {"shares": 512, "idle": 1} | .process.args = '"$(show cpu.idle cpu.weight)"
mk rt '.linux.resources.cpu = {"realtimeRuntime": 5000, "realtimePeriod": 100000} | .process.args = ["/bin/echo", "rt-ran"]'
mk cpuset '.linux.resources.cpu = {"cpus": "0", "mems": "0"} | .process.args = '"$(show cpuset.cpus cpuset.mems)"
mk hugetlb '.linux.resources.hugepageLimits = [{"pageSize": "2MB", "limit": 4194304}]
	| .process.args = '"$(show hugetlb.2MB.max)"
mk rdma '.linux.resources.rdma = {"mlx4_0": {"hcaHandles": 2, "hcaObjects": 2000}} | .process.args = ["/bin/true"]'
mk ioweight '.linux.resources.blockIO = {"weight": 500} | .process.args = '"$(show io.weight)"
# 4242:4343 is replaced in the guest by the major:minor of one of its block devices
mk iomax '.linux.resources.blockIO = {"throttleReadBpsDevice": [{"major": 4242, "minor": 4343, "rate": 1048576}],
		"throttleWriteIOPSDevice": [{"major": 4242, "minor": 4343, "rate": 400}]}
	| .process.args = '"$(show io.max)"

# cgroup v2 delegation (runtime-spec "Cgroup ownership"): user namespace 0->100000, a new cgroup
# namespace and /sys/fs/cgroup mounted rw; and the same with it read-only, and rw without a user
# namespace. Each runs `sleep`; the checks stat from the host and through `husk exec`.
userns='.linux.namespaces += [{"type": "user"}]
	| .linux.uidMappings = [{"containerID": 0, "hostID": 100000, "size": 65536}]
	| .linux.gidMappings = [{"containerID": 0, "hostID": 100000, "size": 65536}]'
cgrw='(.mounts[] | select(.destination == "/sys/fs/cgroup") | .options) |= (map(select(. != "ro")) + ["rw"])'
mk owner "$userns | $cgrw"' | .process.args = ["/bin/sleep", "600"]'
mk owner-ro "$userns"' | .process.args = ["/bin/sleep", "600"]'
mk owner-nouserns "$cgrw"' | .process.args = ["/bin/sleep", "600"]'

# systemd-hybrid: v1 net_cls / net_prio / hugetlb read back inside (hybrid-checks.sh), each
# printing FILE=VALUE for FILE below /sys/fs/cgroup
net='.linux.resources.network'
mk v1net "$net"' = {"classID": 1048577, "priorities": [{"name": "lo", "priority": 7}]}
	| .process.args = '"$(show net_cls/net_cls.classid net_prio/net_prio.ifpriomap)"
mk v1netcls "$net"' = {"classID": 1048577} | .process.args = '"$(show net_cls/net_cls.classid)"
mk v1netprio "$net"' = {"priorities": [{"name": "lo", "priority": 7}]}
	| .process.args = '"$(show net_prio/net_prio.ifpriomap)"
mk v1hugetlb '.linux.resources.hugepageLimits = [{"pageSize": "2MB", "limit": 4194304}]
	| .process.args = '"$(show hugetlb/hugetlb.2MB.limit_in_bytes)"

# systemd only: a nested slice in cgroupsPath (runc's slice:prefix:name, a-b.slice expansion)
mk nested '.linux.cgroupsPath = "husktest-nested.slice:hx:vmnested" | .process.args = ["/bin/sleep", "600"]'

# systemd only: rootless --systemd-cgroup (rootless-systemd-checks.sh), from `husk spec --rootless`:
# run by the guest's user husktest (uid 1000, lingering), user namespace 0 -> 1000; and the
# podman-like case, run by root of a user namespace of that user (0 -> 0 there)
rbase=$(cd "$b" && "$husk" spec --rootless >/dev/null && cat config.json && rm config.json)
mkr() { # mkr NAME JQ-FILTER, from the rootless spec
	mkdir -p "$b/$1"
	jq --arg rootfs "$rootfs" '.root.path = $rootfs | .root.readonly = true
		| .process.terminal = false | '"$2" <<<"$rbase" >"$b/$1/config.json" || exit 2
}
map1000='.linux.uidMappings = [{"containerID": 0, "hostID": 1000, "size": 1}]
	| .linux.gidMappings = [{"containerID": 0, "hostID": 1000, "size": 1}]'
rlim='.linux.resources = {"memory": {"limit": 67108864}, "pids": {"limit": 20}}'
mkr rl-limits "$map1000 | $rlim"' | .process.args = '"$(show memory.max pids.max)"
mkr rl-long "$map1000 | $rlim"' | .process.args = ["/bin/sleep", "600"]'
mkr rl-io "$map1000"' | .linux.resources.blockIO = {"weight": 500} | .process.args = ["/bin/true"]'
mkr rl-cpuset "$map1000"' | .linux.resources.cpu = {"cpus": "0"} | .process.args = ["/bin/true"]'
mkr rl-podman '.linux.cgroupsPath = "user.slice:libpod:vmpodman" | '"$rlim"'
	| .process.args = '"$(show memory.max pids.max)"

# apparmor / selinux guests (lsm-checks.sh): a profile "husk-test" that allows everything the test
# rootfs needs but reading /etc/hostname; containers and exec'd processes print their
# attr/current and try that read and an allowed one
cat >"$b/husk-test.aa" <<'EOF_AA'
abi <abi/3.0>,
profile husk-test flags=(attach_disconnected,mediate_deleted) {
  file,
  capability,
  network,
  signal,
  ptrace,
  unix,
  mount,
  umount,
  pivot_root,
  deny /etc/hostname r,
}
EOF_AA
lsm_probe=$(sh_args 'echo "current=$(cat /proc/self/attr/current)"; echo "denied=$(/probe read /etc/hostname)"; echo "allowed=$(/probe read /etc/passwd)"')
mk aa-prof '.process.apparmorProfile = "husk-test" | .process.args = '"$lsm_probe"
mk aa-none '.process.args = '"$lsm_probe"
mk aa-sleep '.process.args = ["/bin/sleep", "600"]'
mk aa-sleep-prof '.process.apparmorProfile = "husk-test" | .process.args = ["/bin/sleep", "600"]'
mk aa-missing '.process.apparmorProfile = "husk-missing" | .process.args = ["/bin/true"]'
mk selinux-label '.process.selinuxLabel = "system_u:system_r:container_t:s0" | .process.args = ["/bin/true"]'
jq '.process | .args = '"$lsm_probe"' | .apparmorProfile = "husk-test"' "$b/aa-prof/config.json" \
	>"$b/aa-exec-process.json" || exit 2
# husk up in the apparmor guest (its default profile husk-default): the test rootfs as an OCI
# archive for `husk image import`, one layer, PATH=/bin:/sbin
mkimage() { # mkimage ARCHIVE
	local d=$b/up-image arch l c m blob
	case $(uname -m) in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) arch=$(uname -m) ;; esac
	rm -rf "$d" && mkdir -p "$d/blobs/sha256" || return 1
	blob() { # blob FILE: moved to blobs/sha256/, its digest printed
		local h; h=$(sha256sum <"$1" | cut -d' ' -f1) && mv "$1" "$d/blobs/sha256/$h" && echo "$h"
	}
	tar -C "$rootfs" --numeric-owner -cf "$d/layer" . || return 1
	l=$(blob "$d/layer") || return 1
	jq -cn --arg l "sha256:$l" --arg a "$arch" '{architecture: $a, os: "linux",
		config: {Env: ["PATH=/bin:/sbin"], Cmd: ["/probe"]},
		rootfs: {type: "layers", diff_ids: [$l]}}' >"$d/config" || return 1
	c=$(blob "$d/config") || return 1
	jq -cn --arg c "$c" --arg l "$l" --argjson cs "$(stat -c %s "$d/blobs/sha256/$c")" \
		--argjson ls "$(stat -c %s "$d/blobs/sha256/$l")" '{schemaVersion: 2,
		mediaType: "application/vnd.oci.image.manifest.v1+json",
		config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: "sha256:\($c)", size: $cs},
		layers: [{mediaType: "application/vnd.oci.image.layer.v1.tar", digest: "sha256:\($l)", size: $ls}]}' \
		>"$d/manifest" || return 1
	m=$(blob "$d/manifest") || return 1
	echo '{"imageLayoutVersion":"1.0.0"}' >"$d/oci-layout"
	jq -cn --arg m "$m" --argjson ms "$(stat -c %s "$d/blobs/sha256/$m")" '{schemaVersion: 2,
		manifests: [{mediaType: "application/vnd.oci.image.manifest.v1+json", digest: "sha256:\($m)",
		size: $ms, annotations: {"org.opencontainers.image.ref.name": "husk-lsm-test:latest"}}]}' \
		>"$d/index.json" || return 1
	tar -C "$d" -cf "$1" oci-layout index.json blobs && rm -rf "$d"
}
mkimage "$b/up-image.tar" || { echo "vm-test: cannot make the husk up test image" >&2; exit 2; }

export VM_TIMEOUT=${VM_TIMEOUT:-1500}
rc=0
passed=0 failed=0
for m in "${modes[@]}"; do
	flag=() unified=1 append= modules=
	cmd=$(printf '%q ' "$here/guest-checks.sh" "$m" "$husk" "$testbin" "$b" "$faultsbin" "$vm_faults" "$fault_seed" "$recoverybin")
	case $m in
	plain) modules=fuse ;; # /dev/fuse for the freeze stuck half way (guest-checks.sh)
	apparmor|selinux)
		append="lsm=capability,$m"
		cmd=$(printf '%q ' "$here/lsm-checks.sh" "$m" "$husk" "$b")
		;;
	systemd) flag=(--systemd) ;;
	systemd-cri)
		flag=(--systemd)
		cmd=$(printf '%q ' "$here/cri-checks.sh" "$husk" "$cridir")
		;;
	systemd-hybrid)
		flag=(--systemd) unified=0
		cmd=$(printf '%q ' "$here/hybrid-checks.sh" "$husk" "$b")
		;;
	*) echo "vm-test: unknown mode $m (plain, systemd, systemd-hybrid, apparmor, selinux, systemd-cri)" >&2; exit 2 ;;
	esac
	echo "== vm-test: $m guest"
	log=$(mktemp /tmp/husk-vm-test.XXXXXX)
	VM_UNIFIED=$unified VM_APPEND=$append VM_MODULES=$modules "$here/vm-run.sh" "${flag[@]}" "bash $cmd" 2>&1 | tee "$log"
	st=${PIPESTATUS[0]}
	p=$(sed -n 's/^\([0-9]*\) passed, [0-9]* failed$/\1/p' "$log" | tail -1)
	f=$(sed -n 's/^[0-9]* passed, \([0-9]*\) failed$/\1/p' "$log" | tail -1)
	rm -f "$log"
	if [ -z "$p" ]; then
		echo "not ok - $m: guest did not finish (vm-run.sh status $st)"
		failed=$((failed + 1))
		rc=1
		continue
	fi
	passed=$((passed + p)) failed=$((failed + f))
	[ "$st" = 0 ] || rc=1
done
echo "vm-test: $passed passed, $failed failed"
exit $rc
