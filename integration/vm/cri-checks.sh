#!/bin/bash
# cri-checks.sh -- runs INSIDE the systemd guest (see run.sh, mode systemd-cri): Kubernetes'
# view with a kubelet's default cgroup driver. integration/cri.sh with CRI_SYSTEMD=1: a private
# containerd (the host's binaries, read-only at /host), SystemdCgroup = true, each pod in a slice
# of its own below the test's, every scenario under husk and under runc; husk must pass every
# scenario, and no cri-containerd-*.scope unit, scope cgroup or pod slice may remain.
#
#   cri-checks.sh HUSK CRIDIR
#
# CRIDIR holds the CRI client (husk-cri-test) and its images (probe.tar, pause.tar), made on the
# host: the guest has no protoc, no cargo cache and no python json module. Each of cri.sh's
# checks is one here, and its scenarios' start and end lines stream as they happen; the last
# line is "N passed, N failed". ExecSync runs 1 s at 20/s (the guest is 20-50x slower than the
# host), not the host's 10; a scenario taking longer than CRI_SCENARIO_TIMEOUT (default 300 s)
# fails, naming the CRI call it was in, and the next one runs.
set -u
husk=$1 cridir=$2
repo=$(cd "$(dirname "$0")/../.." && pwd)
pass=0 fail=0
ok() { echo "ok - systemd-cri: $*"; pass=$((pass + 1)); }
nok() { echo "not ok - systemd-cri: $*"; fail=$((fail + 1)); }
# containerd copies the node's /etc/hosts into each pod; the guest image has none (its root is a
# throw-away copy-on-write of the cached image)
[ -e /etc/hosts ] || printf '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n' >/etc/hosts
echo "# guest (systemd-cri): $(systemctl is-system-running 2>&1), cgroup $(stat -fc %T /sys/fs/cgroup)"
while IFS= read -r line; do
	case $line in
	"ok - "*) ok "${line#ok - }" ;;
	"not ok - "*) nok "${line#not ok - }" ;;
	"cri.sh exit status "*)
		echo "#   $line"
		[ "${line##* }" = 0 ] || nok "integration/cri.sh ended with status ${line##* }"
		;;
	*) echo "#   $line" ;;
	esac
done < <(env PATH="$PATH:/host/usr/bin:/host/usr/sbin" CRI_SYSTEMD=1 CRI_CLIENT="$cridir/husk-cri-test" \
	CRI_IMAGES="$cridir" CRI_CNI_BIN=/host/usr/lib/cni CRI_EXEC_SECONDS=1 HUSK_BIN="$husk" \
	CRI_SCENARIO_TIMEOUT="${CRI_SCENARIO_TIMEOUT:-300}" \
	timeout "${CRI_GUEST_TIMEOUT:-1300}" bash "$repo/integration/cri.sh" 2>&1
	echo "cri.sh exit status $?")
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
