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
#   runtime supports them), a selinuxLabel is refused by name (SELinux is not enabled).
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
apparmor_parser -R "$bundles/husk-test.aa" >/dev/null 2>&1
finish
