#!/bin/bash
# hybrid-checks.sh -- runs INSIDE the systemd guest booted with the v1/hybrid cgroup layout
# (VM_UNIFIED=0, see run.sh): husk --systemd-cgroup on cgroup v1. A smaller set than
# guest-checks.sh: limits in the v1 hierarchies and the unit, update, pause/resume, cleanup.
#
#   hybrid-checks.sh HUSK BUNDLES
set -u
husk=$1 bundles=$2
pass=0 fail=0
ok() { echo "ok - systemd-hybrid: $*"; pass=$((pass + 1)); }
nok() { echo "not ok - systemd-hybrid: $*"; fail=$((fail + 1)); }
check() {
	local d=$1; shift
	if "$@"; then ok "$d"; else nok "$d"; fi
}
[ -d /sys/fs/cgroup/memory ] || { echo "guest has no v1 memory hierarchy" >&2; exit 3; }
root=$(mktemp -d /tmp/husk-vm-root.XXXXXX)
H() { timeout 300 "$husk" --root "$root" --systemd-cgroup "$@"; }
id=vmh$$
unit=husk-$id.scope
trap 'H delete --force "$id" >/dev/null 2>&1; rm -rf "$root"' EXIT

H run -d --bundle "$bundles/long" "$id" >/dev/null 2>&1
pid=$(H state "$id" | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' | head -1)
check "container started (pid ${pid:-none})" test -n "$pid"
memcg=$(sed -n 's/^[0-9]*:memory://p' "/proc/$pid/cgroup" 2>/dev/null)
check "memory cgroup is /system.slice/$unit ($memcg)" test "$memcg" = "/system.slice/$unit"
m=$(cat "/sys/fs/cgroup/memory$memcg/memory.limit_in_bytes" 2>/dev/null)
p=$(cat "/sys/fs/cgroup/pids$memcg/pids.max" 2>/dev/null)
check "memory.limit_in_bytes=$m (67108864), pids.max=$p (64)" test "$m" = 67108864 -a "$p" = 64
inside=$(H exec "$id" cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>&1)
check "memory limit read back inside ($inside)" test "$inside" = 67108864
tm=$(systemctl show -P TasksMax "$unit")
check "unit TasksMax=$tm (64)" test "$tm" = 64
H update --memory 100m "$id" 2>&1 | sed 's/^/#   /'
m=$(cat "/sys/fs/cgroup/memory$memcg/memory.limit_in_bytes" 2>/dev/null)
check "update --memory 100m: memory.limit_in_bytes=$m" test "$m" = 104857600
H pause "$id"
fz=$(cat "/sys/fs/cgroup/freezer$memcg/freezer.state" 2>/dev/null)
check "pause: freezer.state=$fz" test "$fz" = FROZEN
H resume "$id"
fz=$(cat "/sys/fs/cgroup/freezer$memcg/freezer.state" 2>/dev/null)
check "resume: freezer.state=$fz" test "$fz" = THAWED
H delete --force "$id" >/dev/null 2>&1
left=$(ls -d /sys/fs/cgroup/*/system.slice/"$unit" 2>/dev/null)
check "no cgroup left in any hierarchy after delete (${left:-none})" test -z "$left"
ls=$(systemctl show -P LoadState "$unit")
check "unit gone after delete ($ls)" test "$ls" = not-found

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
