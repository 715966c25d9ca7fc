#!/bin/bash
# rootless-systemd-checks.sh -- runs INSIDE the systemd guest (see run.sh), sourced by
# guest-checks.sh (section 10) or on its own: rootless `husk --systemd-cgroup` against the
# user's systemd instance of the lingering test user husktest (uid 1000, its bus at
# /run/user/1000/bus), and the same with Debian's runc for comparison.
#
#   rootless-systemd-checks.sh HUSK BUNDLES
#
# Checks: memory.max / pids.max read back inside; the scope in the user manager
# (systemctl --user), its cgroup under user@1000.service and state.json's driver
# "systemd-user"; ps, pause/resume, kill and delete through the user manager, no unit and no
# cgroup left; a limit whose controller the user manager lacks refused by field name with
# nothing left; the podman-like case (husk as root of `unshare --user --map-root-user`,
# cgroupsPath user.slice:libpod:ID).
if ! declare -F check >/dev/null; then
	husk=$1 bundles=$2 mode=systemd
	pass=0 fail=0
	ok() { echo "ok - $mode: $*"; pass=$((pass + 1)); }
	nok() { echo "not ok - $mode: $*"; fail=$((fail + 1)); }
	check() { local d=$1; shift; if "$@"; then ok "$d"; else nok "$d"; fi; }
	wait_for() { local t=$1; shift; for ((i = 0; i < t * 5; i++)); do "$@" && return 0; sleep 0.2; done; return 1; }
	standalone=1
fi

ru=husktest uid=1000
ubus=/run/user/$uid/bus
uroot=$(mktemp -d /tmp/husk-vm-uroot.XXXXXX)
chown "$uid:$uid" "$uroot"
asuser() { runuser -u "$ru" -- env HOME=/home/$ru XDG_RUNTIME_DIR=/run/user/$uid \
	DBUS_SESSION_BUS_ADDRESS=unix:path=$ubus "$@"; }
U() { asuser timeout 300 "$husk" --root "$uroot" --systemd-cgroup "$@"; }
# the podman-like caller: root of a user namespace of husktest (0 -> 1000); PM: with a mount
# namespace of its own too, as podman runs its runtime
P() { asuser timeout 300 unshare --user --map-root-user "$husk" --root "$uroot" --systemd-cgroup "$@"; }
PM() { asuser timeout 300 unshare --user --map-root-user --mount "$husk" --root "$uroot" --systemd-cgroup "$@"; }
R() { asuser timeout 300 runc --root "$uroot/runc" --systemd-cgroup "$@"; }
usysctl() { asuser systemctl --user "$@"; }
ucg=/user.slice/user-$uid.slice/user@$uid.service
unit_gone_u() { local s; s=$(usysctl show -P LoadState "$1" 2>/dev/null)
	[ "$s" = not-found ] || [ "$(usysctl show -P ActiveState "$1" 2>/dev/null)" = inactive ]; }
no_dir() { [ ! -e "/sys/fs/cgroup$1" ]; }
rl_ids=()
rl_cleanup() {
	for i in "${rl_ids[@]}"; do U delete --force "$i" >/dev/null 2>&1; done
	R delete --force rlrunc$$ >/dev/null 2>&1
	rm -rf "$uroot"
}

echo "# rootless systemd: waiting for $ubus (user@$uid.service, linger)"
if ! wait_for 120 test -S "$ubus"; then
	nok "rootless systemd: the user bus $ubus did not appear"
else
	echo "# user@$uid.service delegates: $(cat /sys/fs/cgroup$ucg/cgroup.controllers)"
	echo "# user manager ControlGroup: $(usysctl show -P ControlGroup 2>&1)"

	# 10a. foreground run: limits read back inside
	id=rl$$-1; rl_ids+=("$id")
	out=$(U run --bundle "$bundles/rl-limits" "$id" 2>&1)
	echo "$out" | sed 's/^/#   /'
	check "rootless systemd: memory.max read back inside is 67108864" grep -qx 'memory.max=67108864' <<<"$out"
	check "rootless systemd: pids.max read back inside is 20" grep -qx 'pids.max=20' <<<"$out"
	U delete --force "$id" >/dev/null 2>&1
	check "rootless systemd: no unit husk-$id.scope left after a foreground run" unit_gone_u "husk-$id.scope"

	# 10b. a long-running one: unit, cgroup, state, ps, pause/resume, kill, delete
	id=rl$$-2; rl_ids+=("$id")
	unit=husk-$id.scope
	# (the container keeps create's stdout and stderr: a file, not a pipe)
	U create --bundle "$bundles/rl-long" "$id" >"$uroot/create.log" 2>&1
	sed 's/^/#   /' "$uroot/create.log"
	pid=$(U state "$id" 2>/dev/null | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' | head -1)
	cg=$(sed -n 's/^0:://p' "/proc/${pid:-0}/cgroup" 2>/dev/null)
	want=$ucg/user.slice/$unit
	check "rootless systemd: init's cgroup is $want (${cg:-none})" test "$cg" = "$want"
	st=$(usysctl show -P ActiveState "$unit" 2>&1)
	check "rootless systemd: $unit is active in the user manager ($st)" test "$st" = active
	sys=$(systemctl show -P LoadState "$unit" 2>&1)
	check "rootless systemd: the system manager has no $unit ($sys)" test "$sys" = not-found
	check "rootless systemd: state.json records driver systemd-user" \
		grep -q '"driver": *"systemd-user"' "$uroot/$id/state.json"
	mm=$(cat "/sys/fs/cgroup$cg/memory.max" 2>&1) pm=$(cat "/sys/fs/cgroup$cg/pids.max" 2>&1)
	check "rootless systemd: memory.max $mm, pids.max $pm on the scope" test "$mm $pm" = "67108864 20"
	mx=$(usysctl show -P MemoryMax "$unit" 2>&1)
	check "rootless systemd: the unit's MemoryMax is 67108864 ($mx)" test "$mx" = 67108864
	U start "$id" 2>&1 | sed 's/^/#   /'
	ps=$(U ps --format json "$id" 2>&1)
	check "rootless systemd: ps lists init ($ps)" grep -q "\\b$pid\\b" <<<"$ps"
	U pause "$id" 2>&1 | sed 's/^/#   /'
	fz=$(grep frozen "/sys/fs/cgroup$cg/cgroup.events" 2>&1)
	check "rootless systemd: pause freezes the scope ($fz)" test "$fz" = "frozen 1"
	U resume "$id" 2>&1 | sed 's/^/#   /'
	fz=$(grep frozen "/sys/fs/cgroup$cg/cgroup.events" 2>&1)
	check "rootless systemd: resume thaws it ($fz)" test "$fz" = "frozen 0"
	U update --pids-limit 30 "$id" 2>&1 | sed 's/^/#   /'
	pm=$(cat "/sys/fs/cgroup$cg/pids.max" 2>&1) tm=$(usysctl show -P TasksMax "$unit" 2>&1)
	check "rootless systemd: update --pids-limit 30 (pids.max $pm, TasksMax $tm)" test "$pm $tm" = "30 30"
	U kill --all "$id" KILL 2>&1 | sed 's/^/#   /'
	stopped() { U state "$id" 2>/dev/null | grep -q '"status": *"stopped"'; }
	check "rootless systemd: kill --all KILL stops it" wait_for 60 stopped
	U delete "$id" 2>&1 | sed 's/^/#   /'
	check "rootless systemd: no $unit in the user manager after delete" wait_for 30 unit_gone_u "$unit"
	check "rootless systemd: no cgroup ${cg:-?} left after delete" wait_for 30 no_dir "${cg:-/nonexistent-x}"

	# 10c. a limit whose controller user@1000.service does not delegate: refused by field name,
	# nothing left
	have=$(cat /sys/fs/cgroup$ucg/cgroup.controllers)
	for b in io:rl-io:linux.resources.blockIO cpuset:rl-cpuset:linux.resources.cpu.cpus; do
		IFS=: read -r c bundle field <<<"$b"
		if grep -qw "$c" <<<"$have"; then
			echo "# skip: user@$uid.service delegates $c"
			continue
		fi
		id=rl$$-$c; rl_ids+=("$id")
		out=$(U run --bundle "$bundles/$bundle" "$id" 2>&1); rc=$?
		echo "$out" | sed 's/^/#   /'
		check "rootless systemd: $field without the $c controller is refused by name" \
			eval '[ "$rc" != 0 ] && grep -q "$field" <<<"$out"'
		check "rootless systemd: ... leaving no unit husk-$id.scope" unit_gone_u "husk-$id.scope"
		check "rootless systemd: ... and no cgroup" no_dir "$ucg/user.slice/husk-$id.scope"
	done

	# 10d. podman-like: husk as root of a user namespace of husktest (rootless auto-detected),
	# cgroupsPath user.slice:libpod:vmpodman
	id=rl$$-pod; rl_ids+=("$id")
	out=$(P run --bundle "$bundles/rl-podman" "$id" 2>&1)
	echo "$out" | sed 's/^/#   /'
	check "rootless systemd (in a user namespace): memory.max and pids.max read back inside" \
		eval 'grep -qx memory.max=67108864 <<<"$out" && grep -qx pids.max=20 <<<"$out"'
	P delete --force "$id" >/dev/null 2>&1
	check "rootless systemd (in a user namespace): no libpod-vmpodman.scope left" unit_gone_u libpod-vmpodman.scope
	check "rootless systemd (in a user namespace): no cgroup left" no_dir "$ucg/user.slice/libpod-vmpodman.scope"
	id=rl$$-podm; rl_ids+=("$id")
	out=$(PM run --bundle "$bundles/rl-podman" "$id" 2>&1)
	echo "$out" | sed 's/^/#   /'
	check "rootless systemd (in user and mount namespaces): memory.max and pids.max read back inside" \
		eval 'grep -qx memory.max=67108864 <<<"$out" && grep -qx pids.max=20 <<<"$out"'
	PM delete --force "$id" >/dev/null 2>&1
	check "rootless systemd (in user and mount namespaces): no unit, no cgroup left" \
		eval 'unit_gone_u libpod-vmpodman.scope && no_dir "$ucg/user.slice/libpod-vmpodman.scope"'

	# 10e. no session bus: a clear error naming what was tried
	out=$(asuser env -u DBUS_SESSION_BUS_ADDRESS -u XDG_RUNTIME_DIR timeout 300 "$husk" \
		--root "$uroot" --systemd-cgroup run --bundle "$bundles/rl-limits" rl$$-nobus 2>&1)
	echo "$out" | sed 's/^/#   /'
	check "rootless systemd: without a session bus, the error names DBUS_SESSION_BUS_ADDRESS and XDG_RUNTIME_DIR" \
		eval 'grep -q DBUS_SESSION_BUS_ADDRESS <<<"$out" && grep -q XDG_RUNTIME_DIR <<<"$out"'
	out=$(asuser env -u DBUS_SESSION_BUS_ADDRESS XDG_RUNTIME_DIR=/nonexistent timeout 300 "$husk" \
		--root "$uroot" --systemd-cgroup run --bundle "$bundles/rl-limits" rl$$-nobus 2>&1)
	echo "$out" | sed 's/^/#   /'
	check "rootless systemd: with XDG_RUNTIME_DIR=/nonexistent, the error names /nonexistent/bus" \
		grep -q /nonexistent/bus <<<"$out"
	check "rootless systemd: ... and no state is left" test ! -e "$uroot/rl$$-nobus"

	# 10f. the same bundles with Debian's runc, as husktest (for comparison; not counted as husk's)
	id=rlrunc$$
	mkdir -p "$uroot/runc" && chown "$uid:$uid" "$uroot/runc"
	out=$(R run --bundle "$bundles/rl-limits" "$id" 2>&1); rc=$?
	echo "# runc --systemd-cgroup run (rootless), status $rc:"
	echo "$out" | sed 's/^/#   /'
	R delete --force "$id" >/dev/null 2>&1
	for ns in "--user" "--user --mount"; do
		# shellcheck disable=SC2086 # one option per word
		out=$(asuser timeout 300 unshare $ns --map-root-user runc --root "$uroot/runc" --systemd-cgroup \
			run --bundle "$bundles/rl-podman" "$id-pod" 2>&1); rc=$?
		echo "# runc in new namespaces $ns (podman-like), status $rc:"
		echo "$out" | sed 's/^/#   /'
		# shellcheck disable=SC2086
		asuser unshare $ns --map-root-user runc --root "$uroot/runc" --systemd-cgroup delete --force "$id-pod" >/dev/null 2>&1
	done
	for c in io:rl-io cpuset:rl-cpuset; do
		IFS=: read -r c bundle <<<"$c"
		grep -qw "$c" <<<"$have" && continue
		out=$(R run --bundle "$bundles/$bundle" "$id-$c" 2>&1); rc=$?
		echo "# runc with the $c limit (not delegated), status $rc:"
		echo "$out" | sed 's/^/#   /'
		echo "#   unit left: $(usysctl show -P LoadState "runc-$id-$c.scope" 2>&1)/$(usysctl show -P ActiveState "runc-$id-$c.scope" 2>&1)"
		R delete --force "$id-$c" >/dev/null 2>&1
	done
fi
rl_cleanup
if [ -n "${standalone:-}" ]; then
	echo "$pass passed, $fail failed"
	[ "$fail" = 0 ]
fi
