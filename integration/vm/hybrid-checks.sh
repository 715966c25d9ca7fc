#!/bin/bash
# hybrid-checks.sh -- runs INSIDE the systemd guest booted with the v1/hybrid cgroup layout
# (VM_UNIFIED=0, see run.sh): husk --systemd-cgroup on cgroup v1. A smaller set than
# guest-checks.sh: limits in the v1 hierarchies and the unit, update, pause/resume, cleanup;
# then net_cls / net_prio / hugetlb read back inside where the guest kernel has them (mounted
# here if nobody did), a named skip and a refusal by field name where it does not; and a
# rootless --systemd-cgroup container refused (the user's systemd instance is cgroup v2 only).
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
cids=()
cleanup() {
	for c in "$id" "${cids[@]}"; do H delete --force "$c" >/dev/null 2>&1; done
	rm -rf "$root"
}
trap cleanup EXIT

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

# v1-only resources read back from inside: net_cls, net_prio and hugetlb. This host's kernel
# decides which exist (/proc/cgroups); one the kernel has but nobody mounted is mounted here as a
# v1 hierarchy the way systemd does it (net_cls and net_prio together at
# /sys/fs/cgroup/net_cls,net_prio with a symlink per controller). A controller the kernel lacks
# is a named skip, and a container asking for it must be refused naming the field.
skip() { echo "# SKIP systemd-hybrid: $*"; }
in_kernel() { awk -v c="$1" '$1 == c && $4 == 1 { f = 1 } END { exit !f }' /proc/cgroups; }
unmounted() { awk -v c="$1" '$1 == c && $2 == 0 { f = 1 } END { exit !f }' /proc/cgroups; }
v1mount() { # v1mount CONTROLLERS (comma-separated): a new v1 hierarchy under /sys/fs/cgroup
	local c=$1 ro=
	grep -q ' /sys/fs/cgroup ro,' /proc/self/mountinfo && ro=1
	[ -n "$ro" ] && mount -o remount,rw /sys/fs/cgroup
	mkdir -p "/sys/fs/cgroup/$c" &&
		mount -t cgroup -o "nosuid,nodev,noexec,$c" cgroup "/sys/fs/cgroup/$c" &&
		echo "# mounted the v1 hierarchy $c at /sys/fs/cgroup/$c"
	local st=$?
	if [ "$st" = 0 ] && [[ $c == *,* ]]; then
		for x in ${c//,/ }; do [ -e "/sys/fs/cgroup/$x" ] || ln -s "$c" "/sys/fs/cgroup/$x"; done
	fi
	[ -n "$ro" ] && mount -o remount,ro /sys/fs/cgroup
	return $st
}
echo "# guest /proc/cgroups: $(awk 'NR > 1 { printf "%s(%s) ", $1, $2 }' /proc/cgroups)"
if in_kernel net_cls && in_kernel net_prio && unmounted net_cls && unmounted net_prio; then
	v1mount net_cls,net_prio || nok "mount net_cls,net_prio"
else
	for c in net_cls net_prio; do
		if in_kernel "$c" && unmounted "$c"; then v1mount "$c" || nok "mount $c"; fi
	done
fi
if in_kernel hugetlb && unmounted hugetlb; then v1mount hugetlb || nok "mount hugetlb"; fi
grep ' - cgroup .*\(net_cls\|net_prio\|hugetlb\)' /proc/self/mountinfo | awk '{ print "#   " $5 " " $NF }'

n=0
run_out() { # run_out BUNDLE: foreground run; output in $out, status in $st, id in $cid
	n=$((n + 1))
	cid=vmh$$-$n
	cids+=("$cid")
	out=$(H run --bundle "$bundles/$1" "$cid" 2>&1)
	st=$?
	echo "$out" | sed 's/^/#   /'
}
val() { sed -n "s|^$1=||p" <<<"$out" | head -1; }
leftovers() { # what a run left: state dir, cgroups in any hierarchy, the unit
	local l
	l=$(ls -d /sys/fs/cgroup/*/system.slice/"husk-$cid.scope" 2>/dev/null | tr '\n' ' ')
	[ -e "$root/$cid" ] && l+="state "
	[ "$(systemctl show -P LoadState "husk-$cid.scope")" = not-found ] || l+="unit "
	echo "$l"
}
finish() { # finish: delete the last container; the check that nothing is left
	H delete --force "$cid" >/dev/null 2>&1
	local l
	l=$(leftovers)
	check "nothing left after delete ($cid: ${l:-none})" test -z "$l"
}
refused() { # refused BUNDLE FIELD
	run_out "$1"
	local l
	l=$(leftovers)
	check "$2 without its controller: refused by name, nothing left${l:+ (left: $l)}" \
		test "$st" != 0 -a -z "$l" -a -n "$(grep -F "$2" <<<"$out")"
	H delete --force "$cid" >/dev/null 2>&1
}
has() { in_kernel "$1" && ! unmounted "$1"; }
if has net_cls && has net_prio; then
	run_out v1net
	c=$(val net_cls/net_cls.classid) p=$(val net_prio/net_prio.ifpriomap)
	check "network.classID and priorities read back inside: net_cls.classid=$c, ifpriomap=$p" \
		test "$st" = 0 -a "$c" = 1048577 -a "$p" = "lo 7"
	finish
else
	if has net_cls; then
		run_out v1netcls
		c=$(val net_cls/net_cls.classid)
		check "network.classID read back inside: net_cls.classid=$c (1048577)" \
			test "$st" = 0 -a "$c" = 1048577
		finish
	else
		skip "net_cls: the guest kernel has no net_cls controller (/proc/cgroups)"
		refused v1netcls linux.resources.network.classID
	fi
	if has net_prio; then
		run_out v1netprio
		p=$(val net_prio/net_prio.ifpriomap)
		check "network.priorities read back inside: net_prio.ifpriomap=$p (lo 7)" \
			test "$st" = 0 -a "$p" = "lo 7"
		finish
	else
		skip "net_prio: the guest kernel has no net_prio controller (not in /proc/cgroups: built without CONFIG_CGROUP_NET_PRIO)"
		refused v1netprio linux.resources.network.priorities
	fi
fi
if has hugetlb && [ -d /sys/kernel/mm/hugepages/hugepages-2048kB ]; then
	run_out v1hugetlb
	h=$(val hugetlb/hugetlb.2MB.limit_in_bytes)
	check "hugepageLimits read back inside: hugetlb.2MB.limit_in_bytes=$h (4194304)" \
		test "$st" = 0 -a "$h" = 4194304
	finish
elif has hugetlb; then
	skip "hugetlb: the guest has the controller but no 2MB huge pages (/sys/kernel/mm/hugepages/hugepages-2048kB)"
else
	skip "hugetlb: the guest kernel has no hugetlb controller (not in /proc/cgroups: built without CONFIG_CGROUP_HUGETLB)"
	refused v1hugetlb linux.resources.hugepageLimits
fi

# rootless --systemd-cgroup on v1/hybrid: refused before anything is made (runc refuses too)
rid=vmhr$$
out=$(timeout 300 "$husk" --root "$root" --rootless true --systemd-cgroup run --bundle "$bundles/limits" "$rid" 2>&1)
rc=$?
echo "$out" | sed 's/^/#   /'
check "rootless --systemd-cgroup on v1/hybrid is refused naming cgroup v2" \
	eval '[ "$rc" != 0 ] && grep -q "cgroup v2" <<<"$out"'
check "... leaving no state and no unit" \
	eval '[ ! -e "$root/$rid" ] && [ "$(systemctl show -P LoadState husk-$rid.scope)" = not-found ]'

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
