#!/bin/bash
# lsm-checks.sh -- runs INSIDE a plain guest (see run.sh): process.apparmorProfile, `exec
# --apparmor` and process.selinuxLabel end to end, each compared with Debian's runc where that is
# cheap (its behaviour is printed as "# runc: ..." lines; a difference is named in the check).
#
#   lsm-checks.sh apparmor|selinux HUSK BUNDLES
#
# apparmor: the guest booted with lsm=capability,apparmor (AppArmor the major LSM, SELinux off).
#   Loads BUNDLES/husk-test.aa (profile "husk-test": everything allowed except reading
#   /etc/hostname) with apparmor_parser, then: a container with the profile is confined by it
#   (attr/current, the denied read fails with EACCES, an allowed read works), one without is
#   unconfined, `exec --apparmor` / a process.json's apparmorProfile / the container's own profile
#   confine an exec'd process, a profile that is not loaded fails create by field name leaving
#   nothing behind, `features` says apparmor.enabled = selinux.enabled = true (as runc: the
#   runtime supports them), a selinuxLabel is refused by name (SELinux is not enabled). Then
#   `husk up` (a store with BUNDLES/up-image.tar imported): a container that names no profile
#   runs under husk-default, which the first husk up loads with apparmor_parser (counted through
#   a shim in PATH; once also for 4 concurrent ones) and the next reuse; it denies opening
#   /proc/sysrq-trigger for writing and mount with CAP_SYS_ADMIN (EACCES) where
#   apparmor=unconfined does not, and lets ps and kill work among the container's processes;
#   --privileged and apparmor=unconfined run unconfined, apparmor=NAME under NAME; without
#   apparmor_parser husk up fails naming it and leaves nothing; husk restart of a kept container
#   loads it again when it was removed, and so does a run of --restart on-failure; the cost is
#   printed (# cost:).
# selinux: the guest booted with lsm=capability,selinux (SELinux the major LSM, selinuxfs
#   mounted, but no policy loaded; AppArmor built in but not active): a selinuxLabel fails create
#   by field name leaving nothing behind (without a policy the kernel would accept any label and
#   enforce nothing), and so does an apparmorProfile (AppArmor not active), as in runc.
#
# Each check prints "ok - ..." or "not ok - ..."; the last line is "N passed, N failed".
set -u
mode=$1 husk=$2 bundles=$3
runc=/usr/sbin/runc
pass=0 fail=0
ok() { echo "ok - $mode: $*"; pass=$((pass + 1)); }
nok() { echo "not ok - $mode: $*"; fail=$((fail + 1)); }
check() { # check DESC COND...
	local d=$1; shift
	if "$@"; then ok "$d"; else nok "$d"; fi
}
finish() { echo "$pass passed, $fail failed"; [ "$fail" = 0 ]; exit; }

root=$(mktemp -d /tmp/husk-lsm-root.XXXXXX)
rroot=$(mktemp -d /tmp/runc-lsm-root.XXXXXX)
H() { timeout 300 "$husk" --root "$root" "$@"; }
R() { timeout 300 "$runc" --root "$rroot" "$@"; }
ids=() rids=()
n=0
newid() { n=$((n + 1)); id="lsm$$-$n"; ids+=("$id"); }
newrid() { n=$((n + 1)); rid="rlsm$$-$n"; rids+=("$rid"); }
pid_of() { "$@" 2>/dev/null | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' | head -1; }
cleanup() {
	for i in "${ids[@]}"; do "$husk" --root "$root" delete --force "$i" >/dev/null 2>&1; done
	for i in "${rids[@]}"; do "$runc" --root "$rroot" delete --force "$i" >/dev/null 2>&1; done
	rm -rf "$root" "$rroot"
}
trap cleanup EXIT
show() { sed 's/^/#   /' <<<"$1"; }
val() { sed -n "s/^$1=//p" <<<"$out" | head -1; }

# run_out RUNTIME BUNDLE: a foreground run; output in $out, status in $st
run_out() {
	if [ "$1" = husk ]; then newid; out=$(H run --bundle "$bundles/$2" "$id" 2>&1)
	else newrid; out=$(R run --bundle "$bundles/$2" "$rid" 2>&1); fi
	st=$?
	show "$out"
}

# leftovers ID STATEDIR: what a failed create left behind (state dir, cgroup, process)
leftovers() {
	local left= p c
	[ -e "$2/$1" ] && left+=" state:$2/$1"
	c=$(find /sys/fs/cgroup -name "*$1*" 2>/dev/null | head -3)
	[ -n "$c" ] && left+=" cgroup:$c"
	for p in /proc/[0-9]*; do
		[ "${p#/proc/}" = $$ ] && continue
		c=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null) || continue
		case $c in *"$1"*) left+=" process:${p#/proc/}($c)" ;; esac
	done
	echo "${left# }"
}

# refused BUNDLE FIELD WHAT: husk create fails with one line naming FIELD, leaving nothing
# behind; runc's answer to the same bundle is printed
# (into a file: a container that was created after all would hold a pipe open)
refused() {
	local f=$root/create.out
	newid
	H create --bundle "$bundles/$1" "$id" >"$f" 2>&1
	st=$?
	out=$(cat "$f")
	show "$out"
	local left lines
	left=$(leftovers "$id" "$root")
	lines=$(grep -c . <<<"$out")
	check "$3: create fails (status $st), one line (got $lines) naming $2, nothing left${left:+ (left: $left)}" \
		test "$st" != 0 -a "$lines" = 1 -a -z "$left" -a -n "$(grep -F "$2" <<<"$out")"
	H delete --force "$id" >/dev/null 2>&1
	newrid
	R create --bundle "$bundles/$1" "$rid" >"$f" 2>&1
	echo "# runc: create: status $?$(leftovers "$rid" "$rroot" | sed 's/^./, left: &/')"
	show "$(cat "$f")"
	R delete --force "$rid" >/dev/null 2>&1
}

features_lsm() { # features_lsm RUNTIME: linux.{apparmor,selinux}.enabled of `RUNTIME features`
	if [ "$1" = husk ]; then H features; else R features; fi 2>/dev/null |
		jq -r '"apparmor=\(.linux.apparmor.enabled) selinux=\(.linux.selinux.enabled)"'
}

echo "# guest ($mode): LSMs $(cat /sys/kernel/security/lsm 2>/dev/null || echo ?)," \
	"apparmor enabled=$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null || echo -)," \
	"attr/current=$(tr -d '\0\n' </proc/self/attr/current 2>/dev/null)"

if [ "$mode" = selinux ]; then
	# selinuxfs mounted (as on an SELinux host), so runc's go-selinux looks past the mount to the
	# policy: with none loaded every task is in the context "kernel"
	mountpoint -q /sys/fs/selinux || mount -t selinuxfs selinuxfs /sys/fs/selinux
	premise() { grep -q 'selinuxfs$' /proc/filesystems && mountpoint -q /sys/fs/selinux &&
		[ "$(tr -d '\0\n' </proc/self/attr/current)" = kernel ] &&
		[ "$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null)" = N ]; }
	check "premise: SELinux enabled (selinuxfs mounted) without a policy, AppArmor built in but not active" premise
	# without a policy the kernel would take any label (and enforce nothing): refused, as runc does
	refused selinux-label process.selinuxLabel "selinuxLabel with no SELinux policy loaded"

	# AppArmor not active: a profile cannot be applied, so create fails (the process would run
	# unconfined); runc 1.1.5 fails too (EINVAL writing the attribute)
	refused aa-prof process.apparmorProfile "apparmorProfile with AppArmor not active"
	finish
fi

# ------------------------------------------------------------------------- apparmor
[ "$mode" = apparmor ] || { echo "lsm-checks.sh: unknown mode $mode" >&2; exit 2; }
mountpoint -q /sys/kernel/security || mount -t securityfs securityfs /sys/kernel/security
aa_on() { [ "$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null)" = Y ] &&
	[ -d /sys/kernel/security/apparmor ]; }
must() { # must DESC COND...: a check the rest depends on
	local d=$1; shift
	if "$@"; then ok "$d"; else nok "$d"; finish; fi
}
must "premise: AppArmor active (parameters/enabled = Y, securityfs has apparmor/)" aa_on
perr=$(apparmor_parser -r -K "$bundles/husk-test.aa" 2>&1)
[ -z "$perr" ] || show "$perr"
loaded() { grep -qx 'husk-test (enforce)' /sys/kernel/security/apparmor/profiles; }
must "apparmor_parser loaded profile husk-test (enforce)" loaded

# a. a container with the profile
confined() { # the output of the aa-prof/exec probes: confined, denied read EACCES, allowed read ok
	[ "$(val current)" = "husk-test (enforce)" ] &&
		grep -Eq '^denied=.*"errno": ?13[,}]' <<<"$out" && grep -Eq '^allowed=.*"ok": ?true' <<<"$out"
}
run_out husk aa-prof
check "run with apparmorProfile husk-test: attr/current '$(val current)', /etc/hostname read denied (EACCES), /etc/passwd read allowed" \
	eval 'test "$st" = 0 && confined'
husk_out=$out
run_out runc aa-prof
check "runc, same bundle: attr/current '$(val current)', same denied/allowed reads as husk" \
	eval 'test "$st" = 0 && confined && [ "$(grep -v "^time=" <<<"$out")" = "$(grep -v "^time=" <<<"$husk_out")" ]'

# b. a container without a profile
run_out husk aa-none
check "run without apparmorProfile: attr/current '$(val current)' is unconfined, /etc/hostname readable" \
	eval 'test "$st" = 0 -a "$(val current)" = unconfined && grep -Eq "^denied=.*\"ok\": ?true" <<<"$out"'

# c. exec: --apparmor, a process.json's apparmorProfile, the container's own profile
ex() { # ex RUNTIME ID ARGS...: exec, output in $out, status in $st
	local rt=$1; shift
	if [ "$rt" = husk ]; then out=$(H exec "$@" 2>&1); else out=$(R exec "$@" 2>&1); fi
	st=$?
	show "$out"
}
probe=(/bin/sh -c 'echo "current=$(cat /proc/self/attr/current)"; echo "denied=$(/probe read /etc/hostname)"; echo "allowed=$(/probe read /etc/passwd)"')
newid
H run -d --bundle "$bundles/aa-sleep" "$id" >/dev/null 2>&1
ex husk "$id" "${probe[@]}"
check "exec into an unconfined container: attr/current '$(val current)'" test "$st" = 0 -a "$(val current)" = unconfined
ex husk --apparmor husk-test "$id" "${probe[@]}"
check "exec --apparmor husk-test: attr/current '$(val current)', hostname read denied, passwd allowed" \
	eval 'test "$st" = 0 && confined'
ex husk --process "$bundles/aa-exec-process.json" "$id"
check "exec --process with apparmorProfile husk-test: attr/current '$(val current)', hostname read denied" \
	eval 'test "$st" = 0 && confined'
pid=$(pid_of H state "$id")
init_label=$(tr -d '\0\n' <"/proc/$pid/attr/current" 2>/dev/null)
check "the container's init stays unconfined ('$init_label') after the confined execs" test "$init_label" = unconfined
H delete --force "$id" >/dev/null 2>&1
newrid
R run -d --bundle "$bundles/aa-sleep" "$rid" >/dev/null 2>&1
ex runc --apparmor husk-test "$rid" "${probe[@]}"
r1=$(val current)
ex runc --process "$bundles/aa-exec-process.json" "$rid"
r2=$(val current)
check "runc exec --apparmor / --process: attr/current '$r1' / '$r2', as husk" \
	test "$r1" = "husk-test (enforce)" -a "$r2" = "husk-test (enforce)"
R delete --force "$rid" >/dev/null 2>&1

newid
H run -d --bundle "$bundles/aa-sleep-prof" "$id" >/dev/null 2>&1
pid=$(pid_of H state "$id")
init_label=$(tr -d '\0\n' <"/proc/$pid/attr/current" 2>/dev/null)
ex husk "$id" "${probe[@]}"
check "exec into a container run with husk-test: init '$init_label', the exec'd process '$(val current)' (the config's profile)" \
	eval 'test "$init_label" = "husk-test (enforce)" && test "$st" = 0 && confined'
H delete --force "$id" >/dev/null 2>&1
newrid
R run -d --bundle "$bundles/aa-sleep-prof" "$rid" >/dev/null 2>&1
ex runc "$rid" "${probe[@]}"
check "runc: exec into a container run with husk-test: '$(val current)', as husk" test "$(val current)" = "husk-test (enforce)"
R delete --force "$rid" >/dev/null 2>&1

# d. a profile that is not loaded; e. features; and a selinuxLabel with SELinux off
refused aa-missing process.apparmorProfile "apparmorProfile husk-missing (not loaded)"
# runtime-spec: "whether the runtime supports" AppArmor / SELinux, irrelevant to the host
f=$(features_lsm husk) rf=$(features_lsm runc)
check "features: linux.apparmor.enabled and linux.selinux.enabled true (husk: $f; runc: $rf)" \
	test "$f" = "apparmor=true selinux=true" -a "$rf" = "$f"
refused selinux-label process.selinuxLabel "selinuxLabel with SELinux not enabled"

# f. husk up: husk's default profile husk-default (Docker's docker-default), loaded by husk up
# with apparmor_parser when the kernel lacks it. apparmor_parser runs through a shim in PATH that
# counts its runs.
store=$(mktemp -d /tmp/husk-lsm-store.XXXXXX)
shim=$(mktemp -d /tmp/husk-lsm-shim.XXXXXX)
trap '"$husk" --root "$root" rm -f aa-keep >/dev/null 2>&1; cleanup; unload; rm -rf "$store" "$shim"' EXIT
cat >"$shim/apparmor_parser" <<EOF_SHIM
#!/bin/sh
t=\$(date +%s%N)
/usr/sbin/apparmor_parser "\$@"
st=\$?
echo "\$* (\$(( (\$(date +%s%N) - t) / 1000000 )) ms)" >>"$shim/calls"
exit \$st
EOF_SHIM
chmod +x "$shim/apparmor_parser"
export HUSK_STORE=$store
img=husk-lsm-test:latest
U() { PATH=$shim:$PATH timeout 120 "$husk" --root "$root" up --pull never --network none "$@"; }
up_out() { out=$(U --rm "$@" 2>&1); st=$?; show "$out"; }
unload() { printf husk-default >/sys/kernel/security/apparmor/.remove 2>/dev/null; }
aa_loaded() { grep -qx 'husk-default (enforce)' /sys/kernel/security/apparmor/profiles; }
calls() { if [ -e "$shim/calls" ]; then grep -c . "$shim/calls"; else echo 0; fi; }
now() { date +%s%N; }
ms() { echo $((($2 - $1) / 1000000)); }
out=$("$husk" image import -q "$bundles/up-image.tar" "$img" 2>&1)
st=$?
show "$out"
must "husk image import of the test rootfs (status $st)" test "$st" = 0
unload
must "husk-default not loaded before the first husk up" eval '! aa_loaded'

# the first husk up loads it (timed), the next ones find it loaded (timed)
t0=$(now)
up_out "$img" cat /proc/self/attr/current
t1=$(now)
t_load=$(ms "$t0" "$t1")
check "husk up (no option): attr/current '$out', the profile loaded by one apparmor_parser run ($(calls): $(tr '\n' ';' <"$shim/calls" 2>/dev/null))" \
	eval 'test "$st" = 0 -a "$out" = "husk-default (enforce)" -a "$(calls)" = 1 && aa_loaded'
# then 9 runs each with it loaded and with apparmor=unconfined, alternating (the guest is slow
# and noisy: medians)
median() { tr ' ' '\n' | grep . | sort -n | sed -n 5p; }
reuse= unconf=
for i in 1 2 3 4 5 6 7 8 9; do
	t0=$(now)
	U --rm "$img" /bin/true >/dev/null 2>&1 || nok "husk up --rm /bin/true ($i)"
	t1=$(now)
	U --rm --security-opt apparmor=unconfined "$img" /bin/true >/dev/null 2>&1 ||
		nok "husk up --rm apparmor=unconfined /bin/true ($i)"
	t2=$(now)
	reuse+=" $(ms "$t0" "$t1")" unconf+=" $(ms "$t1" "$t2")"
done
check "the loaded profile is reused: $(calls) apparmor_parser run(s) after 10 husk up" test "$(calls)" = 1
echo "# cost: husk up --rm /bin/true loading husk-default: ${t_load} ms (apparmor_parser:" \
	"$(sed 's/.*(//; s/)//' "$shim/calls")); with it loaded: median $(median <<<"$reuse") ms" \
	"(of$reuse); apparmor=unconfined: median $(median <<<"$unconf") ms (of$unconf)"

# what it denies: /proc/sysrq-trigger opened for writing (Docker's read-only /proc paths off, so
# the read-only bind does not answer first), mount (with CAP_SYS_ADMIN, seccomp allowing it)
sysrq=(--security-opt systempaths=unconfined "$img" /probe open-write /proc/sysrq-trigger)
up_out "${sysrq[@]}"
check "husk-default: /proc/sysrq-trigger open for writing denied (EACCES)" \
	eval 'grep -Eq "\"errno\": ?13[,}]" <<<"$out"'
up_out --security-opt apparmor=unconfined "${sysrq[@]}"
check "apparmor=unconfined: the same open succeeds" eval 'test "$st" = 0 && grep -Eq "\"ok\": ?true" <<<"$out"'
up_out --cap-add SYS_ADMIN "$img" /probe syscall mount
check "husk-default with --cap-add SYS_ADMIN: mount denied (EACCES)" \
	eval 'grep -Eq "\"errno\": ?13[,}]" <<<"$out"'
up_out --cap-add SYS_ADMIN --security-opt apparmor=unconfined "$img" /probe syscall mount
check "apparmor=unconfined with --cap-add SYS_ADMIN: mount succeeds" \
	eval 'test "$st" = 0 && grep -Eq "\"ok\": ?true" <<<"$out"'
# (with Docker's capabilities mount fails with EPERM under both: the capability check comes first)
up_out "$img" /bin/sh -c 'sleep 30 & p=$!; ps | grep -q "[s]leep 30" && echo ps=ok; kill $p; wait $p; echo st=$?'
check "husk-default: ps sees and kill signals a process of the same container (st=143)" \
	eval 'grep -qx ps=ok <<<"$out" && grep -qx st=143 <<<"$out"'

# the other choices: --privileged and apparmor=unconfined unconfined, apparmor=NAME that profile
up_out --privileged "$img" cat /proc/self/attr/current
check "--privileged: attr/current '$out' (unconfined, as Docker)" test "$st" = 0 -a "$out" = unconfined
up_out --security-opt apparmor=unconfined "$img" cat /proc/self/attr/current
check "apparmor=unconfined: attr/current '$out'" test "$st" = 0 -a "$out" = unconfined
up_out --security-opt apparmor=husk-test "$img" cat /proc/self/attr/current
check "apparmor=husk-test: attr/current '$out'" test "$st" = 0 -a "$out" = "husk-test (enforce)"
up_out --privileged --security-opt apparmor=husk-test "$img" cat /proc/self/attr/current
check "--privileged with apparmor=husk-test: attr/current '$out' (the profile named, as Docker)" \
	test "$st" = 0 -a "$out" = "husk-test (enforce)"

# concurrent husk ups, the profile not loaded: loaded once
unload
: >"$shim/calls"
pids=()
for i in 1 2 3 4; do
	U --rm "$img" cat /proc/self/attr/current >"$shim/out$i" 2>&1 &
	pids+=($!)
done
good=0
for i in 1 2 3 4; do
	wait "${pids[$((i - 1))]}" && [ "$(cat "$shim/out$i")" = "husk-default (enforce)" ] && good=$((good + 1))
done
check "4 concurrent husk up with husk-default not loaded: $good of 4 confined by it, $(calls) apparmor_parser run" \
	test "$good" = 4 -a "$(calls)" = 1

# a kept container started again after its profile went (as after a reboot): husk restart
# loads it before starting the container
U -d --name aa-keep "$img" sleep 600 >/dev/null 2>&1
"$husk" --root "$root" stop -t 1 aa-keep >/dev/null 2>&1
unload
: >"$shim/calls"
out=$(PATH=$shim:$PATH timeout 120 "$husk" --root "$root" restart aa-keep 2>&1)
st=$?
show "$out"
pid=$(pid_of H state aa-keep)
label=$(tr -d '\0\n' <"/proc/$pid/attr/current" 2>/dev/null)
check "husk restart of a kept container after husk-default was removed (status $st): loaded again ($(calls) apparmor_parser run), the container '$label'" \
	test "$st" = 0 -a "$label" = "husk-default (enforce)" -a "$(calls)" = 1
"$husk" --root "$root" rm -f aa-keep >/dev/null 2>&1

# the same for a run of the restart policy: the first run fails after its profile went, the
# monitor loads it again before the second run
: >"$shim/calls"
U -d --name aa-pol --restart on-failure:1 "$img" sh -c \
	'test -e /again || { touch /again; sleep 5; exit 1; }; cat /proc/self/attr/current; sleep 600' \
	>/dev/null 2>&1
unload
out=
for _ in $(seq 1 60); do
	out=$("$husk" --root "$root" logs aa-pol 2>&1)
	[ -n "$out" ] && break
	sleep 1
done
show "$out"
check "--restart on-failure after husk-default was removed: the second run '$out', loaded again ($(calls) apparmor_parser run)" \
	test "$out" = "husk-default (enforce)" -a "$(calls)" = 1
"$husk" --root "$root" rm -f aa-pol >/dev/null 2>&1

# apparmor_parser missing (a mount namespace with an empty /usr/sbin, PATH without the shim):
# a clear error naming it and the way out, nothing made
unload
out=$(unshare -m sh -c 'mount -t tmpfs none /usr/sbin && PATH=/usr/bin:/bin exec "$@"' sh \
	timeout 120 "$husk" --root "$root" up --rm --pull never --network none "$img" /bin/true 2>&1)
st=$?
show "$out"
left=$(ls -A "$store/containers" 2>/dev/null)
check "apparmor_parser missing: husk up fails (status $st) naming apparmor_parser and apparmor=unconfined, nothing left${left:+ (left: $left)}, nothing loaded" \
	eval 'test "$st" != 0 -a -z "$left" && grep -q "apparmor_parser" <<<"$out" && grep -q "apparmor=unconfined" <<<"$out" && ! aa_loaded'
up_out --security-opt apparmor=unconfined "$img" cat /proc/self/attr/current
check "… and with apparmor=unconfined it runs, needing no profile: '$out'" test "$st" = 0 -a "$out" = unconfined

apparmor_parser -R "$bundles/husk-test.aa" >/dev/null 2>&1
finish
