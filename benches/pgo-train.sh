#!/usr/bin/env bash
# Training run for the profile-guided release build (`make release`, see the Makefile).
#   benches/pgo-train.sh INSTRUMENTED_HUSK ROOTFS PROFILE_DIR
#   benches/pgo-train.sh HUSK ROOTFS -     the same commands, no profiles expected (the run
#                                          benches/text-order traces for the function order)
# Runs the everyday command paths an engine drives (run, create/start/state/exec/kill/delete,
# list, spec, --version) on a bundle over the test rootfs, with each husk process writing its
# counters to PROFILE_DIR. Needs root (it runs real containers). Everything it creates — state
# dir, bundle, containers, cgroups — is removed on exit, also on failure.
set -euo pipefail
bin=$1 rootfs=$2 out=$3
[ "$(id -u)" = 0 ] || { echo "pgo-train: needs root (it runs containers)" >&2; exit 1; }
[ -x "$rootfs/bin/busybox" ] || { echo "pgo-train: $rootfs is not the test rootfs (make testroot)" >&2; exit 1; }
command -v jq >/dev/null || { echo "pgo-train: jq missing (make deps)" >&2; exit 1; }

tmp=$(mktemp -d /tmp/husk-pgo.XXXXXX)
cg=husk-pgo-$$
h=("$bin" --root "$tmp/state")
cleanup() {
    local id
    for id in $("${h[@]}" list -q 2>/dev/null); do "${h[@]}" delete --force "$id" >/dev/null 2>&1 || true; done
    find /sys/fs/cgroup/*/"$cg" /sys/fs/cgroup/"$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

if [ "$out" != - ]; then
    export LLVM_PROFILE_FILE="$out/%p-%m.profraw"
    mkdir -p "$out"
fi
mkdir -p "$tmp/bundle"
(cd "$tmp/bundle" && "$bin" spec)
"$bin" --version >/dev/null
jq --arg r "$rootfs" --arg cg "/$cg" \
    '.root = {path: $r, readonly: true} | .process.terminal = false | .process.args = ["/bin/true"]
     | .linux.cgroupsPath = ($cg + "/" + "c")' \
    "$tmp/bundle/config.json" >"$tmp/c.json" && mv "$tmp/c.json" "$tmp/bundle/config.json"

# the same from inside a bundle (no --bundle: the current directory) whose config has no
# cgroupsPath (the default path), as a person at a shell runs it
mkdir -p "$tmp/bundle2"
jq 'del(.linux.cgroupsPath)' "$tmp/bundle/config.json" >"$tmp/bundle2/config.json"

for i in 1 2 3 4 5; do
    (cd "$tmp/bundle2" && "${h[@]}" run "pgo-$$-d$i")
    "${h[@]}" run --bundle "$tmp/bundle" "t$i"
    "${h[@]}" create --bundle "$tmp/bundle" "p$i"
    "${h[@]}" state "p$i" >/dev/null
    "${h[@]}" start "p$i"
    "${h[@]}" delete --force "p$i"
done
# a long-running container for exec, list, kill
jq '.process.args = ["/bin/sleep", "60"]' "$tmp/bundle/config.json" >"$tmp/c.json" && mv "$tmp/c.json" "$tmp/bundle/config.json"
"${h[@]}" run --detach --bundle "$tmp/bundle" s
for i in 1 2 3 4 5; do "${h[@]}" exec s /bin/true; done
"${h[@]}" list >/dev/null
"${h[@]}" list --format json >/dev/null
"${h[@]}" kill s KILL
for _ in $(seq 50); do [ "$("${h[@]}" state s | jq -r .status)" = stopped ] && break; sleep 0.1; done
"${h[@]}" delete s
[ "$out" = - ] && exit 0
n=$(find "$out" -name '*.profraw' | wc -l)
[ "$n" -gt 0 ] || { echo "pgo-train: no profiles written to $out" >&2; exit 1; }
echo "pgo-train: $n profiles"
