#!/usr/bin/env bash
# Run the runtime from HUSK_BIN under a PRIVATE containerd (own config, root, state, sockets,
# runc root and cgroup parent under a temp dir; no CRI) through ctr: foreground run with output
# and exit code, detached run, exec with and without a terminal, pause/resume, metrics, kill,
# delete, and a terminal (-t) run. Ends with "N passed, N failed".
#   HUSK_BIN=/usr/sbin/runc bash integration/containerd.sh    # validate the script with runc
set -uo pipefail
. "$(dirname "$0")/engines/lib.sh"
NS=husktest

need_root "containerd integration"
need_pkgs containerd:containerd ctr:containerd script:bsdutils
make_tmp ctrd
SOCK=$TMP/containerd.sock
ID_PREFIX=hc-$$

engine_cleanup() {
    [ -S "$SOCK" ] || return 0
    local id
    for id in $(ctr --address "$SOCK" -n "$NS" task ls -q 2>/dev/null); do
        ctr --address "$SOCK" -n "$NS" task resume "$id" >/dev/null 2>&1
        ctr --address "$SOCK" -n "$NS" task kill -s SIGKILL "$id" >/dev/null 2>&1
        sleep 0.2
        ctr --address "$SOCK" -n "$NS" task delete -f "$id" >/dev/null 2>&1
    done
    for id in $(ctr --address "$SOCK" -n "$NS" container ls -q 2>/dev/null); do
        ctr --address "$SOCK" -n "$NS" container delete "$id" >/dev/null 2>&1
    done
}

mkdir -p "$TMP/root" "$TMP/state" "$TMP/opt"
cat >"$TMP/config.toml" <<EOT
version = 2
root = "$TMP/root"
state = "$TMP/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$TMP/containerd-ttrpc.sock"
[debug]
  address = "$TMP/debug.sock"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$TMP/opt"
EOT
containerd --config "$TMP/config.toml" >"$TMP/containerd.log" 2>&1 &
DAEMON_PIDS+=($!)
wait_for 10 ctr --address "$SOCK" version >/dev/null 2>&1 ||
    die_setup "private containerd starts" "$(tail -20 "$TMP/containerd.log")"
pass "private containerd starts ($SOCK)"

CTR=(ctr --address "$SOCK" -n "$NS")
# ctr run with the runtime under test, its root and the cgroup under the temp dir / our parent
RUNC=(--runc-binary "$HUSK_BIN" --runc-root "$TMP/runc")
cg() { printf '%s' "--cgroup=/$CGPARENT/$1"; }
rootfs() { # a fresh copy of the test rootfs per container
    local d=$TMP/rootfs-$1
    cp -a "$TESTROOT" "$d"
    printf '%s' "$d"
}

# 1. foreground run: output and exit code pass through
id=$ID_PREFIX-fg
out=$(timeout 60 "${CTR[@]}" run --rm "${RUNC[@]}" "$(cg "$id")" --rootfs "$(rootfs fg)" "$id" \
    /bin/sh -c 'echo hello-from-husk; exit 3' 2>&1)
rc=$?
check "ctr run --rm prints output and passes exit code 3" "rc=$rc $out" [ "$rc" = 3 -a "$out" = hello-from-husk ]

# 2. the probe as pid 1 in its own namespaces
id=$ID_PREFIX-probe
out=$(timeout 60 "${CTR[@]}" run --rm "${RUNC[@]}" "$(cg "$id")" --rootfs "$(rootfs probe)" "$id" /probe 2>&1)
rc=$?
[ "$rc" = 0 ] && grep -q '"pid":1,' <<<"$out" && grep -q '"hostname":' <<<"$out"
verdict "ctr run: the probe reports pid 1" "rc=$rc $out"

# 3. detached: run -d, RUNNING, the runtime's own state, exec, exec -t, pause/resume, metrics,
#    kill, STOPPED, delete
id=$ID_PREFIX-bg
R=$(rootfs bg)
LOOP='echo started > /tmp/marker; i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done'
out=$(timeout 60 "${CTR[@]}" run -d "${RUNC[@]}" "$(cg "$id")" --memory-limit 67108864 --rootfs "$R" "$id" /bin/sh -c "$LOOP" 2>&1)
rc=$?
status() { "${CTR[@]}" task ls 2>/dev/null | awk -v id="$1" '$1 == id {print $3}'; }
check "ctr run -d: task RUNNING" "rc=$rc status=$(status "$id") $out" [ "$rc" = 0 -a "$(status "$id")" = RUNNING ]
wait_for 10 test -s "$R/tmp/count"
out=$("$HUSK_BIN" --root "$TMP/runc/$NS" state "$id" 2>&1)
check "the task is HUSK_BIN's: its state says running" "$out" grep -q '"status": *"running"' <<<"$out"
out=$(timeout 30 "${CTR[@]}" task exec --exec-id ex1 "$id" /bin/sh -c 'cat /tmp/marker; [ -t 1 ] || echo no-tty; exit 4' 2>&1)
rc=$?
check "ctr task exec: joins the task (sees its /tmp), no tty, exit code 4" "rc=$rc $out" [ "$rc" = 4 -a "$out" = "started
no-tty" ]
# ctr's default spec leaves /sys/fs/cgroup empty on cgroup v1: read the task's cgroup from the host
out=$(cat "/sys/fs/cgroup/memory/$CGPARENT/$id/memory.limit_in_bytes" 2>/dev/null || cat "/sys/fs/cgroup/$CGPARENT/$id/memory.max" 2>&1)
check "ctr run --memory-limit: the task's cgroup limit" "$out" [ "$out" = 67108864 ]
out=$(timeout 30 "${CTR[@]}" task ps "$id" 2>&1)
rc=$?
pid1=$("${CTR[@]}" task ls 2>/dev/null | awk -v id="$id" '$1 == id {print $2}')
[ "$rc" = 0 ] && [ -n "$pid1" ] && grep -qE "^$pid1( |$)" <<<"$out" && [ "$(grep -cE '^[0-9]+' <<<"$out")" -ge 2 ]
verdict "ctr task ps: the init pid and its child" "rc=$rc init=$pid1 $out"
cmd="${CTR[*]} task exec -t --exec-id ex2 $id /bin/sh -c '[ -t 0 ] && [ -t 1 ] && echo IS-A-\$((6*7)); tty'"
out=$(timeout 60 script -qec "$cmd" /dev/null </dev/null 2>&1 | tr -d '\r')
rc=$?
check "ctr task exec -t: a pty" "rc=$rc $out" grep -q 'IS-A-42' <<<"$out"
out=$(timeout 30 "${CTR[@]}" task pause "$id" 2>&1)
rc=$?
st=$(status "$id")
c1=$(cat "$R/tmp/count"); sleep 1; c2=$(cat "$R/tmp/count")
check "ctr task pause: PAUSED, the counter stops" "rc=$rc status=$st $c1 $c2 $out" [ "$rc" = 0 -a "$st" = PAUSED -a "$c1" = "$c2" ]
out=$(timeout 30 "${CTR[@]}" task resume "$id" 2>&1)
rc=$?
st=$(status "$id")
sleep 0.5; c3=$(cat "$R/tmp/count")
check "ctr task resume: RUNNING, the counter moves on" "rc=$rc status=$st $c2 $c3 $out" [ "$rc" = 0 -a "$st" = RUNNING -a "$c3" != "$c2" ]
out=$(timeout 30 "${CTR[@]}" task metrics "$id" 2>&1)
rc=$?
# cgroup v1: a table with memory.usage_in_bytes, pids.current...; v2: memory.current...
[ "$rc" = 0 ] && grep -qE '^(pids\.current|pids\.current) +[1-9]' <<<"$out" && grep -qE '^memory\.(usage_in_bytes|current) +[1-9]' <<<"$out"
verdict "ctr task metrics: pids and memory in use" "rc=$rc $out"
out=$("${CTR[@]}" task kill -s SIGKILL "$id" 2>&1)
wait_for 10 test "$(status "$id")" = STOPPED
check "ctr task kill: task STOPPED" "status $(status "$id") $out" [ "$(status "$id")" = STOPPED ]
out=$("${CTR[@]}" task delete "$id" 2>&1)
rc=$?
check "ctr task delete" "rc=$rc $out" [ "$rc" = 0 -a -z "$(status "$id")" ]
"${CTR[@]}" container delete "$id" >/dev/null 2>&1
out=$(ls "$TMP/runc/$NS" 2>&1; find /sys/fs/cgroup/*/"$CGPARENT" /sys/fs/cgroup/"$CGPARENT" -mindepth 1 -type d -name "$id" 2>/dev/null)
check "delete leaves no runtime state and no cgroup" "$out" [ -z "$out" ]

# 4. terminal: ctr run -t under a pty made by script(1)
id=$ID_PREFIX-tty
R=$(rootfs tty)
cmd="${CTR[*]} run --rm -t ${RUNC[*]} $(cg "$id") --rootfs $R $id /bin/sh -c '[ -t 0 ] && [ -t 1 ] && echo IS-A-TTY; tty; exit 0'"
out=$(timeout 60 script -qec "$cmd" /dev/null </dev/null 2>&1)
rc=$?
[ "$rc" = 0 ] && grep -q 'IS-A-TTY' <<<"$out" && grep -qE '^/dev/(pts/[0-9]+|console)' <<<"$(tr -d '\r' <<<"$out")"
verdict "ctr run -t: the process has a terminal" "rc=$rc $out"

# nothing left: no tasks, no containers
left=$("${CTR[@]}" task ls -q 2>/dev/null; "${CTR[@]}" container ls -q 2>/dev/null)
check "no tasks or containers left" "$left" [ -z "$left" ]
finish
