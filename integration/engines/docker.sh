#!/usr/bin/env bash
# dockerd (with its own managed containerd) running HUSK_BIN as its default runtime: a PRIVATE
# daemon (own socket, data/exec roots, config, cgroup parent under a temp dir; no iptables,
# no bridge), an image imported from the test rootfs, everyday docker use checked from inside.
#   HUSK_BIN=/usr/sbin/runc bash integration/engines/docker.sh   # validate the script with runc
set -uo pipefail
. "$(dirname "$0")/lib.sh"

need_root "docker integration"
need_pkgs dockerd:docker.io containerd:containerd script:bsdutils docker-init:tini jq:jq file:file
make_tmp docker
IMG=husk-test:latest
DOCKER_BIN=/usr/bin/docker
[ -x "$DOCKER_BIN" ] || DOCKER_BIN=$(command -v docker)
export DOCKER_CONFIG=$TMP/cli
SOCK=$TMP/docker.sock
DK=("$DOCKER_BIN" -H "unix://$SOCK")

# dockerd 20.10 writes its trust key to /etc/docker/key.json whatever the data root: remove
# it afterwards if this run created it
KEY=/etc/docker/key.json
KEY_EXISTED=; [ -e "$KEY" ] && KEY_EXISTED=1
engine_cleanup() {
    [ -n "$KEY_EXISTED" ] || rm -f "$KEY"
    [ -S "$SOCK" ] || return 0
    local ids
    ids=$(timeout 20 "${DK[@]}" ps -aq 2>/dev/null)
    [ -n "$ids" ] && timeout 60 "${DK[@]}" rm -f $ids >/dev/null 2>&1
}

mkdir -p "$TMP/data" "$TMP/exec" "$TMP/cli"
echo '{}' >"$TMP/daemon.json"
dockerd --config-file "$TMP/daemon.json" --data-root "$TMP/data" --exec-root "$TMP/exec" \
    --pidfile "$TMP/docker.pid" -H "unix://$SOCK" \
    --iptables=false --ip-masq=false --bridge=none --userland-proxy=false \
    --cgroup-parent "/$CGPARENT" --exec-opt native.cgroupdriver=cgroupfs \
    --add-runtime "husk=$HUSK_BIN" --default-runtime husk --debug >"$TMP/dockerd.log" 2>&1 &
DAEMON_PIDS+=($!)
wait_for 60 "${DK[@]}" version >/dev/null 2>&1 || die_setup "private dockerd starts" "$(tail -30 "$TMP/dockerd.log")"
out=$("${DK[@]}" info --format '{{.DefaultRuntime}} {{.CgroupVersion}} {{.Driver}}' 2>&1)
check "private dockerd starts, default runtime husk ($out)" "$out" grep -q '^husk ' <<<"$out"
out=$("${DK[@]}" import "$(image_tar)" "$IMG" 2>&1) || die_setup "docker import of the test rootfs" "$out"
pass "docker import of the test rootfs"

# the runtime's own log for a container: containerd keeps the bundle under the exec root
rtlog() { cat "$TMP"/exec/containerd/daemon/io.containerd.runtime.v2.task/moby/"$1"*/log.json 2>/dev/null | tail -5; }
R=("${DK[@]}" run --network none)
# cgread FILE_V1 FILE_V2: a cgroup file of the container, v1 hierarchy or v2
CGREAD='f=/sys/fs/cgroup/$1; [ -e "$f" ] || f=/sys/fs/cgroup/$2; cat "$f"'

# --- run, exit codes, terminal
out=$(timeout 60 "${R[@]}" --rm "$IMG" true 2>&1); rc=$?
check "docker run --rm true exits 0" "rc=$rc $out" [ "$rc" = 0 ]
out=$(timeout 60 "${R[@]}" --rm "$IMG" sh -c 'echo out-7; exit 7' 2>&1); rc=$?
check "docker run sh -c 'exit 7' exits 7 with its output" "rc=$rc $out" [ "$rc" = 7 -a "$out" = out-7 ]
cmd="${DK[*]} run --rm -it --network none $IMG /bin/sh -c 'sleep 0.5; [ -t 0 ] && [ -t 1 ] && echo IS-A-$((6*7)); tty'"
out=$(timeout 60 script -qec "$cmd" /dev/null </dev/null 2>&1 | tr -d '\r'); rc=$?
check "docker run -it: stdin and stdout are a pty" "rc=$rc $out" grep -q 'IS-A-42' <<<"$out"
cmd="${DK[*]} run --rm -it --network none $IMG /bin/sh"
{ sleep 2; printf 'echo typed-$((40+2))\nexit 3\n'; sleep 3; } | timeout 60 script -qec "$cmd" /dev/null >"$TMP/it.out" 2>&1
rc=${PIPESTATUS[1]}
out=$(tr -d '\r' <"$TMP/it.out")
grep -q 'typed-42' <<<"$out" && [ "$rc" = 3 ]
verdict "docker run -it: typed input reaches the shell, its exit code 3 comes back" "rc=$rc $out"

# --- a detached container: exec, exec -t, top, stats, pause/unpause, update, stop
mkdir -p "$TMP/shared"
LOOP='trap "exit 0" TERM; echo started > /tmp/marker; i=0; while :; do i=$((i+1)); echo $i > /shared/count; sleep 0.1; done'
out=$(timeout 60 "${R[@]}" -d --name d1 -v "$TMP/shared:/shared" --memory 256m "$IMG" sh -c "$LOOP" 2>&1); rc=$?
check "docker run -d" "rc=$rc $out $(rtlog "$out")" [ "$rc" = 0 ]
wait_for 10 test -s "$TMP/shared/count"
# it really is HUSK_BIN: its own state for the container under the root docker gave the shim
d1id=$("${DK[@]}" inspect -f '{{.Id}}' d1 2>&1)
rroot=$(dirname "$(find "$TMP/exec" -maxdepth 3 -type d -name "$d1id" -path '*/runtime-*' 2>/dev/null | head -1)")
out=$("$HUSK_BIN" --root "$rroot" state "$d1id" 2>&1)
check "the container is HUSK_BIN's: its state says running" "root=$rroot $out" grep -q '"status": *"running"' <<<"$out"
out=$(timeout 30 "${DK[@]}" exec d1 sh -c 'cat /tmp/marker; [ -t 1 ] || echo no-tty' 2>&1); rc=$?
check "docker exec joins the container (sees its /tmp, no tty)" "rc=$rc $out" [ "$rc" = 0 -a "$out" = "started
no-tty" ]
out=$(timeout 30 "${DK[@]}" exec -t d1 sh -c '[ -t 1 ] && echo IS-A-TTY; tty' 2>&1 | tr -d '\r'); rc=$?
check "docker exec -t: a pty" "rc=$rc $out" grep -q '^IS-A-TTY' <<<"$out"
out=$(timeout 30 "${DK[@]}" exec d1 sh -c 'exit 5' 2>&1); rc=$?
check "docker exec passes exit code 5" "rc=$rc $out" [ "$rc" = 5 ]
out=$(timeout 30 "${DK[@]}" top d1 2>&1); rc=$?
check "docker top lists the container's processes" "rc=$rc $out" grep -q 'trap' <<<"$out"
out=$(timeout 30 "${DK[@]}" stats --no-stream --format '{{.MemUsage}} pids={{.PIDs}}' d1 2>&1); rc=$?
check "docker stats --no-stream: memory limit 256MiB and pids" "rc=$rc $out" grep -qE '/ 256MiB pids=[1-9]' <<<"$out"
out=$(timeout 30 "${DK[@]}" pause d1 2>&1); rc=$?
st=$("${DK[@]}" inspect -f '{{.State.Status}}' d1 2>&1)
c1=$(cat "$TMP/shared/count"); sleep 1; c2=$(cat "$TMP/shared/count")
check "docker pause: status paused, the counter stops" "rc=$rc $out status=$st $c1 $c2 $(rtlog "$("${DK[@]}" inspect -f '{{.Id}}' d1)")" [ "$rc" = 0 -a "$st" = paused -a "$c1" = "$c2" ]
out=$(timeout 30 "${DK[@]}" unpause d1 2>&1); rc=$?
st=$("${DK[@]}" inspect -f '{{.State.Status}}' d1 2>&1)
sleep 0.5; c3=$(cat "$TMP/shared/count")
check "docker unpause: status running, the counter moves on" "rc=$rc $out status=$st $c2 $c3" [ "$rc" = 0 -a "$st" = running -a "$c3" != "$c2" ]
out=$(timeout 30 "${DK[@]}" update --memory 64m --memory-swap 128m d1 2>&1); rc=$?
v=$(timeout 30 "${DK[@]}" exec d1 sh -c "set -- memory/memory.limit_in_bytes memory.max; $CGREAD" 2>&1)
check "docker update --memory 64m: the container's limit reads 67108864" "rc=$rc $out limit=$v" [ "$rc" = 0 -a "$v" = 67108864 ]
t0=$(date +%s)
out=$(timeout 30 "${DK[@]}" stop -t 8 d1 2>&1); rc=$?
t1=$(date +%s)
ec=$("${DK[@]}" inspect -f '{{.State.Status}} {{.State.ExitCode}}' d1 2>&1)
check "docker stop: SIGTERM reaches the trap, exited 0 in < 8 s" "rc=$rc $out state=$ec $((t1 - t0))s" [ "$rc" = 0 -a "$ec" = "exited 0" -a $((t1 - t0)) -lt 8 ]

# --- restart policy, logs, cp
"${R[@]}" -d --name r1 --restart on-failure:2 "$IMG" sh -c 'echo run >> /tmp/runs; exit 3' >/dev/null 2>&1
restarted() { [ "$("${DK[@]}" inspect -f '{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}' r1 2>&1)" = "2 exited 3" ]; }
wait_for 40 restarted
out=$("${DK[@]}" inspect -f '{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}' r1 2>&1)
check "docker --restart on-failure:2: restarted twice, then exited 3" "$out" [ "$out" = "2 exited 3" ]
"${R[@]}" --name l1 "$IMG" sh -c 'echo to-stdout; echo to-stderr >&2' >/dev/null 2>&1
o=$("${DK[@]}" logs l1 2>/dev/null); e=$("${DK[@]}" logs l1 2>&1 >/dev/null)
check "docker logs: stdout and stderr kept apart" "stdout=$o stderr=$e" [ "$o" = to-stdout -a "$e" = to-stderr ]
"${R[@]}" -d --name c1 "$IMG" sh -c 'echo from-container > /tmp/out.txt; trap "exit 0" TERM; while :; do sleep 1; done' >/dev/null 2>&1
echo from-host >"$TMP/in.txt"
out=$("${DK[@]}" cp "$TMP/in.txt" c1:/tmp/in.txt 2>&1 && "${DK[@]}" exec c1 cat /tmp/in.txt 2>&1)
check "docker cp host -> container" "$out" [ "$out" = from-host ]
out=$("${DK[@]}" cp c1:/tmp/out.txt "$TMP/out.txt" 2>&1 && cat "$TMP/out.txt")
check "docker cp container -> host" "$out" [ "$out" = from-container ]
"${DK[@]}" rm -f c1 r1 l1 d1 >/dev/null 2>&1

# --- resources read back from the container's cgroup files
out=$(timeout 60 "${R[@]}" --rm --memory 32m "$IMG" sh -c "set -- memory/memory.limit_in_bytes memory.max; $CGREAD" 2>&1)
check "docker --memory 32m: limit 33554432" "$out" [ "$out" = 33554432 ]
out=$(timeout 60 "${R[@]}" --rm --cpus 0.5 "$IMG" sh -c 'if [ -e /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]; then echo $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us); else cat /sys/fs/cgroup/cpu.max; fi' 2>&1)
check "docker --cpus 0.5: quota 50000 per 100000" "$out" [ "$out" = "50000 100000" ]
out=$(timeout 60 "${R[@]}" --rm --pids-limit 42 "$IMG" sh -c "set -- pids/pids.max pids.max; $CGREAD" 2>&1)
check "docker --pids-limit 42: pids.max 42" "$out" [ "$out" = 42 ]
if [ -e /sys/fs/cgroup/memory/memory.soft_limit_in_bytes ]; then
    out=$(timeout 60 "${R[@]}" --rm --memory 64m --memory-reservation 16m --memory-swappiness 0 --cpu-period 50000 --cpu-quota 20000 "$IMG" sh -c 'cd /sys/fs/cgroup; cat memory/memory.soft_limit_in_bytes memory/memory.swappiness cpu/cpu.cfs_period_us cpu/cpu.cfs_quota_us' 2>&1)
    check "docker --memory-reservation --memory-swappiness --cpu-period --cpu-quota (cgroup v1)" "$out" [ "$out" = "16777216
0
50000
20000" ]
fi
out=$(timeout 60 "${R[@]}" --rm --memory 32m --oom-kill-disable "$IMG" sh -c 'grep oom_kill_disable /sys/fs/cgroup/memory/memory.oom_control' 2>&1)
if [ -e /sys/fs/cgroup/memory/memory.oom_control ]; then
    check "docker --oom-kill-disable: memory.oom_control says oom_kill_disable 1" "$out" [ "$out" = "oom_kill_disable 1" ]
else
    skip "docker --oom-kill-disable" "no cgroup v1 memory controller"
fi
out=$(timeout 60 "${R[@]}" --name oom --memory 16m --memory-swap 16m "$IMG" /probe alloc 64 2>&1); rc=$?
k=$("${DK[@]}" inspect -f '{{.State.OOMKilled}}' oom 2>&1)
check "docker --memory 16m, alloc 64 MiB: exit 137, OOMKilled true" "rc=$rc oomkilled=$k $out" [ "$rc" = 137 -a "$k" = true ]
"${DK[@]}" rm -f oom >/dev/null 2>&1

# --- security
out=$(timeout 60 "${R[@]}" --rm --cap-drop ALL --cap-add NET_ADMIN "$IMG" sh -c 'grep CapEff /proc/self/status' 2>&1)
check "docker --cap-drop ALL --cap-add NET_ADMIN: CapEff 0x1000" "$out" grep -qP 'CapEff:\s+0000000000001000$' <<<"$out"
out=$(timeout 60 "${R[@]}" --rm --cap-drop CHOWN "$IMG" sh -c 'grep CapEff /proc/self/status; chown 1000 /tmp && echo chown-worked' 2>&1)
! grep -q chown-worked <<<"$out" && grep -q '00000000a80425fa' <<<"$out"
verdict "docker --cap-drop CHOWN: chown fails, CapEff a80425fa" "$out"
out=$(timeout 60 "${R[@]}" --rm --read-only "$IMG" sh -c 'touch /rootfile && echo wrote; grep " / " /proc/mounts' 2>&1)
check "docker --read-only: writing / fails (EROFS)" "$out" grep -q 'Read-only file system' <<<"$out"
out=$(timeout 60 "${R[@]}" --rm --read-only --tmpfs /scratch:size=1m "$IMG" sh -c 'echo x > /scratch/f && cat /scratch/f && grep " /scratch " /proc/mounts' 2>&1)
check "docker --tmpfs /scratch: a writable tmpfs" "$out" grep -q '^tmpfs /scratch tmpfs rw' <<<"$(tail -1 <<<"$out")"
out=$(timeout 60 "${R[@]}" --rm --user 1000:1000 "$IMG" sh -c 'echo $(id -u) $(id -g); touch /root/x 2>/dev/null || echo denied' 2>&1)
check "docker --user 1000:1000: uid and gid 1000, root's files denied" "$out" [ "$out" = "1000 1000
denied" ]
out=$(timeout 60 "${R[@]}" --rm --device /dev/null:/dev/xnull "$IMG" sh -c '[ -c /dev/xnull ] && echo hi > /dev/xnull && echo wrote-xnull' 2>&1)
check "docker --device /dev/null:/dev/xnull: a writable char device" "$out" [ "$out" = wrote-xnull ]
mkdir -p "$TMP/vol" && echo host-data >"$TMP/vol/h"
out=$(timeout 60 "${R[@]}" --rm -v "$TMP/vol:/vol" "$IMG" sh -c 'cat /vol/h; echo ctr-data > /vol/c' 2>&1)
check "docker -v bind: host file seen, container write lands on the host" "$out $(cat "$TMP/vol/c" 2>&1)" [ "$out" = host-data -a "$(cat "$TMP/vol/c" 2>/dev/null)" = ctr-data ]
out=$(timeout 60 "${R[@]}" --rm --ulimit nofile=123:456 "$IMG" sh -c 'grep "Max open files" /proc/self/limits' 2>&1)
check "docker --ulimit nofile=123:456" "$out" grep -qE 'Max open files +123 +456 ' <<<"$out"
cat >"$TMP/seccomp.json" <<'EOT'
{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}
EOT
out=$(timeout 60 "${R[@]}" --rm --security-opt "seccomp=$TMP/seccomp.json" "$IMG" sh -c '/probe syscall mkdir; /probe syscall getpid' 2>&1)
grep -q '"errno":1' <<<"$(head -1 <<<"$out")" && grep -q '"ok":true' <<<"$(tail -1 <<<"$out")"
verdict "docker --security-opt seccomp=profile: mkdir EPERM, getpid allowed" "$out"
out=$(timeout 60 "${R[@]}" --rm "$IMG" sh -c 'grep Seccomp: /proc/self/status; /probe syscall keyctl' 2>&1)
out2=$(timeout 60 "${R[@]}" --rm --security-opt seccomp=unconfined "$IMG" sh -c 'grep Seccomp: /proc/self/status; /probe syscall keyctl' 2>&1)
grep -qP 'Seccomp:\s+2' <<<"$out" && grep -q '"errno":1' <<<"$out" && grep -qP 'Seccomp:\s+0' <<<"$out2" && ! grep -q '"errno":1' <<<"$out2"
verdict "docker default seccomp profile: filter mode, keyctl EPERM (unconfined: allowed)" "default: $out
unconfined: $out2"
out=$(timeout 60 "${R[@]}" --rm "$IMG" /probe syscall unshare 2>&1)
check "docker default seccomp profile: unshare denied" "$out" grep -q '"errno":1' <<<"$out"

# --- shared namespaces, init
"${R[@]}" -d --name ns1 "$IMG" sh -c 'trap "exit 0" TERM; while :; do sleep 1; done' >/dev/null 2>&1
NSL='for n in pid net; do readlink /proc/self/ns/$n; done'
want=$("${DK[@]}" exec ns1 sh -c "$NSL" 2>&1)
got=$(timeout 60 "${DK[@]}" run --rm --pid container:ns1 --network container:ns1 "$IMG" sh -c "$NSL" 2>&1)
mine=$(for n in pid net; do readlink /proc/self/ns/$n; done)
check "docker --pid/--network container:X: same pid and net namespace inodes" "want=$want got=$got" [ -n "$want" -a "$want" = "$got" -a "$want" != "$mine" ]
got=$(timeout 60 "${DK[@]}" run --rm --pid container:ns1 --network none "$IMG" sh -c 'cat /proc/1/cmdline | tr "\0" " "' 2>&1)
check "docker --pid container:X: X's pid 1 is visible" "$got" grep -q 'while' <<<"$got"
"${DK[@]}" rm -f ns1 >/dev/null 2>&1
out=$(timeout 60 "${R[@]}" --rm --init "$IMG" sh -c 'cat /proc/1/comm; echo $$' 2>&1)
check "docker --init: pid 1 is docker-init, the command is not pid 1" "$out" [ "$(head -1 <<<"$out")" = docker-init -a "$(tail -1 <<<"$out")" != 1 ]

# --- stdio, environment, errors callers map to exit codes
out=$(seq 1 3 | timeout 60 "${R[@]}" --rm -i "$IMG" sh -c 'cat; echo eof' 2>&1)
check "docker run -i: stdin reaches the process, then EOF" "$out" [ "$out" = "1
2
3
eof" ]
out=$(timeout 60 "${R[@]}" --rm "$IMG" sh -c 'seq 1 200000' 2>&1 | tail -1)
check "docker run: 200000 lines of output arrive in full" "$out" [ "$out" = 200000 ]
out=$(timeout 60 "${R[@]}" --rm -e FOO=bar -w /tmp --hostname husk-host --group-add 1001 --user 1000 "$IMG" sh -c 'echo $FOO $(pwd) $(hostname) $(id -G)' 2>&1)
check "docker run -e -w --hostname --group-add: env, cwd, hostname, groups" "$out" [ "$out" = "bar /tmp husk-host 1000 1001" ]
out=$(timeout 60 "${R[@]}" --rm "$IMG" /no/such/binary 2>&1); rc=$?
check "docker run of a missing binary exits 127" "rc=$rc $out" [ "$rc" = 127 ]
out=$(timeout 60 "${R[@]}" --rm "$IMG" /etc/passwd 2>&1); rc=$?
check "docker run of a non-executable file exits 126" "rc=$rc $out" [ "$rc" = 126 ]
out=$(timeout 60 "${R[@]}" --rm --security-opt no-new-privileges --oom-score-adj 345 --sysctl kernel.msgmax=12345 --shm-size 8m "$IMG" sh -c 'grep NoNewPrivs /proc/self/status; cat /proc/self/oom_score_adj /proc/sys/kernel/msgmax; df -k /dev/shm | tail -1' 2>&1)
grep -qP 'NoNewPrivs:\s+1' <<<"$out" && grep -qx 345 <<<"$out" && grep -qx 12345 <<<"$out" && grep -qE '^shm +8192 ' <<<"$out"
verdict "docker --security-opt no-new-privileges --oom-score-adj --sysctl --shm-size" "$out"
out=$(timeout 60 "${R[@]}" --rm --cpu-shares 512 --cpuset-cpus 0 "$IMG" sh -c 'cat /sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/cpuset/cpuset.cpus 2>/dev/null || cat /sys/fs/cgroup/cpu.weight /sys/fs/cgroup/cpuset.cpus' 2>&1)
check "docker --cpu-shares 512 --cpuset-cpus 0" "$out" [ "$out" = "512
0" -o "$out" = "20
0" ]
out=$(timeout 60 "${R[@]}" --rm "$IMG" sh -c 'for f in /proc/keys /proc/timer_list /proc/kcore; do [ -e $f ] && echo $f $(wc -c < $f); done; echo x > /proc/sys/kernel/hostname || echo sys-ro' 2>&1)
grep -q sys-ro <<<"$out" && ! grep -qE '^/proc/[a-z_]+ [1-9]' <<<"$out"
verdict "docker masked /proc files read empty, /proc/sys is read-only" "$out"
mkdir -p "$TMP/ro" && echo ro-data >"$TMP/ro/f"
out=$(timeout 60 "${R[@]}" --rm --mount "type=bind,src=$TMP/ro,dst=/ro,readonly" "$IMG" sh -c 'cat /ro/f; echo x > /ro/g || echo ro-denied' 2>&1)
check "docker --mount readonly bind: readable, not writable" "$out" grep -q 'ro-data' <<<"$out"
grep -q ro-denied <<<"$out" && [ ! -e "$TMP/ro/g" ]
verdict "docker --mount readonly bind: write refused" "$out"

# --- more of the life of a detached container: kill -s, exec -i/-u/-e/-w/-d, update, restart
"${R[@]}" -d --name k1 --pids-limit 100 --cpus 1 "$IMG" sh -c 'trap "echo got-usr1 > /tmp/usr1" USR1; trap "exit 0" TERM; while :; do sleep 0.1; done' >/dev/null 2>&1
out=$(timeout 30 "${DK[@]}" kill -s USR1 k1 2>&1); sleep 0.5
got=$(timeout 30 "${DK[@]}" exec k1 cat /tmp/usr1 2>&1)
check "docker kill -s USR1 reaches the container's trap" "$out $got" [ "$got" = got-usr1 ]
out=$(echo piped | timeout 30 "${DK[@]}" exec -i -u 1000:1000 -e BAR=baz -w /tmp k1 sh -c 'echo $(cat) $(id -u) $BAR $(pwd)' 2>&1)
check "docker exec -i -u -e -w" "$out" [ "$out" = "piped 1000 baz /tmp" ]
out=$(timeout 30 "${DK[@]}" exec -d k1 sh -c 'echo detached > /tmp/d' 2>&1); sleep 0.5
got=$(timeout 30 "${DK[@]}" exec k1 cat /tmp/d 2>&1)
check "docker exec -d runs detached" "$out $got" [ "$got" = detached ]
out=$(timeout 30 "${DK[@]}" exec k1 /no/such/binary 2>&1); rc=$?
check "docker exec of a missing binary exits 126 or 127 with a message" "rc=$rc $out" [ "$rc" = 126 -o "$rc" = 127 ]
out=$(timeout 30 "${DK[@]}" update --pids-limit 77 --cpus 0.25 k1 2>&1); rc=$?
v=$(timeout 30 "${DK[@]}" exec k1 sh -c 'cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || { cat /sys/fs/cgroup/pids.max; cut -d" " -f1 /sys/fs/cgroup/cpu.max; }' 2>&1)
check "docker update --pids-limit 77 --cpus 0.25: read back inside" "rc=$rc $out $v" [ "$rc" = 0 -a "$v" = "77
25000" ]
out=$(timeout 60 "${DK[@]}" restart -t 5 k1 2>&1); rc=$?
st=$("${DK[@]}" inspect -f '{{.State.Status}} {{.RestartCount}}' k1 2>&1)
got=$(timeout 30 "${DK[@]}" exec k1 sh -c 'cat /tmp/usr1; cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max' 2>&1)
check "docker restart: running again, same filesystem, updated limit kept" "rc=$rc $out $st $got" [ "$rc" = 0 -a "$st" = "running 0" -a "$got" = "got-usr1
77" ]
out=$(timeout 30 "${DK[@]}" top k1 -o pid,comm 2>&1)
check "docker top with ps options" "$out" grep -q 'sleep\|sh' <<<"$out"
"${DK[@]}" rm -f k1 >/dev/null 2>&1

# --- namespaces and cgroups: cgroupns private, host namespaces, pids limit enforced, blkio
out=$(timeout 60 "${R[@]}" --rm --cgroupns private --memory 48m "$IMG" sh -c 'cat /proc/self/cgroup | grep -m1 memory; cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max' 2>&1)
grep -qE ':memory:/$|^0::/$' <<<"$(head -1 <<<"$out")" && [ "$(tail -1 <<<"$out")" = 50331648 ]
verdict "docker --cgroupns private: the container's cgroup is its root, limit 48m readable" "$out"
want="$(for n in pid uts ipc; do readlink /proc/self/ns/$n; done) $(hostname)"
got=$(timeout 60 "${R[@]}" --rm --pid host --uts host --ipc host "$IMG" sh -c 'echo "$(for n in pid uts ipc; do readlink /proc/self/ns/$n; done) $(hostname)"' 2>&1)
check "docker --pid host --uts host --ipc host: the host's namespaces and hostname" "want=$want got=$got" [ "$want" = "$got" ]
out=$(timeout 60 "${R[@]}" --rm --pids-limit 20 "$IMG" /probe fork-bomb 100 2>&1)
grep -q '"errno":11' <<<"$out" && grep -qE '"forked":1[0-9],' <<<"$out"
verdict "docker --pids-limit 20: a fork bomb stops near 20 with EAGAIN" "$out"
dev=$(lsblk -dnro MAJ:MIN,NAME,TYPE 2>/dev/null | awk '$3 == "disk" && $1 !~ /^(1|7|251|252|253):/ {print $1, $2; exit}')
if [ -n "$dev" ] && [ -e /sys/fs/cgroup/blkio/blkio.throttle.read_bps_device ]; then
    out=$(timeout 60 "${R[@]}" --rm --device-read-bps "/dev/${dev#* }:1mb" --device-write-iops "/dev/${dev#* }:77" "$IMG" sh -c 'cat /sys/fs/cgroup/blkio/blkio.throttle.read_bps_device /sys/fs/cgroup/blkio/blkio.throttle.write_iops_device' 2>&1)
    check "docker --device-read-bps / --device-write-iops: blkio throttle files" "$out" [ "$out" = "${dev%% *} 1048576
${dev%% *} 77" ]
else
    skip "docker --device-read-bps" "no block device or no cgroup v1 blkio"
fi
out=$(timeout 60 "${R[@]}" --rm --cap-add SYS_ADMIN --mount type=tmpfs,dst=/mnt/t,tmpfs-size=65536 "$IMG" sh -c 'grep " /mnt/t " /proc/mounts; mkdir -p /tmp/m && mount -t tmpfs none /tmp/m && echo mounted' 2>&1)
grep -qE '^tmpfs /mnt/t tmpfs rw.*size=64k' <<<"$out" && grep -q mounted <<<"$out"
verdict "docker --mount type=tmpfs, --cap-add SYS_ADMIN lets mount(2) through" "$out"
out=$("${DK[@]}" info --format '{{.DefaultRuntime}} {{.RuncCommit.ID}}' 2>&1)
check "docker info reads the runtime's --version (commit line)" "$out" grep -qE '^husk [^ ]+$' <<<"$out"
"${R[@]}" -d --name s1 --stop-signal USR1 "$IMG" sh -c 'trap "exit 9" USR1; while :; do sleep 0.1; done' >/dev/null 2>&1
out=$(timeout 30 "${DK[@]}" stop -t 8 s1 2>&1)
ec=$("${DK[@]}" inspect -f '{{.State.ExitCode}}' s1 2>&1)
check "docker --stop-signal USR1: docker stop sends it" "$out exit=$ec" [ "$ec" = 9 ]
"${DK[@]}" rm -f s1 >/dev/null 2>&1

# --- a container without its own pid namespace: when its init exits, the shim runs
#     `kill --all ID 9` so that no process of it outlives it (here a background sleep)
out=$(timeout 60 "${R[@]}" --rm --pid host "$IMG" sh -c 'sleep 300 >/dev/null 2>&1 & echo $!' 2>&1)
left() { # the child still runs (no pipe: pipefail + grep -q would make this flaky)
    local c
    c=$({ tr '\0' ' ' <"/proc/$out/cmdline"; } 2>/dev/null)
    [ -n "$out" ] && [[ "$c" == "sleep 300"* ]]
}
gone() { ! left; }
wait_for 10 gone
msg="child pid $out$(left && echo ' still alive')"
! left
verdict "docker --pid host: a background child dies with the container (kill --all)" "$msg"

# --- paused containers must still stop and go away
"${R[@]}" -d --name pz1 "$IMG" sh -c 'while :; do sleep 0.1; done' >/dev/null 2>&1
"${R[@]}" -d --name pz2 "$IMG" sh -c 'while :; do sleep 0.1; done' >/dev/null 2>&1
"${DK[@]}" pause pz1 pz2 >/dev/null 2>&1
out=$(timeout 60 "${DK[@]}" stop -t 2 pz1 2>&1); rc=$?
st=$("${DK[@]}" inspect -f '{{.State.Status}}' pz1 2>&1)
check "docker stop of a paused container: exited" "rc=$rc $out $st" [ "$rc" = 0 -a "$st" = exited ]
out=$(timeout 60 "${DK[@]}" rm -f pz2 2>&1); rc=$?
check "docker rm -f of a paused container" "rc=$rc $out" [ "$rc" = 0 ]
"${DK[@]}" rm -f pz1 >/dev/null 2>&1

# --- husk up next to docker run: each flag set runs the probe once under `docker run` and once
#     under `husk up` (the same image: `docker save` into a store of husk's own), and the two
#     reports must be equal after NORM. NORM keeps what a flag can change; what it rewrites is
#     either a value that names an id or a path of the engine's own, each said below, or one of
#     the README's "Differences from docker run".
STORE=$TMP/store
UP=("$HUSK_BIN" --root "$TMP/uproot" up --store "$STORE" --pull never --network none)
out=$({ "${DK[@]}" save "$IMG" | "$HUSK_BIN" image --store "$STORE" import - "$IMG"; } 2>&1)
check "docker save | husk image import: the same image in husk's store" "$out" [ $? = 0 ]
# mountinfo: "ID PARENT MAJ:MIN ROOT POINT FLAGS [OPTIONAL...] - TYPE SOURCE SUPER"
NORM='
  # the hostname is the first 12 characters of the container id with both engines, and the ids
  # are random: equal when both follow that rule
  def host: if test("^[0-9a-f]{12}$") then "<first 12 of the id>" else . end;
  {hostname: (.hostname | host), uid, gid, euid, egid, groups, umask, cwd,
   # with --init the probe is not pid 1, and its pid is whatever the init forked
   pid1: (.pid == 1), ppid: (if .pid == 1 then .ppid else "<the init>" end),
   env: ([.env[] | if startswith("HOSTNAME=") then "HOSTNAME=" + (.[9:] | host) else . end] | sort),
   caps, no_new_privs, seccomp, rlimits, oom_score_adj, personality, sched, ioprio, sysctl,
   tty, cgroup_files,
   mounts: [.mountinfo[] | split(" - ") as $p | ($p[0] | split(" ")) as $a
            # --init: docker binds its docker-init, husk its husk-init (README: Differences)
            | {point: ($a[4] | sub("^/sbin/(docker|husk)-init$"; "/sbin/<init>")),
               type: ($p[1] | split(" ") | .[0]), flags: $a[5]}]}'
PROBE=(/probe --sysctl net.ipv4.ip_unprivileged_port_start --sysctl net.ipv4.ping_group_range --sysctl kernel.msgmax)
norm() { tr -d '\r' | jq -Se "$NORM" 2>/dev/null; }
declare -A DREP UREP
# same NAME FLAGS...: the normalized reports of docker run and husk up with FLAGS are equal
same() {
    local name=$1 d u dn un diff_out
    shift
    d=$(timeout 60 "${R[@]}" --rm "$@" "$IMG" "${PROBE[@]}" 2>&1)
    u=$(timeout 60 "${UP[@]}" --rm "$@" "$IMG" "${PROBE[@]}" 2>&1 </dev/null)
    dn=$(norm <<<"$d") || dn=
    un=$(norm <<<"$u") || un=
    DREP[$name]=$dn UREP[$name]=$un
    diff_out=$(diff <(printf '%s\n' "$dn") <(printf '%s\n' "$un"))
    # (the diff first: fail prints 40 lines)
    check "husk up ${*:-(no flags)}: the probe reports what docker run's does" "${diff_out:-reports: docker ${#dn} bytes, husk up ${#un} bytes}
docker: ${d:0:600}
husk up: ${u:0:600}" [ -n "$dn" -a -n "$un" -a -z "$diff_out" ]
}
mkdir -p "$TMP/vsrc" && echo v >"$TMP/vsrc/f"
same none
same user -u 1000:1000
same workdir -w /tmp
same env -e A=1
same readonly --read-only
same resources -m 64m --pids-limit 50 --cpus 0.5 --cpu-shares 512 --ulimit nofile=100:200
same volumes -v "$TMP/vsrc:/x:ro" --mount type=tmpfs,dst=/t2
same tmpfs --tmpfs /scratch:size=1m
same caps --cap-add SYS_ADMIN --cap-add NET_ADMIN --cap-drop CHOWN --cap-drop KILL
same nnp --security-opt no-new-privileges
same unconfined --security-opt seccomp=unconfined
# docker run --privileged gives every capability the kernel knows; under a bounding set that
# lacks some, the runtime's capset fails (runc's as well), so there is no report to compare
last=$(cat /proc/sys/kernel/cap_last_cap)
bnd=$(awk '/^CapBnd/ {print $2}' /proc/self/status)
if [ $((16#$bnd)) = $(((1 << (last + 1)) - 1)) ]; then
    same privileged --privileged
else
    skip "husk up --privileged: the probe reports what docker run's does" "the bounding set $bnd lacks capabilities up to $last: docker run --privileged fails (capset EPERM, runc too)"
fi
same systempaths --security-opt systempaths=unconfined
same tty -t
if file -L "$HUSK_BIN" | grep -q 'statically linked'; then
    same init --init
else
    skip "husk up --init: the probe reports what docker run's does" "$HUSK_BIN is not statically linked (husk up --init copies it into the container; make release)"
fi
same hostname -h box-7
# the comparison sees a difference: docker's report without flags against husk up's with -e A=1
diff_out=$(diff <(printf '%s\n' "${DREP[none]}") <(printf '%s\n' "${UREP[env]}"))
check "the comparison tells reports apart (docker run vs husk up -e A=1)" "${DREP[none]}" grep -q 'A=1' <<<"$diff_out"
out=$("$HUSK_BIN" --root "$TMP/uproot" list -q 2>&1; ls "$STORE/containers" 2>&1 | grep -v 'No such file')
check "husk up --rm left no container and no bundle" "$out" [ -z "$out" ]

# nothing left behind: no containers, no runtime state, no cgroups, no container processes
out=$("${DK[@]}" ps -aq 2>&1)
check "no containers left" "$out" [ -z "$out" ]
out=$(find "$TMP"/exec/runtime-* -mindepth 2 -maxdepth 2 2>/dev/null)
check "no runtime state left under the runtime root" "$out" [ -z "$out" ]
leftovers() { find /sys/fs/cgroup/*/"$CGPARENT" /sys/fs/cgroup/"$CGPARENT" -mindepth 1 -type d 2>/dev/null; cg_procs; }
out=$(settled leftovers)
check "no container cgroups or processes left" "$out" [ -z "$out" ]
finish
