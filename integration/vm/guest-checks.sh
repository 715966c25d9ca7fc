#!/bin/bash
# guest-checks.sh -- runs INSIDE the cgroup v2 guest (see run.sh): husk's cgroups root tests,
# then real containers with the built husk and the test rootfs; section 8 reads every resource
# back from inside, or checks that one whose controller the guest lacks is refused by name;
# section 9 checks cgroup v2 delegation to a user-namespaced container; in the systemd guest,
# section 10 (rootless-systemd-checks.sh) checks rootless --systemd-cgroup containers of the
# lingering user husktest against its own systemd instance, directly and from a user namespace
# (as rootless podman), and prints Debian's runc doing the same for comparison.
#
#   guest-checks.sh plain|systemd HUSK TESTBIN BUNDLES [FAULTSBIN FAULTS SEED RECOVERYBIN]
#
# FAULTSBIN (systemd only, section 11): the test binary of tests/faults.rs, run with the systemd
# driver for FAULTS injections (SEED replays a run; empty: the test seeds from the clock).
# RECOVERYBIN (plain only, (a2)): the test binary of tests/recovery.rs, for its freeze stuck
# half way (needs /dev/fuse: run.sh boots the plain guest with the fuse module).
#
# BUNDLES holds one config.json per check, prepared on the host (the guest may have no jq).
# Each check prints "ok - ..." or "not ok - ..."; the last line is "N passed, N failed".
# Nothing is timed: the guest is 20-50x slower than the host; every wait is a generous poll.
set -u
mode=$1 husk=$2 testbin=$3 bundles=$4 faultsbin=${5:-} faults=${6:-90} fault_seed=${7:-}
recoverybin=${8:-}
pass=0 fail=0
ok() { echo "ok - $mode: $*"; pass=$((pass + 1)); }
nok() { echo "not ok - $mode: $*"; fail=$((fail + 1)); }
check() { # check DESC COND...
	local d=$1; shift
	if "$@"; then ok "$d"; else nok "$d"; fi
}

fs=$(stat -fc %T /sys/fs/cgroup)
[ "$fs" = cgroup2fs ] || { echo "guest /sys/fs/cgroup is $fs, not cgroup2" >&2; exit 3; }
echo "# guest ($mode): cgroup2, controllers: $(cat /sys/fs/cgroup/cgroup.subtree_control)"

# (a) the cgroups root/unit tests of the library
if [ -n "$testbin" ]; then
	"$testbin" --test-threads=1 cgroups 2>&1 | sed 's/^/#   /'
	if [ "${PIPESTATUS[0]}" = 0 ]; then
		ok "cgroups library tests (root tests included)"
	else
		nok "cgroups library tests (root tests included)"
	fi
fi

# (a2) a freeze stuck half way (cgroup.freeze 1, cgroup.events frozen 0: a task of the container
# waits on a FUSE server that never reads its request), with and without a pid namespace:
# state says paused, resume thaws, delete --force removes everything (tests/recovery.rs)
if [ "$mode" = plain ] && [ -n "$recoverybin" ]; then
	out=$(HUSK_BIN="$husk" timeout 600 "$recoverybin" stuck_freezing --test-threads=1 --nocapture 2>&1)
	st=$?
	echo "$out" | sed 's/^/#   /'
	stuck_ok() { [ "$st" = 0 ] && grep -q '^test result: ok\. 2 passed' <<<"$out" && ! grep -q 'SKIP cgroup_stuck_freezing' <<<"$out"; }
	check "a freeze stuck half way (FUSE wait): state paused, resume thaws, delete --force leaves nothing (with and without a pid namespace)" stuck_ok
fi

# (b) containers
root=$(mktemp -d /tmp/husk-vm-root.XXXXXX)
sdflag=()
[ "$mode" = systemd ] && sdflag=(--systemd-cgroup)
H() { timeout 300 "$husk" --root "$root" "${sdflag[@]}" "$@"; }
ids=()
n=0
newid() { n=$((n + 1)); id="vmt$$-$n"; ids+=("$id"); }
pid_of() { H state "$1" 2>/dev/null | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' | head -1; }
cg_of() { sed -n 's/^0:://p' "/proc/$1/cgroup" 2>/dev/null; }
gone() { [ -n "$1" ] && [ ! -e "/sys/fs/cgroup$1" ]; }
unit_gone() { [ "$mode" != systemd ] || [ "$(systemctl show -P LoadState "$1" 2>/dev/null)" = not-found ] ||
	[ "$(systemctl show -P ActiveState "$1" 2>/dev/null)" = inactive ]; }
wait_for() { # wait_for SECS CMD...: poll until CMD succeeds
	local t=$1; shift
	for ((i = 0; i < t * 5; i++)); do "$@" && return 0; sleep 0.2; done
	return 1
}
cleanup() {
	for i in "${ids[@]}"; do "$husk" --root "$root" "${sdflag[@]}" delete --force "$i" >/dev/null 2>&1; done
	rm -rf "$root"
}
trap cleanup EXIT

# 1. memory and pids limits read back from inside (foreground run)
newid
out=$(H run --bundle "$bundles/limits" "$id" 2>&1)
echo "$out" | sed 's/^/#   /'
check "memory.max read back inside is 67108864" grep -qx 'memory.max=67108864' <<<"$out"
check "pids.max read back inside is 20" grep -qx 'pids.max=20' <<<"$out"
H delete --force "$id" >/dev/null 2>&1

# 2. fork bomb stops at pids.max
newid
out=$(H run --bundle "$bundles/forkbomb" "$id" 2>&1)
echo "$out" | grep -v '^#' | tail -3 | sed 's/^/#   /'
forked=$(sed -n 's/.*"forked": *\([0-9]*\).*/\1/p' <<<"$out" | head -1)
bomb_ok() { grep -q '"errno": *11[,}]' <<<"$out" && [ -n "$forked" ] && [ "$forked" -lt 20 ]; }
check "fork bomb stopped at pids.max with EAGAIN (forked ${forked:-?} < 20)" bomb_ok
H delete --force "$id" >/dev/null 2>&1

# 3. a memory hog is OOM-killed; the OOM shows in `husk events` and memory.events
newid
oomid=$id
H create --bundle "$bundles/oom" "$id" >/dev/null 2>&1
pid=$(pid_of "$id")
cg=$(cg_of "$pid")
evf=$(mktemp /tmp/husk-vm-events.XXXXXX)
H events "$id" >"$evf" 2>&1 &
evpid=$!
sleep 2
H start "$id"
wait_for 240 sh -c "grep -q '\"oom\"' $evf" 
check "memory hog OOM-killed: oom event from husk events" grep -q '"type": *"oom"' "$evf"
oomk=$(sed -n 's/^oom_kill //p' "/sys/fs/cgroup$cg/memory.events" 2>/dev/null)
check "memory.events oom_kill=$oomk >= 1" test "${oomk:-0}" -ge 1
kill "$evpid" 2>/dev/null; wait "$evpid" 2>/dev/null
head -3 "$evf" | sed 's/^/#   /'
rm -f "$evf"
H delete --force "$id" >/dev/null 2>&1
check "no cgroup left after delete (oom container, $cg)" gone "$cg"

# 4. update --memory changes the live value; 5. pause/resume; 6. a denied device
newid
lid=$id
H run -d --bundle "$bundles/long" "$id" >/dev/null 2>&1
pid=$(pid_of "$id")
cg=$(cg_of "$pid")
check "long-running container started (pid ${pid:-none}, cgroup ${cg:-none})" test -n "$pid" -a -n "$cg"
if [ "$mode" = systemd ]; then
	unit=husk-$id.scope
	check "cgroup is system.slice/$unit" test "$cg" = "/system.slice/$unit"
	mm=$(systemctl show -P MemoryMax "$unit")
	tm=$(systemctl show -P TasksMax "$unit")
	check "systemctl show $unit: MemoryMax=$mm (67108864), TasksMax=$tm (64)" test "$mm" = 67108864 -a "$tm" = 64
	dp=$(systemctl show -P DevicePolicy "$unit")
	da=$(systemctl show -P DeviceAllow "$unit")
	echo "#   DeviceAllow=$da"
	devs_ok() { [ "$dp" = strict ] && grep -q 'char-pts rwm' <<<"$da"; }
	check "$unit: DevicePolicy=$dp (strict), DeviceAllow has char-pts rwm" devs_ok
	ts=$(systemctl show -P TimeoutStopUSec "$unit")
	cm=$(systemctl show -P CollectMode "$unit")
	ann_ok() { [ "$ts" = 7s ] && [ "$cm" = inactive-or-failed ]; }
	check "org.systemd.property.* annotations: TimeoutStopUSec=$ts (7s), CollectMode=$cm" ann_ok
	st=$(systemctl show -P ActiveState "$unit")
	check "$unit is active ($st)" test "$st" = active
fi
H update --memory 134217728 "$id"
inside=$(H exec "$id" cat /sys/fs/cgroup/memory.max 2>&1)
check "update --memory: memory.max inside is now 134217728 ($inside)" test "$inside" = 134217728
if [ "$mode" = systemd ]; then
	mm=$(systemctl show -P MemoryMax "$unit")
	check "update --memory: unit MemoryMax=$mm" test "$mm" = 134217728
fi
# the counter is written to c.new and renamed over c: a read sees a whole number, never the
# empty file between a truncation and its write
c() { cat "/proc/$pid/root/dev/shm/c" 2>/dev/null; }
wait_for 60 sh -c "[ -s /proc/$pid/root/dev/shm/c ]"
H pause "$id"
stp=$(H state "$id" | sed -n 's/.*"status": *"\([a-z]*\)".*/\1/p')
c1=$(c); sleep 3; c2=$(c)
check "pause: status $stp, counter stopped ($c1 -> $c2)" test "$stp" = paused -a -n "$c1" -a "$c1" = "$c2"
H resume "$id"
wait_for 60 sh -c "[ -s /proc/$pid/root/dev/shm/c ] && [ \"\$(cat /proc/$pid/root/dev/shm/c)\" != '$c2' ]"
c3=$(c)
check "resume: counter runs again ($c2 -> $c3)" test -n "$c3" -a "$c3" != "$c2"
# 5b. the cgroup frozen behind husk's back (what a pause killed after its freeze leaves):
# state reads the freezer, resume thaws it
echo 1 >"/sys/fs/cgroup$cg/cgroup.freeze"
wait_for 60 grep -qx 'frozen 1' "/sys/fs/cgroup$cg/cgroup.events"
stp=$(H state "$id" | sed -n 's/.*"status": *"\([a-z]*\)".*/\1/p')
check "frozen by hand: status $stp (paused)" test "$stp" = paused
H resume "$id"
c4=$(c)
wait_for 60 sh -c "[ -s /proc/$pid/root/dev/shm/c ] && [ \"\$(cat /proc/$pid/root/dev/shm/c)\" != '$c4' ]"
c5=$(c)
check "frozen by hand: resume thaws it (counter $c4 -> $c5)" test -n "$c5" -a "$c5" != "$c4"
dev=$(H exec "$id" sh -c 'mknod /dev/vmtdev b 98 0 && head -c1 /dev/vmtdev >/dev/null; echo rc=$?' 2>&1)
echo "$dev" | sed 's/^/#   /'
check "a denied device (b 98:0) cannot be opened (EPERM)" grep -q 'Operation not permitted' <<<"$dev"
null=$(H exec "$id" sh -c 'echo x >/dev/null && echo null-ok' 2>&1)
check "an allowed device (/dev/null) can be opened" test "$null" = null-ok
H kill "$id" KILL
wait_for 60 sh -c "! kill -0 $pid 2>/dev/null"
# 6a. kill --all of the stopped container, as containerd's shim sends it when it deletes an
# exited task: with systemd its scope's cgroup went with its last process (nothing left to
# signal is no error, runc alike); without, the cgroup is there still
if [ "$mode" = systemd ]; then
	wait_for 60 gone "$cg"
	check "systemd removed the scope's cgroup ($cg) once its processes died" gone "$cg"
fi
out=$(H kill --all "$id" KILL 2>&1)
check "kill --all KILL of the stopped container succeeds" test $? = 0 -a -z "$out"
[ -z "$out" ] || echo "$out" | sed 's/^/#   /'
H delete --force "$id" >/dev/null 2>&1
check "no cgroup left after delete ($cg)" gone "$cg"
[ "$mode" = systemd ] && check "unit $unit gone after delete" unit_gone "$unit"

# 6b. a linux.devices node grants no access: /dev/kmsg listed only as a node, under the spec's
# deny-all, cannot be opened (the eBPF program; with systemd also DeviceAllow)
newid
out=$(H run --bundle "$bundles/devnode" "$id" 2>&1)
echo "$out" | sed 's/^/#   /'
check "a linux.devices node without a resources rule (/dev/kmsg) cannot be opened (EPERM)" \
	grep -q '"errno": *1[,}]' <<<"$out"
H delete --force "$id" >/dev/null 2>&1
# 6b. delete --force of a container whose cgroup was frozen by hand: thawed, killed, removed
newid
H run -d --bundle "$bundles/long" "$id" >/dev/null 2>&1
fpid=$(pid_of "$id")
fcg=$(cg_of "$fpid")
echo 1 >"/sys/fs/cgroup$fcg/cgroup.freeze"
wait_for 60 grep -qx 'frozen 1' "/sys/fs/cgroup$fcg/cgroup.events"
H delete --force "$id" >/dev/null 2>&1
rc=$?
frozen_delete_ok() { [ "$rc" = 0 ] && [ -n "$fcg" ] && gone "$fcg" && ! kill -0 "$fpid" 2>/dev/null; }
check "frozen by hand: delete --force (rc $rc) kills pid ${fpid:-none}, removes ${fcg:-none}" frozen_delete_ok
[ "$mode" = systemd ] && check "frozen by hand: unit husk-$id.scope gone" unit_gone "husk-$id.scope"

# 7. systemd: cgroupsPath slice:prefix:name with a nested slice
if [ "$mode" = systemd ]; then
	newid
	H run -d --bundle "$bundles/nested" "$id" >/dev/null 2>&1
	pid=$(pid_of "$id")
	cg=$(cg_of "$pid")
	want=/husktest.slice/husktest-nested.slice/hx-vmnested.scope
	check "cgroupsPath husktest-nested.slice:hx:vmnested -> $cg" test "$cg" = "$want"
	sl=$(systemctl show -P Slice hx-vmnested.scope)
	check "hx-vmnested.scope is in slice $sl" test "$sl" = husktest-nested.slice
	H delete --force "$id" >/dev/null 2>&1
	check "no cgroup left after delete ($want)" gone "$want"
	check "unit hx-vmnested.scope gone after delete" unit_gone hx-vmnested.scope
fi

# 8. every resource read back from inside, or, where this kernel lacks the controller, refused
# with the spec field named and nothing left behind (runc fails for the same ones)
skip() { echo "# SKIP $mode: $*"; }
has_ctrl() { grep -qw "$1" /sys/fs/cgroup/cgroup.controllers; }
run_out() { # run_out BUNDLE: run it in the foreground; output in $out, status in $st
	newid
	out=$(H run --bundle "$1" "$id" 2>&1)
	st=$?
	echo "$out" | sed 's/^/#   /'
}
val() { sed -n "s/^$1=//p" <<<"$out" | head -1; }
readback() { # readback DESC FILE=VALUE...
	local d=$1 kv bad=""
	shift
	for kv in "$@"; do
		[ "$(val "${kv%%=*}")" = "${kv#*=}" ] || bad+=" ${kv%%=*}"
	done
	check "$d read back inside${bad:+ (wrong:$bad)}" test "$st" = 0 -a -z "$bad"
	H delete --force "$id" >/dev/null 2>&1
}
refused() { # refused BUNDLE FIELD: fails naming FIELD, leaves no state, cgroup or unit
	run_out "$bundles/$1"
	local left
	left=$(find /sys/fs/cgroup \( -name "$id" -o -name "husk-$id.scope" \) 2>/dev/null | head -3)
	[ -e "$root/$id" ] && left+=" state:$root/$id"
	unit_gone "husk-$id.scope" || left+=" unit:husk-$id.scope"
	check "$2 without its controller: refused by name, nothing left${left:+ (left:$left)}" \
		test "$st" != 0 -a -z "$left" -a -n "$(grep -F "$2" <<<"$out")"
	H delete --force "$id" >/dev/null 2>&1
}
run_out "$bundles/v2res"
readback "memory.max, memory.swap.max, memory.low, cpu.weight, cpu.max, cpu.max.burst, unified pids.max and memory.high" \
	memory.max=67108864 memory.swap.max=33554432 memory.low=33554432 cpu.weight=59 \
	"cpu.max=50000 100000" cpu.max.burst=20000 pids.max=33 memory.high=50331648
# with shares too: runc does not write cpu.weight for an idle group (the kernel refuses it)
run_out "$bundles/idle"
readback "cpu.idle (with shares given)" cpu.idle=1
run_out "$bundles/rt"
check "cpu.realtimeRuntime/Period ignored on v2 with a warning, as runc" \
	test "$st" = 0 -a -n "$(grep -x rt-ran <<<"$out")" -a -n "$(grep 'realtime.*ignored' <<<"$out")"
H delete --force "$id" >/dev/null 2>&1
if has_ctrl cpuset; then
	run_out "$bundles/cpuset"
	readback "cpuset.cpus, cpuset.mems" cpuset.cpus=0 cpuset.mems=0
else
	refused cpuset linux.resources.cpu.cpus
fi
if has_ctrl hugetlb; then
	run_out "$bundles/hugetlb"
	readback "hugetlb.2MB.max" hugetlb.2MB.max=4194304
else
	refused hugetlb linux.resources.hugepageLimits
fi
if has_ctrl rdma; then
	skip "rdma: the guest has the controller but no RDMA device to limit"
else
	refused rdma linux.resources.rdma
fi
# io.weight exists (iocost or BFQ) only below the root: look in a throw-away child
probe=/sys/fs/cgroup/husk-vm-ioprobe-$$
mkdir "$probe" 2>/dev/null
has_weight=no
[ -e "$probe/io.weight" ] && has_weight=yes
rmdir "$probe" 2>/dev/null
if [ "$has_weight" = yes ]; then
	run_out "$bundles/ioweight"
	readback "io.weight" "io.weight=default 4950"
else
	# runc's fs2 setIo writes io.weight all the same and fails
	refused ioweight linux.resources.blockIO.weight
fi
dev=$(cat /sys/block/*/dev 2>/dev/null | head -1)
if [ -n "$dev" ] && has_ctrl io; then
	iob=$(mktemp -d /tmp/husk-vm-iomax.XXXXXX)
	sed "s/4242/${dev%%:*}/g; s/4343/${dev#*:}/g" "$bundles/iomax/config.json" >"$iob/config.json"
	run_out "$iob"
	readback "io.max ($dev)" "io.max=$dev rbps=1048576 wbps=max riops=max wiops=400"
	rm -rf "$iob"
else
	skip "io.max: the guest has no block device (or no io controller)"
fi

# 9. cgroup v2 delegation (runtime-spec config-linux.md "Cgroup ownership"): with a new user
# namespace (0 -> 100000), a new cgroup namespace and /sys/fs/cgroup mounted rw, the container's
# cgroup directory and the files of /sys/kernel/cgroup/delegate belong to the host id root maps
# to; nothing else changes owner; read-only, or without a user namespace, nothing changes
own() { stat -c %u:%g "$@" 2>&1 | tr '\n' ' ' | sed 's/ $//'; }
start_long() { # start_long BUNDLE: detached; sets id, pid, cg
	newid
	# (not into a pipe: the detached container keeps its stdout open)
	local f
	f=$(mktemp /tmp/husk-vm-out.XXXXXX)
	H run -d --bundle "$bundles/$1" "$id" >"$f" 2>&1
	sed 's/^/#   /' "$f"
	rm -f "$f"
	pid=$(pid_of "$id")
	cg=$(cg_of "$pid")
}
start_long owner
if [ -z "$pid" ] || [ -z "$cg" ]; then
	nok "delegation: container with user+cgroup namespaces and rw cgroupfs did not start"
else
	d=/sys/fs/cgroup$cg
	dl=$(tr '\n' ' ' </sys/kernel/cgroup/delegate 2>/dev/null)
	echo "#   /sys/kernel/cgroup/delegate: ${dl:-absent}"
	host=$(own "$d" "$d/cgroup.procs" "$d/cgroup.subtree_control" "$d/cgroup.threads")
	check "delegation: host owner of the cgroup dir, cgroup.procs, .subtree_control, .threads ($host)" \
		test "$host" = "100000:100000 100000:100000 100000:100000 100000:100000"
	# every other listed file this cgroup has (memory.oom.group, memory.reclaim on 6.1)
	bad=""
	for f in $dl; do
		[ ! -e "$d/$f" ] || [ "$(own "$d/$f")" = 100000:100000 ] || bad+=" $f"
	done
	check "delegation: every file of the delegate list present here is 100000:100000${bad:+ (not:$bad)}" \
		test -z "$bad"
	other=$(own "$d/memory.max" "$d/pids.max" "$d/cgroup.max.depth")
	check "delegation: memory.max, pids.max, cgroup.max.depth keep owner 0:0 ($other)" \
		test "$other" = "0:0 0:0 0:0"
	inside=$(H exec "$id" stat -c %u:%g /sys/fs/cgroup /sys/fs/cgroup/cgroup.procs 2>&1 | tr '\n' ' ' | sed 's/ $//')
	check "delegation: inside, /sys/fs/cgroup and its cgroup.procs are owned by 0:0 ($inside)" \
		test "$inside" = "0:0 0:0"
	sub=$(H exec "$id" sh -c 'cd /sys/fs/cgroup && mkdir dlg && echo $$ >dlg/cgroup.procs && echo moved
		echo $$ >cgroup.procs; rmdir dlg && echo removed' 2>&1 | tr '\n' ' ')
	check "delegation: root inside creates a child cgroup, moves itself in and out ($sub)" \
		test "$sub" = "moved removed "
fi
H delete --force "$id" >/dev/null 2>&1
check "delegation: no cgroup left after delete (${cg:-none})" gone "$cg"
for v in owner-ro owner-nouserns; do
	start_long "$v"
	if [ -z "$pid" ] || [ -z "$cg" ]; then
		nok "delegation ($v): container did not start"
	else
		d=/sys/fs/cgroup$cg
		host=$(own "$d" "$d/cgroup.procs")
		case $v in
		owner-ro) why="user namespace but /sys/fs/cgroup read-only" ;;
		*) why="/sys/fs/cgroup rw but no user namespace" ;;
		esac
		check "no delegation ($why): cgroup dir and cgroup.procs stay 0:0 ($host)" test "$host" = "0:0 0:0"
	fi
	H delete --force "$id" >/dev/null 2>&1
done

# 10. rootless --systemd-cgroup: the user's systemd instance (systemd guest only)
if [ "$mode" = systemd ]; then
	# shellcheck source=rootless-systemd-checks.sh
	. "$(dirname "$0")/rootless-systemd-checks.sh"
fi

# 11. fault injection with the systemd driver (tests/faults.rs, systemd guest only): husk killed
# with SIGKILL at each step boundary and at random moments of create, start, exec, delete, run,
# kill, pause, resume and update, then delete --force; no process, mount, cgroup, state entry or
# husk-*.scope unit may remain (the test's own checks, HUSK_TEST_SYSTEMD_CGROUP=1). Time limits
# scaled 10x for the guest (a hang: 300 s, a delete --force: 50 s).
if [ "$mode" = systemd ] && [ -n "$faultsbin" ]; then
	out=$(env HUSK_TEST_SYSTEMD_CGROUP=1 HUSK_BIN="$husk" HUSK_FAULTS="$faults" \
		HUSK_FAULT_TIME_SCALE=10 ${fault_seed:+HUSK_FAULT_SEED="$fault_seed"} \
		timeout 1200 "$faultsbin" --exact sigkill_at_every_step_and_random_moments_leaves_nothing \
		--test-threads=1 --nocapture 2>&1)
	st=$?
	echo "$out" | sed 's/^/#   /'
	seed=$(sed -n 's/^.*faults: seed \([0-9]*\) .*$/\1/p' <<<"$out" | head -1)
	faults_ok() { [ "$st" = 0 ] && grep -q '^test result: ok\. 1 passed' <<<"$out"; }
	check "fault injection, systemd driver: $faults kill -9 (seed ${seed:-?}, HUSK_FAULT_SEED replays), then delete --force: no process, mount, cgroup, state or husk-*.scope left" faults_ok
fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
