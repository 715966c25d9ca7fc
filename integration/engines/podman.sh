#!/usr/bin/env bash
# podman + conmon running HUSK_BIN: storage, run root, tmp dir, config and cgroup parent all
# PRIVATE under a temp dir (cgroupfs manager, file events backend, no network), an image
# imported from the test rootfs, everyday podman use checked from inside the container.
#   HUSK_BIN=/usr/sbin/runc bash integration/engines/podman.sh   # validate the script with runc
set -uo pipefail
. "$(dirname "$0")/lib.sh"

need_root "podman integration"
need_pkgs podman:podman conmon:conmon catatonit:catatonit script:bsdutils
make_tmp podman
IMG=localhost/husk-test:latest
# podman's locks are POSIX shm /dev/shm/libpod_lock whatever its roots: remove it afterwards
# if this run created it
LOCK=/dev/shm/libpod_lock
LOCK_EXISTED=; [ -e "$LOCK" ] && LOCK_EXISTED=1

mkdir -p "$TMP/root" "$TMP/runroot" "$TMP/tmp" "$TMP/net"
cat >"$TMP/containers.conf" <<EOT
[containers]
# podman as root raises nofile to 1048576, which fails (EPERM) where this shell's hard limit is
# lower and it lacks CAP_SYS_RESOURCE (e.g. inside another container): keep the current limits
default_ulimits = ["nofile=$(ulimit -Sn):$(ulimit -Hn)", "nproc=4096:4096"]
init_path = "$(command -v catatonit)"
[network]
network_config_dir = "$TMP/net"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$TMP/events.log"
conmon_path = ["$(command -v conmon)"]
EOT
cat >"$TMP/storage.conf" <<EOT
[storage]
driver = "overlay"
graphroot = "$TMP/root"
runroot = "$TMP/runroot"
EOT
echo 'unqualified-search-registries = []' >"$TMP/registries.conf"
export CONTAINERS_CONF=$TMP/containers.conf CONTAINERS_STORAGE_CONF=$TMP/storage.conf
export CONTAINERS_REGISTRIES_CONF=$TMP/registries.conf
PM=(podman --root "$TMP/root" --runroot "$TMP/runroot" --tmpdir "$TMP/tmp" --storage-driver overlay
    --runtime "$HUSK_BIN" --cgroup-manager cgroupfs --events-backend file)
# No --runtime-flag root=...: podman 4.3 leaves it off some calls (restart's delete --force),
# so the runtime keeps its default root (/run/husk, /run/runc); delete removes each container's.
R=("${PM[@]}" run --network none --cgroup-parent "/$CGPARENT")

engine_cleanup() {
    # the rootless section's containers and pause process (defined there)
    type rootless_cleanup >/dev/null 2>&1 && rootless_cleanup
    timeout 60 "${PM[@]}" pod rm -af >/dev/null 2>&1
    timeout 60 "${PM[@]}" rm -af -t 0 >/dev/null 2>&1
    timeout 30 "${PM[@]}" system prune -f >/dev/null 2>&1
    [ -n "$LOCK_EXISTED" ] || rm -f "$LOCK"
}

out=$("${PM[@]}" import "$(image_tar)" "$IMG" 2>&1) || die_setup "podman import of the test rootfs" "$out"
pass "podman import of the test rootfs"
rtlog() { [ -n "${1:-}" ] && find "$TMP" -path "*$1*" -name 'oci-log' -o -path "*$1*" -name 'log.json' 2>/dev/null | head -2 | xargs -r tail -n 5; }

out=$(timeout 60 "${R[@]}" --rm "$IMG" sh -c 'echo out-5; exit 5' 2>&1); rc=$?
check "podman run --rm: output and exit code 5" "rc=$rc $out" [ "$rc" = 5 -a "$out" = out-5 ]
out=$(timeout 60 "${R[@]}" --rm "$IMG" true 2>&1); rc=$?
check "podman run --rm true exits 0" "rc=$rc $out" [ "$rc" = 0 ]
# (the sleep: podman/conmon can drop the output of a process that is done before podman has
# attached, with runc too, on a loaded machine)
cmd="${R[*]} --rm -it $IMG /bin/sh -c 'sleep 0.5; [ -t 0 ] && [ -t 1 ] && echo IS-A-\$((6*7)); tty'"
out=$(timeout 60 script -qec "$cmd" /dev/null </dev/null 2>&1 | tr -d '\r'); rc=$?
check "podman run -it: stdin and stdout are a pty" "rc=$rc $out" grep -q 'IS-A-42' <<<"$out"
cmd="${R[*]} --rm -it $IMG /bin/sh"
{ sleep 2; printf 'echo typed-$((40+2))\nexit 3\n'; sleep 3; } | timeout 60 script -qec "$cmd" /dev/null >"$TMP/it.out" 2>&1
rc=${PIPESTATUS[1]}
out=$(tr -d '\r' <"$TMP/it.out")
grep -q 'typed-42' <<<"$out" && [ "$rc" = 3 ]
verdict "podman run -it: typed input reaches the shell, its exit code 3 comes back" "rc=$rc $out"

mkdir -p "$TMP/shared"
LOOP='trap "exit 0" TERM; echo started > /tmp/marker; i=0; while :; do i=$((i+1)); echo $i > /shared/count; sleep 0.1; done'
out=$(timeout 60 "${R[@]}" -d --name p1 -v "$TMP/shared:/shared" "$IMG" sh -c "$LOOP" 2>&1); rc=$?
check "podman run -d" "rc=$rc $out" [ "$rc" = 0 ]
wait_for 10 test -s "$TMP/shared/count"
p1id=$("${PM[@]}" inspect -f '{{.Id}}' p1 2>&1)
# it really is HUSK_BIN: its state for the container under its default root
out=$("$HUSK_BIN" state "$p1id" 2>&1)
check "the container is HUSK_BIN's: its state says running" "$out" grep -q '"status": *"running"' <<<"$out"
out=$(timeout 30 "${PM[@]}" exec p1 sh -c 'cat /tmp/marker; [ -t 1 ] || echo no-tty' 2>&1); rc=$?
check "podman exec joins the container (sees its /tmp, no tty)" "rc=$rc $out $(rtlog "$p1id")" [ "$rc" = 0 -a "$out" = "started
no-tty" ]
out=$(timeout 30 "${PM[@]}" exec p1 sh -c 'exit 6' 2>&1); rc=$?
check "podman exec passes exit code 6" "rc=$rc $out" [ "$rc" = 6 ]
cmd="${PM[*]} exec -it p1 sh -c 'sleep 0.5; [ -t 0 ] && [ -t 1 ] && echo IS-A-\$((6*7)); tty'"
out=$(timeout 60 script -qec "$cmd" /dev/null </dev/null 2>&1 | tr -d '\r'); rc=$?
check "podman exec -it: a pty" "rc=$rc $out" grep -q 'IS-A-42' <<<"$out"
out=$(timeout 30 "${PM[@]}" stats --no-stream --format '{{.MemUsage}} pids={{.PIDs}}' p1 2>&1); rc=$?
check "podman stats --no-stream: memory use and pids" "rc=$rc $out" grep -qE '[1-9].*B / .* pids=[1-9]' <<<"$out"
out=$(timeout 30 "${PM[@]}" pause p1 2>&1); rc=$?
st=$("${PM[@]}" inspect -f '{{.State.Status}}' p1 2>&1)
c1=$(cat "$TMP/shared/count"); sleep 1; c2=$(cat "$TMP/shared/count")
check "podman pause: status paused, the counter stops" "rc=$rc $out status=$st $c1 $c2" [ "$rc" = 0 -a "$st" = paused -a "$c1" = "$c2" ]
out=$(timeout 30 "${PM[@]}" unpause p1 2>&1); rc=$?
st=$("${PM[@]}" inspect -f '{{.State.Status}}' p1 2>&1)
sleep 0.5; c3=$(cat "$TMP/shared/count")
check "podman unpause: status running, the counter moves on" "rc=$rc $out status=$st $c2 $c3" [ "$rc" = 0 -a "$st" = running -a "$c3" != "$c2" ]
t0=$(date +%s)
out=$(timeout 30 "${PM[@]}" stop -t 8 p1 2>&1); rc=$?
t1=$(date +%s)
ec=$("${PM[@]}" inspect -f '{{.State.Status}} {{.State.ExitCode}}' p1 2>&1)
check "podman stop: SIGTERM reaches the trap, exited 0 in < 8 s" "rc=$rc $out state=$ec $((t1 - t0))s" [ "$rc" = 0 -a "$ec" = "exited 0" -a $((t1 - t0)) -lt 8 ]
"${PM[@]}" rm -f p1 >/dev/null 2>&1

out=$(timeout 60 "${R[@]}" --rm --tmpfs /scratch:size=1m "$IMG" sh -c 'echo x > /scratch/f && cat /scratch/f && grep " /scratch " /proc/mounts' 2>&1)
check "podman --tmpfs /scratch: a writable tmpfs" "$out" grep -q '^tmpfs /scratch tmpfs rw' <<<"$(tail -1 <<<"$out")"
out=$(timeout 60 "${R[@]}" --rm --read-only "$IMG" sh -c 'touch /rootfile && echo wrote; touch /tmp/ok && echo tmp-writable' 2>&1)
grep -q 'Read-only file system' <<<"$out" && ! grep -q '^wrote' <<<"$out" && grep -q tmp-writable <<<"$out"
verdict "podman --read-only: writing / fails, /tmp is a writable tmpfs" "$out"
out=$(timeout 60 "${R[@]}" --rm --init "$IMG" sh -c 'cat /proc/1/comm; echo $$' 2>&1)
# podman binds catatonit in as /run/podman-init
grep -qxE 'catatonit|podman-init' <<<"$(head -1 <<<"$out")" && [ "$(tail -1 <<<"$out")" != 1 ]
verdict "podman --init: pid 1 is catatonit (podman-init), the command is not pid 1" "$out"
out=$(timeout 60 "${R[@]}" --rm --user 1000:1000 --memory 32m --pids-limit 42 "$IMG" sh -c 'echo $(id -u) $(id -g); cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max' 2>&1)
check "podman --user 1000:1000 --pids-limit 42" "$out" [ "$out" = "1000 1000
42" ]

# --- stdio, errors podman maps from the runtime's messages to exit codes
out=$(seq 1 3 | timeout 60 "${R[@]}" --rm -i "$IMG" sh -c 'cat; echo eof' 2>&1)
check "podman run -i: stdin reaches the process, then EOF" "$out" [ "$out" = "1
2
3
eof" ]
out=$(timeout 60 "${R[@]}" --rm "$IMG" /no/such/binary 2>&1); rc=$?
check "podman run of a missing binary exits 127" "rc=$rc $out" [ "$rc" = 127 ]
out=$(timeout 60 "${R[@]}" --rm "$IMG" /etc/passwd 2>&1); rc=$?
check "podman run of a non-executable file exits 126" "rc=$rc $out" [ "$rc" = 126 ]
out=$(timeout 60 "${R[@]}" --rm --memory 32m --cpus 0.5 "$IMG" sh -c 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || { cat /sys/fs/cgroup/memory.max; cut -d" " -f1 /sys/fs/cgroup/cpu.max; }' 2>&1)
check "podman --memory 32m --cpus 0.5: read back" "$out" [ "$out" = "33554432
50000" ]
out=$(timeout 60 "${R[@]}" --rm --cap-drop ALL --cap-add NET_ADMIN "$IMG" sh -c 'grep CapEff /proc/self/status' 2>&1)
check "podman --cap-drop ALL --cap-add NET_ADMIN: CapEff 0x1000" "$out" grep -qP 'CapEff:\s+0000000000001000$' <<<"$out"
cat >"$TMP/seccomp.json" <<'EOT'
{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}
EOT
out=$(timeout 60 "${R[@]}" --rm --security-opt "seccomp=$TMP/seccomp.json" "$IMG" /probe syscall mkdir 2>&1)
out2=$(timeout 60 "${R[@]}" --rm "$IMG" sh -c 'grep Seccomp: /proc/self/status' 2>&1)
grep -q '"errno":1' <<<"$out" && grep -qP 'Seccomp:\s+2' <<<"$out2"
verdict "podman seccomp: a profile denying mkdir; the default profile is on" "$out
$out2"

# --- a detached container: exec -i -u -e -w, exec of a missing binary, kill -s, top, logs, restart
"${R[@]}" -d --name k1 "$IMG" sh -c 'echo log-line; trap "echo got-usr1 > /tmp/usr1" USR1; trap "exit 0" TERM; while :; do sleep 0.1; done' >/dev/null 2>&1
out=$(echo piped | timeout 30 "${PM[@]}" exec -i -u 1000:1000 -e BAR=baz -w /tmp k1 sh -c 'echo $(cat) $(id -u) $BAR $(pwd)' 2>&1)
check "podman exec -i -u -e -w" "$out" [ "$out" = "piped 1000 baz /tmp" ]
out=$(timeout 30 "${PM[@]}" exec k1 /no/such/binary 2>&1); rc=$?
check "podman exec of a missing binary exits 127" "rc=$rc $out" [ "$rc" = 127 ]
out=$(timeout 30 "${PM[@]}" kill -s USR1 k1 2>&1); sleep 0.5
got=$(timeout 30 "${PM[@]}" exec k1 cat /tmp/usr1 2>&1)
check "podman kill -s USR1 reaches the container's trap" "$out $got" [ "$got" = got-usr1 ]
out=$(timeout 30 "${PM[@]}" top k1 2>&1)
check "podman top lists the container's processes" "$out" grep -q 'trap' <<<"$out"
out=$(timeout 30 "${PM[@]}" logs k1 2>&1)
check "podman logs" "$out" [ "$out" = log-line ]
out=$(timeout 60 "${PM[@]}" restart -t 5 k1 2>&1); rc=$?
st=$("${PM[@]}" inspect -f '{{.State.Status}}' k1 2>&1)
got=$(timeout 30 "${PM[@]}" exec k1 cat /tmp/usr1 2>&1)
check "podman restart: running again, same filesystem" "rc=$rc $out $st $got" [ "$rc" = 0 -a "$st" = running -a "$got" = got-usr1 ]
"${PM[@]}" rm -f -t 0 k1 >/dev/null 2>&1

# --- user namespace, pods (containers joining the infra container's namespaces by path)
out=$(timeout 120 "${R[@]}" --rm --uidmap 0:200000:65536 --gidmap 0:200000:65536 "$IMG" sh -c 'cat /proc/self/uid_map /proc/self/gid_map; id -u; touch /tmp/x && stat -c %u /tmp/x' 2>&1)
grep -qE '^ +0 +200000 +65536$' <<<"$(head -1 <<<"$out")" && [ "$(tail -2 <<<"$out")" = "0
0" ]
verdict "podman --uidmap/--gidmap: a user namespace mapping 0 to 200000, root inside" "$out"
podid=$(timeout 120 "${PM[@]}" pod create --name pod1 --network none --cgroup-parent "/$CGPARENT" 2>/dev/null) &&
    out=$(timeout 60 "${PM[@]}" pod start pod1 2>&1)
rc=$?
check "podman pod create + start (infra container)" "rc=$rc pod=$podid $out" [ "$rc" = 0 ]
NSL='for n in net ipc uts; do readlink /proc/self/ns/$n; done'
a=$(timeout 60 "${PM[@]}" run --rm --pod pod1 "$IMG" sh -c "$NSL" 2>&1)
b=$(timeout 60 "${PM[@]}" run --rm --pod pod1 "$IMG" sh -c "$NSL" 2>&1)
c=$(timeout 60 "${R[@]}" --rm "$IMG" sh -c "$NSL" 2>&1)
check "podman run --pod: two containers share the pod's net/ipc/uts namespaces" "a=$a
b=$b
c=$c" [ -n "$a" -a "$a" = "$b" -a "$a" != "$c" ]
"${PM[@]}" run -d --pod pod1 --name pm1 "$IMG" sh -c 'trap "exit 0" TERM; while :; do sleep 0.1; done' >/dev/null 2>&1
a=$(timeout 60 "${PM[@]}" exec pm1 sh -c "$NSL" 2>&1)
b=$(timeout 60 "${PM[@]}" run --rm --pod pod1 "$IMG" sh -c "$NSL" 2>&1)
check "podman exec into a pod member: the pod's namespaces" "a=$a
b=$b" [ -n "$a" -a "$a" = "$b" ]
timeout 60 "${PM[@]}" pod rm -f pod1 >/dev/null 2>&1
"${R[@]}" -d --name u1 --uidmap 0:200000:65536 --gidmap 0:200000:65536 "$IMG" sh -c 'trap "exit 0" TERM; while :; do sleep 0.1; done' >/dev/null 2>&1
out=$(timeout 60 "${PM[@]}" exec u1 sh -c 'cat /proc/self/uid_map; id -u; readlink /proc/self/ns/user' 2>&1)
want=$(timeout 60 "${PM[@]}" exec u1 readlink /proc/1/ns/user 2>&1)
grep -qE '^ +0 +200000 +65536$' <<<"$(head -1 <<<"$out")" && [ "$(sed -n 2p <<<"$out")" = 0 ] && [ "$(tail -1 <<<"$out")" = "$want" ]
verdict "podman exec into a user-namespaced container joins its user namespace" "$out want=$want"
"${PM[@]}" rm -f -t 0 u1 >/dev/null 2>&1
want=$(readlink /proc/self/ns/net)
out=$(timeout 60 "${PM[@]}" run --rm --net=host --cgroup-parent "/$CGPARENT" "$IMG" readlink /proc/self/ns/net 2>&1)
check "podman --net=host: the host's network namespace" "want=$want got=$out" [ "$out" = "$want" ]
cp -a "$TESTROOT" "$TMP/rootfs-dir"
out=$(timeout 60 "${R[@]}" --rm --rootfs "$TMP/rootfs-dir" /bin/sh -c 'echo in-rootfs > /tmp/rf; exec /probe' 2>&1)
check "podman run --rootfs DIR: the process runs as pid 1 from it" "$out" grep -q '"pid":1,' <<<"$out"
[ "$(cat "$TMP/rootfs-dir/tmp/rf" 2>/dev/null)" = in-rootfs ]
verdict "podman run --rootfs DIR: the write lands in the directory" "$out"
mkdir -p "$TMP/vol" && echo host-data >"$TMP/vol/h"
out=$(timeout 60 "${R[@]}" --rm -v "$TMP/vol:/vol" --device /dev/null:/dev/xnull --sysctl kernel.msgmax=4321 "$IMG" sh -c 'cat /vol/h; echo ctr-data > /vol/c; echo x > /dev/xnull && echo xnull; cat /proc/sys/kernel/msgmax' 2>&1)
check "podman -v, --device, --sysctl" "$out" [ "$out" = "host-data
xnull
4321" -a "$(cat "$TMP/vol/c" 2>/dev/null)" = ctr-data ]

# --- paused containers must still stop and go away
"${R[@]}" -d --name pz1 "$IMG" sh -c 'while :; do sleep 0.1; done' >/dev/null 2>&1
"${R[@]}" -d --name pz2 "$IMG" sh -c 'while :; do sleep 0.1; done' >/dev/null 2>&1
pzids="$("${PM[@]}" inspect -f '{{.Id}}' pz1 pz2 2>/dev/null)"
"${PM[@]}" pause pz1 pz2 >/dev/null 2>&1
# (podman refuses to stop a paused container; rm -f unpauses and kills)
out=$(timeout 60 "${PM[@]}" rm -f -t 2 pz1 pz2 2>&1); rc=$?
check "podman rm -f of paused containers" "rc=$rc $out" [ "$rc" = 0 ]

# nothing left behind: no containers, no runtime state, no cgroups, no container processes
out=$("${PM[@]}" ps -aq 2>&1)
check "no containers left" "$out" [ -z "$out" ]
out=$(for id in $p1id $pzids; do "$HUSK_BIN" state "$id" >/dev/null 2>&1 && echo "state left: $id"; done)
check "no runtime state left for our containers" "$out" [ -z "$out" ]
# (conmon's own cgroup, <parent>/conmon, and the pod's, <parent>/<pod id>, which podman 4.3
# leaves behind in the named systemd and unified hierarchies, are podman's)
leftovers() {
    find /sys/fs/cgroup/*/"$CGPARENT" /sys/fs/cgroup/"$CGPARENT" -mindepth 1 -type d ! -path '*/conmon' ! -name "${podid:-none}" 2>/dev/null
    local p cg
    for p in $(cg_procs); do
        # a pid that is gone by the time we read it had exited: not a leftover
        cg=$(cat "/proc/$p/cgroup" 2>/dev/null) || continue
        grep -q /conmon <<<"$cg" || echo "pid $p: $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)"
    done
}
out=$(settled leftovers)
check "no container cgroups or processes left" "$out" [ -z "$out" ]

# --- rootless podman: an unprivileged user (nobody) runs podman, which runs the runtime as root
# of the user namespace it made (one id mapped: no /etc/subuid entry is made for the test).
# Without cgroup access, the container runs in the user's own cgroup.
RL=$TMP/rootless
mkdir -p "$RL/home" "$RL/run" "$RL/storage" "$RL/runroot"
cat >"$RL/containers.conf" <<EOT
[containers]
default_ulimits = ["nofile=$(ulimit -Sn):$(ulimit -Hn)", "nproc=4096:4096"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$RL/events.log"
conmon_path = ["$(command -v conmon)"]
EOT
printf '[storage]\ndriver = "vfs"\ngraphroot = "%s"\nrunroot = "%s"\n' "$RL/storage" "$RL/runroot" >"$RL/storage.conf"
# an image tar with every file root's (the user namespace maps one id only)
tar -C "$TESTROOT" --owner=0 --group=0 --numeric-owner -cf "$RL/image.tar" .
chmod 0644 "$RL/image.tar"
chown -R nobody:nogroup "$RL"
chmod o+x "$TMP"
rlpm() { # podman as nobody, with its own home, runtime dir, config and storage
    timeout 120 env -i PATH="$PATH" HOME="$RL/home" XDG_RUNTIME_DIR="$RL/run" USER=nobody LOGNAME=nobody \
        CONTAINERS_CONF="$RL/containers.conf" CONTAINERS_STORAGE_CONF="$RL/storage.conf" \
        CONTAINERS_REGISTRIES_CONF="$TMP/registries.conf" \
        setpriv --reuid nobody --regid nogroup --clear-groups -- \
        podman --runtime "$HUSK_BIN" --cgroup-manager cgroupfs --events-backend file "$@"
}
rootless_cleanup() {
    rlpm rm -af -t 0 >/dev/null 2>&1
    # podman's rootless pause process keeps the user namespace; it is ours, end it by pid
    local pp
    pp=$(cat "$RL/run/libpod/tmp/pause.pid" 2>/dev/null) && [ -n "$pp" ] && kill -KILL "$pp" 2>/dev/null
    return 0
}
out=$(rlpm import "$RL/image.tar" localhost/husk-rootless:latest 2>&1)
check "rootless podman: import of the test rootfs" "$out" [ $? = 0 ]
out=$(rlpm run --rm --network none localhost/husk-rootless:latest sh -c 'echo rl-out; id -u; cat /proc/self/uid_map; cat /proc/self/cgroup; exit 7' 2>&1); rc=$?
want_cg=$(setpriv --reuid nobody --regid nogroup --clear-groups cat /proc/self/cgroup)
check "rootless podman run --rm: output, root in the user namespace, exit code 7" "rc=$rc $out" \
    [ "$rc" = 7 -a "$(sed -n 1p <<<"$out")" = rl-out -a "$(sed -n 2p <<<"$out")" = 0 ]
check "rootless podman: only the user's own id is mapped" "$out" grep -qE '^ +0 +65534 +1$' <<<"$out"
# (a cgroup v1 host: rootless podman gives the container no cgroup; it stays in the caller's)
got_cg=$(sed -n '4,$p' <<<"$out")
check "rootless podman: the container runs in its caller's cgroup" "got:
$got_cg
want (nobody's shell here):
$want_cg" [ "$got_cg" = "$want_cg" ]
rlpm run -d --name rl1 --network none localhost/husk-rootless:latest sh -c 'trap "exit 0" TERM; while :; do sleep 0.1; done' >/dev/null 2>&1
out=$(rlpm exec rl1 sh -c 'id -u; cat /proc/1/cmdline | tr "\0" " "' 2>&1)
check "rootless podman exec joins the running container" "$out" grep -q 'while' <<<"$out"
t0=$(date +%s)
out=$(rlpm stop -t 5 rl1 2>&1); rc=$?
t1=$(date +%s)
check "rootless podman stop: SIGTERM reaches the trap in < 5 s" "rc=$rc $out $((t1 - t0))s" [ "$rc" = 0 -a $((t1 - t0)) -lt 5 ]
out=$(rlpm rm rl1 2>&1)
check "rootless podman rm" "$out" [ $? = 0 ]
out=$(rlpm ps -aq 2>&1)
check "rootless podman: no containers left" "$out" [ -z "$out" ]
# nothing of the containers left in podman's user namespace but its pause process
rl_leftovers() {
    local pp ns p
    pp=$(cat "$RL/run/libpod/tmp/pause.pid" 2>/dev/null) || return 0
    ns=$(readlink "/proc/$pp/ns/user" 2>/dev/null) || return 0
    for p in /proc/[0-9]*; do
        [ "${p#/proc/}" = "$pp" ] && continue
        [ "$(readlink "$p/ns/user" 2>/dev/null)" = "$ns" ] || continue
        echo "pid ${p#/proc/}: $(tr '\0' ' ' <"$p/cmdline" 2>/dev/null)"
    done
}
out=$(settled rl_leftovers)
check "rootless podman: no container processes left" "$out" [ -z "$out" ]
finish
