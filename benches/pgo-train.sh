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
    local id m
    "${h[@]}" rm --store "$tmp/store" -f "pgo-$$-m" >/dev/null 2>&1 || true
    for id in $("${h[@]}" list -q 2>/dev/null); do "${h[@]}" delete --force "$id" >/dev/null 2>&1 || true; done
    awk -v t="$tmp/" 'index($5, t) == 1 {print $5}' /proc/self/mountinfo | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null || true; done
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

# husk up: a foreground run, and a detached container's monitor (its start, its loop, its end)
# from a store of one image (the test rootfs as one layer) written here
st=$tmp/store
mkdir -p "$st/blobs/sha256"
blob() { # FILE -> its digest; the file moves into the store
    local d
    d=$(sha256sum "$1" | cut -d' ' -f1)
    mv "$1" "$st/blobs/sha256/$d"
    echo "sha256:$d"
}
tar -C "$rootfs" -cf "$tmp/layer.tar" .
lsize=$(stat -c %s "$tmp/layer.tar")
layer=$(blob "$tmp/layer.tar")
jq -n --arg l "$layer" '{architecture: "amd64", os: "linux",
    config: {Cmd: ["sh"], Env: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]},
    rootfs: {type: "layers", diff_ids: [$l]}}' >"$tmp/config.json"
csize=$(stat -c %s "$tmp/config.json")
config=$(blob "$tmp/config.json")
jq -n --arg c "$config" --argjson cs "$csize" --arg l "$layer" --argjson ls "$lsize" \
    '{schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $c, size: $cs},
      layers: [{mediaType: "application/vnd.oci.image.layer.v1.tar", digest: $l, size: $ls}]}' \
    >"$tmp/manifest.json"
msize=$(stat -c %s "$tmp/manifest.json")
manifest=$(blob "$tmp/manifest.json")
printf '{"imageLayoutVersion":"1.0.0"}' >"$st/oci-layout"
jq -n --arg m "$manifest" --argjson ms "$msize" \
    '{schemaVersion: 2, manifests: [{mediaType: "application/vnd.oci.image.manifest.v1+json",
      digest: $m, size: $ms,
      annotations: {"org.opencontainers.image.ref.name": "docker.io/library/pgo:latest"}}]}' \
    >"$st/index.json"
up=("${h[@]}" up --store "$st" --pull never --network none)
for i in 1 2 3; do "${up[@]}" --rm pgo true; done
mon=pgo-$$-m
"${up[@]}" -d --name "$mon" pgo sh -c 'echo started; sleep 60' >/dev/null
for _ in $(seq 50); do "${h[@]}" logs --store "$st" "$mon" 2>/dev/null | grep -q started && break; sleep 0.1; done
"${h[@]}" stop --store "$st" -t 1 "$mon" >/dev/null
"${h[@]}" rm --store "$st" "$mon" >/dev/null

[ "$out" = - ] && exit 0
n=$(find "$out" -name '*.profraw' | wc -l)
[ "$n" -gt 0 ] || { echo "pgo-train: no profiles written to $out" >&2; exit 1; }
echo "pgo-train: $n profiles"
