#!/usr/bin/env bash
# The OCI runtime-tools checks Debian ships, against husk and runc.
#
# Debian's golang-github-opencontainers-runtime-tools-dev (0.9.0+git20220423) ships the suite's
# libraries only: `validate` (the bundle validator behind `oci-runtime-tool validate`),
# `cgroups` (the cgroup v1 readers the suite's linux_cgroups_* cases use to read back what a
# runtime applied), `generate` and `specerror`. It does not ship the suite's validation/ cases,
# cmd/runtimetest (the in-container checker) nor their TAP library (github.com/mndrix/tap-go,
# not packaged in Debian at all); the project builds from Debian's binary packages only, with no
# other download. So this stage builds, offline (GOPATH=/usr/share/gocode, GO111MODULE=off),
# integration/validation/main.go (`ocivalidate`, a thin driver of those libraries and of the
# runtime-spec JSON schemas Debian ships) and applies it to what each runtime produces:
#   spec, spec-rootless   the config.json `RUNTIME spec [--rootless]` writes, through the
#                         validator's host-specific checks and config-schema.json
#   cgroups-abs,          a container created with linux.resources (memory, cpu, cpuset, pids)
#   cgroups-rel           under an absolute / a relative cgroupsPath: `state` against
#                         state-schema.json when created, running and stopped, and the limits
#                         the container's cgroups hold, read by runtime-tools' readers, against
#                         the config (cgroup v1 only: the readers have no v2; SKIP on v2),
#                         and the device rules it allows in devices.list
#   generate              runtime-tools' own default config (generate.New, the base of the
#                         suite's cases) through the validator, then run to exit 0
#   left                  nothing left after delete: state entries, cgroups
# Each check is one TAP line; a case is a set of checks. The rule, per check: one that passes
# under runc must pass under husk (else it fails the stage), unless it is listed in KNOWN_DIFF
# below with the reason; one failing under both is reported with the reason, not failed; one
# husk passes and runc fails is reported as such. Ends with "validation: N passed, N failed,
# N skipped" (skipped: the checks failing under both, documented differences, TAP skips).
#   bash integration/validation.sh            # HUSK_BIN (default target/debug/husk) and RUNC_BIN
#   HUSK_BIN=/usr/sbin/runc bash integration/validation.sh   # runc against itself
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HUSK_BIN=${HUSK_BIN:-$REPO/target/debug/husk}
case "$HUSK_BIN" in /*) ;; *) HUSK_BIN=$REPO/$HUSK_BIN ;; esac
RUNC_BIN=${RUNC_BIN:-/usr/sbin/runc}
TESTROOT=${HUSK_TESTROOT:-$REPO/target/testroot/rootfs}
BUILD=$REPO/target/validation
GOSRC=/usr/share/gocode/src/github.com/opencontainers
TIMEOUT=${VALIDATION_TIMEOUT:-30}

# Checks where husk and runc differ because the check is wrong about the spec or depends on
# what runc does, each with the reason (printed whenever it applies).
declare -A KNOWN_DIFF=(
    # runtime-tools' validator "currently only handles version 1.0.2-dev" (CheckSemVer compares
    # ociVersion with the runtime-spec it was built against, Debian's 1.0.2-dev); husk writes
    # the version it implements, 1.2.0, runc 1.1 writes 1.0.2-dev
    [spec/ociVersion]="the validator accepts only ociVersion 1.0.2-dev (its runtime-spec); husk implements and writes 1.2.0"
    [spec-rootless/ociVersion]="the validator accepts only ociVersion 1.0.2-dev (its runtime-spec); husk implements and writes 1.2.0"
)

if [ "$(id -u)" != 0 ]; then
    echo "SKIP validation: needs root (uid $(id -u))"
    echo "validation: 0 passed, 0 failed, 1 skipped"
    exit 0
fi
for f in "$HUSK_BIN" "$RUNC_BIN"; do
    [ -x "$f" ] || { echo "validation: runtime $f is not an executable" >&2; exit 1; }
done
[ -x "$TESTROOT/bin/busybox" ] || { echo "validation: no test rootfs at $TESTROOT (make testroot)" >&2; exit 1; }
command -v go >/dev/null || { echo "validation: go missing (make deps: golang-go)" >&2; exit 1; }
command -v jq >/dev/null || { echo "validation: jq missing (make deps)" >&2; exit 1; }
[ -d "$GOSRC/runtime-tools/validate" ] || { echo "validation: $GOSRC/runtime-tools missing (make deps: golang-github-opencontainers-runtime-tools-dev)" >&2; exit 1; }

start=$(date +%s)
TMP=$(mktemp -d /tmp/husk-validation.XXXXXX)
chmod 0755 "$TMP"
TAG=hv${TMP##*.}
CREATED=() # "runtime state-root id" of each container created, for the cleanup
CGPATHS=() # the cgroupsPaths given, for the cleanup
cleanup() {
    local e r id p c
    for e in "${CREATED[@]+"${CREATED[@]}"}"; do
        read -r r root id <<<"$e"
        p=$(timeout 10 "$r" --root "$root" state "$id" 2>/dev/null | jq -r '.pid // 0' 2>/dev/null || echo 0)
        timeout 10 "$r" --root "$root" delete --force "$id" >/dev/null 2>&1 || true
        if [ "${p:-0}" -gt 0 ] 2>/dev/null && [ -d "/proc/$p" ] && grep -qa "$TAG" "/proc/$p/cgroup" 2>/dev/null; then
            kill -9 "$p" 2>/dev/null || true
        fi
    done
    # the runtimes remove their cgroups on delete; anything left by a failed run goes here
    for p in "${CGPATHS[@]+"${CGPATHS[@]}"}"; do
        for c in /sys/fs/cgroup/*/; do
            case $p in
            /*) [ -d "$c${p#/}" ] && rmdir "$c${p#/}" 2>/dev/null || true ;;
            *) find "$c" -depth -type d -path "*/$p" -exec rmdir {} \; 2>/dev/null || true ;;
            esac
        done
    done
    # the parents of the relative paths the runtimes made (below the caller's cgroup) stay
    find /sys/fs/cgroup -mindepth 1 -maxdepth 8 -type d -name "$TAG" 2>/dev/null | while read -r c; do
        find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== building ocivalidate (GOPATH=/usr/share/gocode, GO111MODULE=off, offline)"
mkdir -p "$BUILD/gopath" "$BUILD/gocache"
(cd "$REPO/integration/validation" &&
    GOPATH=$BUILD/gopath:/usr/share/gocode GO111MODULE=off GOFLAGS= GOPROXY=off \
        GOCACHE=$BUILD/gocache CGO_ENABLED=0 go build -o "$BUILD/ocivalidate" .)
OV=$BUILD/ocivalidate

# run_case RUNTIME_NAME CASE CMD...: CMD prints TAP; keep its lines as $TMP/res/NAME/CASE
run_case() {
    local name=$1 case=$2
    shift 2
    mkdir -p "$TMP/res/$name"
    "$@" >"$TMP/res/$name/$case" 2>&1 || true
}
# tap CASE CMD...: run an ocivalidate check with the timeout, its TAP lines prefixed by CASE/
tap() {
    local case=$1
    shift
    local out rc=0
    out=$(timeout "$TIMEOUT" "$@" 2>&1) || rc=$?
    printf '%s\n' "$out" | grep -E '^(not )?ok |^# ' || true
    if [ "$rc" = 124 ]; then echo "not ok - timeout after ${TIMEOUT}s: $*"; fi
    if [ "$rc" = 2 ]; then echo "not ok - $case: $out"; fi
}
# step NAME CMD...: one runtime operation as a TAP line. Its output goes to a file, not a pipe:
# the container's process inherits the runtime's stdio at create and would hold a pipe open.
step() {
    local name=$1 out
    shift
    out=$(mktemp "$TMP/out.XXXXXX")
    if timeout "$TIMEOUT" "$@" </dev/null >"$out" 2>&1; then
        echo "ok - $name"
    else
        echo "not ok - $name"
        head -5 "$out" | sed 's/^/# /'
        return 1
    fi
}

case_spec() { # case_spec RUNTIME [--rootless]
    local rt=$1 b
    b=$(mktemp -d "$TMP/bundle.XXXXXX")
    mkdir "$b/rootfs"
    cp -a "$TESTROOT/." "$b/rootfs/"
    step "spec ${2:-}" sh -c "cd '$b' && exec '$rt' spec ${2:-}" || return 0
    tap spec "$OV" config "$b"
}

case_cgroups() { # case_cgroups RUNTIME CGROUPSPATH
    local rt=$1 cg=$2 b id root st pid i
    b=$(mktemp -d "$TMP/bundle.XXXXXX")
    mkdir "$b/rootfs"
    cp -a "$TESTROOT/." "$b/rootfs/"
    (cd "$b" && "$rt" spec)
    jq --arg cg "$cg" '.process.terminal = false | .process.args = ["sleep", "300"]
        | .linux.cgroupsPath = $cg
        | .linux.resources.memory = {limit: 67108864, reservation: 33554432, swap: 134217728, swappiness: 10}
        | .linux.resources.cpu = {shares: 512, quota: 50000, period: 100000, cpus: "0", mems: "0"}
        | .linux.resources.pids = {limit: 64}
        | .linux.resources.devices += [{allow: true, type: "c", major: 10, minor: 229, access: "rwm"},
                                       {allow: true, type: "b", major: 8, minor: 0, access: "r"}]' "$b/config.json" >"$b/config.json.new"
    mv "$b/config.json.new" "$b/config.json"
    id=$TAG-$rtname-${cg##*/}
    root=$TMP/state-$rtname
    CGPATHS+=("$cg")
    CREATED+=("$rt $root $id")
    step "create" "$rt" --root "$root" create --bundle "$b" "$id" || return 0
    timeout "$TIMEOUT" "$rt" --root "$root" state "$id" >"$b/state.created" 2>&1 || true
    tap state "$OV" state created "$b/state.created"
    pid=$(jq -r '.pid // 0' "$b/state.created" 2>/dev/null || echo 0)
    if [ "${pid:-0}" -gt 0 ] 2>/dev/null; then
        tap cgroups "$OV" cgroups "$b" "$pid"
    else
        echo "not ok - cgroups: no pid in the state"
    fi
    step "start" "$rt" --root "$root" start "$id" || true
    timeout "$TIMEOUT" "$rt" --root "$root" state "$id" >"$b/state.running" 2>&1 || true
    tap state "$OV" state running "$b/state.running"
    step "kill KILL" "$rt" --root "$root" kill "$id" KILL || true
    for i in $(seq 1 100); do
        timeout "$TIMEOUT" "$rt" --root "$root" state "$id" >"$b/state.stopped" 2>&1 || true
        [ "$(jq -r .status "$b/state.stopped" 2>/dev/null)" = stopped ] && break
        sleep 0.05
    done
    tap state "$OV" state stopped "$b/state.stopped"
    step "delete" "$rt" --root "$root" delete "$id" || true
}

# generate: runtime-tools' own default config (generate.New, the base of the suite's cases:
# its namespaces, capabilities, rlimits, mounts) through the validator, then run to exit 0
case_generate() { # case_generate RUNTIME
    local rt=$1 b id
    b=$(mktemp -d "$TMP/bundle.XXXXXX")
    mkdir "$b/rootfs"
    cp -a "$TESTROOT/." "$b/rootfs/"
    step "generate the default config" "$OV" generate "$b" sh -c 'exit 0' || return 0
    tap generate "$OV" config "$b"
    id=$TAG-$rtname-gen
    CREATED+=("$rt $TMP/state-$rtname $id")
    step "run exits 0" "$rt" --root "$TMP/state-$rtname" run --bundle "$b" "$id" || true
}

# left: after delete, no container in the runtime's state and no cgroup of the two above
case_left() { # case_left RUNTIME
    local rt=$1 ids cgs
    ids=$(timeout "$TIMEOUT" "$rt" --root "$TMP/state-$rtname" list -q 2>/dev/null || true)
    cgs=$(find /sys/fs/cgroup -mindepth 1 -maxdepth 8 -type d \( -name "abs-$rtname" -o -name "rel-$rtname" \) -path "*/$TAG/*" 2>/dev/null || true)
    if [ -z "$ids$cgs" ]; then
        echo "ok - nothing left after delete"
    else
        echo "not ok - nothing left after delete"
        printf '%s\n' $ids $cgs | sed 's/^/# left: /'
    fi
}

CASES=(spec spec-rootless cgroups-abs cgroups-rel generate left)
for name in husk runc; do
    rtname=$name # the runtime the case functions run (husk or runc)
    if [ $name = husk ]; then rt=$HUSK_BIN; else rt=$RUNC_BIN; fi
    echo "== $name: $rt"
    run_case $name spec case_spec "$rt"
    run_case $name spec-rootless case_spec "$rt" --rootless
    run_case $name cgroups-abs case_cgroups "$rt" "/$TAG/abs-$name"
    run_case $name cgroups-rel case_cgroups "$rt" "$TAG/rel-$name"
    run_case $name generate case_generate "$rt"
    run_case $name left case_left "$rt"
    for c in "${CASES[@]}"; do
        sed "s/^/$name $c: /" "$TMP/res/$name/$c"
    done
done

# The verdicts: per check (CASE/NAME, the TAP description without its number)
# status FILE: lines "NAME<TAB>ok|fail|skip" in order
status() {
    awk '/^ok / || /^not ok / {
        s = ($1 == "ok") ? "ok" : "fail"
        line = $0
        sub(/^(not )?ok [0-9]* ?- /, "", line)
        if (line ~ / # SKIP/) { s = "skip"; sub(/ # SKIP.*/, "", line) }
        print line "\t" s
    }' "$1"
}
# reason FILE NAME: the "# ..." diagnostic lines after NAME's TAP line
reason() {
    awk -v n="$2" '
        /^(not )?ok / { cur = $0; sub(/^(not )?ok [0-9]* ?- /, "", cur); sub(/ # SKIP.*/, "", cur); next }
        /^# / && cur == n { sub(/^# /, ""); printf "%s ", $0 }' "$1" | cut -c1-300
}

# skip_reason FILE NAME: what NAME's "# SKIP" says
skip_reason() {
    awk -v n="$2" '/^ok / && / # SKIP/ {
        cur = $0; sub(/^ok [0-9]* ?- /, "", cur); r = cur; sub(/ # SKIP.*/, "", cur); sub(/.* # SKIP */, "", r)
        if (cur == n) print r }' "$1" | head -1
}

passed=0 failed=0 skipped=0
printf '\n%-16s %-22s   %-22s\n' "" "husk: ok/not ok/skip" "runc: ok/not ok/skip"
for c in "${CASES[@]}"; do
    declare -A H=() R=()
    while IFS=$'\t' read -r n s; do H[$n]=$s; done < <(status "$TMP/res/husk/$c")
    while IFS=$'\t' read -r n s; do R[$n]=$s; done < <(status "$TMP/res/runc/$c")
    counts() { # counts ASSOC-NAME
        local -n a=$1
        local o=0 f=0 s=0 k
        for k in "${!a[@]}"; do
            case ${a[$k]} in ok) o=$((o + 1)) ;; fail) f=$((f + 1)) ;; skip) s=$((s + 1)) ;; esac
        done
        printf '%-22s' "$o/$f/$s"
    }
    printf '%-16s %s   %s\n' "$c" "$(counts H)" "$(counts R)"
    # every check either runtime ran (a check only one of them got to is a failure of the other)
    while IFS= read -r n; do
        h=${H[$n]:-missing} r=${R[$n]:-missing} key=$c/$n
        if [ "$h" = skip ]; then
            skipped=$((skipped + 1))
            echo "SKIP validation $key: $(skip_reason "$TMP/res/husk/$c" "$n")"
        elif [ "$h" = ok ]; then
            passed=$((passed + 1))
            [ "$r" = ok ] || [ "$r" = skip ] || echo "  husk passes, runc fails: $key: $(reason "$TMP/res/runc/$c" "$n")"
        elif [ "$r" = ok ]; then
            if [ -n "${KNOWN_DIFF[$key]:-}" ]; then
                skipped=$((skipped + 1))
                echo "SKIP validation $key: documented difference: ${KNOWN_DIFF[$key]}"
            else
                failed=$((failed + 1))
                echo "  FAIL $key: passes under runc, fails under husk: $(reason "$TMP/res/husk/$c" "$n")"
            fi
        else
            skipped=$((skipped + 1))
            hr=$(reason "$TMP/res/husk/$c" "$n") rr=$(reason "$TMP/res/runc/$c" "$n")
            if [ "$hr" = "$rr" ]; then
                echo "SKIP validation $key: fails under husk and runc alike: $hr"
            else
                echo "SKIP validation $key: fails under husk and runc: husk: $hr runc: $rr"
            fi
        fi
    done < <(printf '%s\n' "${!H[@]}" "${!R[@]}" | sort -u)
    unset H R
done
echo "validation took $(($(date +%s) - start)) s"
echo "validation: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
