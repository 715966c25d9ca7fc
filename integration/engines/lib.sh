# Shared helpers for the engine integration scripts (sourced, not run).
# Every script: a private daemon under its own temp dir, a locally imported image (no
# registry), scenarios that check the effect from inside the container, "ok - NAME" /
# "not ok - NAME" lines, and a closing "N passed, N failed".
# Cleanup touches only what the script created: processes whose command line names its temp
# dir (ended by pid), mounts under its temp dir, cgroups under its own cgroup parent.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HUSK_BIN=${HUSK_BIN:-$REPO/target/debug/husk}
case "$HUSK_BIN" in
/*) ;;
*) HUSK_BIN=$(cd "$(dirname "$HUSK_BIN")" && pwd)/$(basename "$HUSK_BIN") ;;
esac
TESTROOT=${HUSK_TESTROOT:-$REPO/target/testroot/rootfs}
PASS=0
FAIL=0
SKIP=0
DAEMON_PIDS=()
CGPARENT=

say() { printf '%s\n' "$*"; }
pass() { PASS=$((PASS + 1)); say "ok - $1"; }
fail() {
    FAIL=$((FAIL + 1))
    say "not ok - $1"
    [ -n "${2:-}" ] && printf '%s\n' "$2" | head -40 | sed 's/^/#    /'
    return 0
}
skip() { SKIP=$((SKIP + 1)); say "ok - $1 # SKIP ${2:-}"; }
# check NAME OUTPUT COND...: pass when the command COND succeeds, else fail with OUTPUT
check() {
    local name=$1 out=$2
    shift 2
    if "$@"; then pass "$name"; else fail "$name" "$out"; fi
}
# COND; verdict NAME OUTPUT: pass when the previous command succeeded
verdict() {
    local r=$?
    if [ "$r" = 0 ]; then pass "$1"; else fail "$1" "$2"; fi
}
finish() {
    if [ "$SKIP" -gt 0 ]; then say "$PASS passed, $FAIL failed, $SKIP skipped"; else say "$PASS passed, $FAIL failed"; fi
    [ "$FAIL" = 0 ]
}
die_setup() { # a setup step failed: one failure, the summary, exit
    fail "$1" "${2:-}"
    finish
    exit 1
}

need_root() {
    if [ "$(id -u)" != 0 ]; then
        say "ok - $1 # SKIP needs root (uid $(id -u))"
        say "0 passed, 0 failed, 1 skipped"
        exit 0
    fi
    [ -x "$HUSK_BIN" ] || die_setup "runtime $HUSK_BIN is not an executable"
    [ -x "$TESTROOT/probe" ] || make -C "$REPO" testroot >/dev/null || die_setup "test rootfs $TESTROOT"
}

# need_pkgs CMD:PKG...: install the Debian packages whose command is missing
need_pkgs() {
    local missing="" cp
    for cp in "$@"; do
        command -v "${cp%%:*}" >/dev/null || missing="$missing ${cp#*:}"
    done
    [ -z "$missing" ] && return 0
    say "# installing$missing from Debian"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends $missing >/dev/null 2>&1 ||
        { apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends $missing >/dev/null 2>&1; } ||
        die_setup "install$missing"
}

make_tmp() { # make_tmp NAME: the temp dir, the cgroup parent name
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/husk-$1.XXXXXX")
    chmod 0755 "$TMP"
    CGPARENT=husk-$1-${TMP##*.}
    trap cleanup_all EXIT
    trap 'exit 130' INT TERM
}

# The image: a tarball of the test rootfs (busybox + /probe), imported by each engine.
image_tar() {
    [ -f "$TMP/image.tar" ] || tar -C "$TESTROOT" -cf "$TMP/image.tar" .
    printf '%s' "$TMP/image.tar"
}

# wait_for SECS CMD...: poll CMD every 0.1 s until it succeeds
wait_for() {
    local n=$(($1 * 10))
    shift
    while [ "$n" -gt 0 ]; do
        "$@" && return 0
        sleep 0.1
        n=$((n - 1))
    done
    return 1
}

stop_pid() { # SIGTERM, wait up to 10 s, SIGKILL
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

# processes started for this run: their command line names our temp dir or cgroup parent
tmp_procs() {
    local p pid
    for p in /proc/[0-9]*; do
        pid=${p#/proc/}
        [ "$pid" = $$ ] && continue
        [ "$pid" = "$BASHPID" ] && continue
        if { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -qF -e "$TMP"; then echo "$pid"; fi
    done
}
# processes left in our cgroups (container processes)
cg_procs() {
    [ -n "$CGPARENT" ] || return 0
    find /sys/fs/cgroup/*/"$CGPARENT" /sys/fs/cgroup/"$CGPARENT" -name cgroup.procs 2>/dev/null |
        xargs -r cat 2>/dev/null | sort -u
}

# run "$@" until it prints nothing, up to 5 s; print its last output. Engines finish some
# teardown asynchronously (podman's conmon runs `podman container cleanup` after rm returns),
# so a process seen exiting is not a leftover, one still there after 5 s is.
settled() {
    local out
    for _ in $(seq 25); do
        out=$("$@")
        [ -z "$out" ] && return 0
        sleep 0.2
    done
    printf '%s\n' "$out"
}

cleanup_all() {
    set +e
    type engine_cleanup >/dev/null 2>&1 && engine_cleanup
    local pid
    for pid in "${DAEMON_PIDS[@]}"; do stop_pid "$pid"; done
    # shims, conmons, containers still around: thaw our frozen cgroups, then SIGKILL by pid
    if [ -n "$CGPARENT" ]; then
        find /sys/fs/cgroup/freezer/"$CGPARENT" -name freezer.state 2>/dev/null |
            while read -r f; do echo THAWED >"$f" 2>/dev/null; done
    fi
    for pid in $(tmp_procs) $(cg_procs); do kill -KILL "$pid" 2>/dev/null; done
    sleep 0.2
    # mounts under the temp dir (overlays, shm, netns, ...), deepest first
    local m
    for _ in 1 2 3; do
        awk -v t="$TMP" '$5 == t || index($5, t "/") == 1 {print $5}' /proc/self/mountinfo | sort -r |
            while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
    done
    # our cgroups, deepest first
    if [ -n "$CGPARENT" ]; then
        find /sys/fs/cgroup/*/"$CGPARENT" /sys/fs/cgroup/"$CGPARENT" -depth -type d 2>/dev/null |
            while read -r d; do rmdir "$d" 2>/dev/null; done
    fi
    [ -n "${KEEP_TMP:-}" ] || rm -rf "$TMP"
}
