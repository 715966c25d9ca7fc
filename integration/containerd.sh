#!/usr/bin/env bash
# Run the runtime from HUSK_BIN under a PRIVATE containerd (own config, root, state, sockets
# under a temp dir; no CRI) through ctr: foreground run with output and exit code, detached
# run + kill + delete, and a terminal (-t) run. Ends with "N passed, N failed".
#   HUSK_BIN=/usr/sbin/runc bash integration/containerd.sh    # validate the script with runc
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
HUSK_BIN=${HUSK_BIN:-$REPO/target/debug/husk}
TESTROOT=${HUSK_TESTROOT:-$REPO/target/testroot/rootfs}
PASS=0
FAIL=0
NS=husktest

say() { printf '%s\n' "$*"; }
pass() { PASS=$((PASS + 1)); say "ok   - $1"; }
fail() { FAIL=$((FAIL + 1)); say "FAIL - $1"; [ -n "${2:-}" ] && printf '%s\n' "$2" | sed 's/^/       /'; }

if [ "$(id -u)" != 0 ]; then
    say "SKIP containerd integration: needs root (uid $(id -u))"
    say "0 passed, 0 failed, 1 skipped"
    exit 0
fi
case "$HUSK_BIN" in
/*) ;;
*) HUSK_BIN=$(cd "$(dirname "$HUSK_BIN")" && pwd)/$(basename "$HUSK_BIN") ;;
esac
if [ ! -x "$HUSK_BIN" ]; then
    say "containerd integration: runtime $HUSK_BIN is not an executable"
    say "0 passed, 1 failed"
    exit 1
fi
if ! command -v containerd >/dev/null || ! command -v ctr >/dev/null || ! command -v script >/dev/null; then
    say "installing containerd (and util-linux for script) from Debian"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends containerd bsdutils >/dev/null ||
        { apt-get update >/dev/null && apt-get install -y --no-install-recommends containerd bsdutils >/dev/null; } || {
        say "0 passed, 1 failed"
        exit 1
    }
fi
[ -x "$TESTROOT/probe" ] || make -C "$REPO" testroot >/dev/null || {
    say "no test rootfs"
    say "0 passed, 1 failed"
    exit 1
}

TMP=$(mktemp -d /tmp/husk-ctrd.XXXXXX)
SOCK=$TMP/containerd.sock
CTRD_PID=
ID_PREFIX=hc-$$

cleanup() {
    set +e
    if [ -S "$SOCK" ]; then
        for id in $(ctr --address "$SOCK" -n "$NS" task ls -q 2>/dev/null); do
            ctr --address "$SOCK" -n "$NS" task kill -s SIGKILL "$id" >/dev/null 2>&1
            sleep 0.2
            ctr --address "$SOCK" -n "$NS" task delete -f "$id" >/dev/null 2>&1
        done
        for id in $(ctr --address "$SOCK" -n "$NS" container ls -q 2>/dev/null); do
            ctr --address "$SOCK" -n "$NS" container delete "$id" >/dev/null 2>&1
        done
    fi
    # shims and anything else started for this run: found by our unique temp dir, ended by pid
    for p in /proc/[0-9]*; do
        pid=${p#/proc/}
        [ "$pid" = $$ ] && continue
        if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF -- "$TMP"; then
            [ "$pid" = "$CTRD_PID" ] || kill -KILL "$pid" 2>/dev/null
        fi
    done
    if [ -n "$CTRD_PID" ]; then
        kill -TERM "$CTRD_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$CTRD_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$CTRD_PID" 2>/dev/null
        wait "$CTRD_PID" 2>/dev/null
    fi
    # unmount anything left under the temp dir, deepest first
    awk -v t="$TMP" '$5 == t || index($5, t "/") == 1 {print $5}' /proc/self/mountinfo | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

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
CTRD_PID=$!
for _ in $(seq 100); do
    ctr --address "$SOCK" version >/dev/null 2>&1 && break
    sleep 0.1
done
if ! ctr --address "$SOCK" version >/dev/null 2>&1; then
    fail "private containerd starts" "$(tail -20 "$TMP/containerd.log")"
    say "$PASS passed, $FAIL failed"
    exit 1
fi
pass "private containerd starts ($SOCK)"

CTR=(ctr --address "$SOCK" -n "$NS")
rootfs() { # a fresh copy of the test rootfs per container
    local d=$TMP/rootfs-$1
    cp -a "$TESTROOT" "$d"
    printf '%s' "$d"
}

# 1. foreground run: output and exit code pass through
id=$ID_PREFIX-fg
out=$(timeout 60 "${CTR[@]}" run --rm --runc-binary "$HUSK_BIN" --rootfs "$(rootfs fg)" "$id" \
    /bin/sh -c 'echo hello-from-husk; exit 3' 2>&1)
rc=$?
if [ "$rc" = 3 ] && grep -q '^hello-from-husk' <<<"$out"; then
    pass "ctr run --rm prints output and passes exit code 3"
else
    fail "ctr run --rm prints output and passes exit code 3 (rc=$rc)" "$out"
fi

# 2. the probe as pid 1 in its own namespaces
id=$ID_PREFIX-probe
out=$(timeout 60 "${CTR[@]}" run --rm --runc-binary "$HUSK_BIN" --rootfs "$(rootfs probe)" "$id" /probe 2>&1)
rc=$?
if [ "$rc" = 0 ] && grep -q '"pid":1,' <<<"$out" && grep -q "\"hostname\":" <<<"$out"; then
    pass "ctr run: the probe reports pid 1"
else
    fail "ctr run: the probe reports pid 1 (rc=$rc)" "$out"
fi

# 3. detached: run -d, task is RUNNING, kill, STOPPED, delete
id=$ID_PREFIX-bg
out=$(timeout 60 "${CTR[@]}" run -d --runc-binary "$HUSK_BIN" --rootfs "$(rootfs bg)" "$id" /probe sleep 300 2>&1)
rc=$?
status() { "${CTR[@]}" task ls 2>/dev/null | awk -v id="$1" '$1 == id {print $3}'; }
if [ "$rc" = 0 ] && [ "$(status "$id")" = RUNNING ]; then
    pass "ctr run -d: task RUNNING"
else
    fail "ctr run -d: task RUNNING (rc=$rc, status $(status "$id"))" "$out"
fi
out=$("${CTR[@]}" task kill -s SIGKILL "$id" 2>&1)
st=
for _ in $(seq 100); do
    st=$(status "$id")
    [ "$st" = STOPPED ] && break
    sleep 0.1
done
if [ "$st" = STOPPED ]; then pass "ctr task kill: task STOPPED"; else fail "ctr task kill: task STOPPED (status $st)" "$out"; fi
out=$("${CTR[@]}" task delete "$id" 2>&1)
rc=$?
if [ "$rc" = 0 ] && [ -z "$(status "$id")" ]; then pass "ctr task delete"; else fail "ctr task delete (rc=$rc)" "$out"; fi
"${CTR[@]}" container delete "$id" >/dev/null 2>&1

# 4. terminal: ctr run -t under a pty made by script(1)
id=$ID_PREFIX-tty
R=$(rootfs tty)
cmd="${CTR[*]} run --rm -t --runc-binary $HUSK_BIN --rootfs $R $id /bin/sh -c '[ -t 0 ] && [ -t 1 ] && echo IS-A-TTY; tty; exit 0'"
out=$(timeout 60 script -qec "$cmd" /dev/null </dev/null 2>&1)
rc=$?
if [ "$rc" = 0 ] && grep -q 'IS-A-TTY' <<<"$out" && grep -qE '^/dev/(pts/[0-9]+|console)' <<<"$(tr -d '\r' <<<"$out")"; then
    pass "ctr run -t: the process has a terminal"
else
    fail "ctr run -t: the process has a terminal (rc=$rc)" "$out"
fi

# nothing left: no tasks, no containers
left=$("${CTR[@]}" task ls -q 2>/dev/null; "${CTR[@]}" container ls -q 2>/dev/null)
if [ -z "$left" ]; then pass "no tasks or containers left"; else fail "no tasks or containers left" "$left"; fi

say "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
