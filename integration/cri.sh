#!/usr/bin/env bash
# Kubernetes' view of the runtime: a PRIVATE containerd (Debian's 1.6, CRI plugin on: own config,
# socket, root, state, CNI config, cgroup parent, all under a temp dir) with HUSK_BIN and runc
# registered as runtime handlers, driven over CRI by the project's own client
# (integration/cri, on the k8s-cri protocol crate). containerd runs in a network namespace this
# script creates, so the pods' bridge, veths and addresses never touch the machine's own; the
# pod network namespaces are kept under the temp dir. Images are built locally from the test
# rootfs (integration/cri/image.py) and imported with ctr: the workload image runs /probe, the
# sandbox (pause) image runs `/probe pause`.
#
# Every scenario runs under husk and under runc; husk's failures fail this script, runc's are
# reported. Afterwards nothing may remain: no pod, container, shim, mount, cgroup, netns.
# Ends with "N passed, N failed".
#   HUSK_BIN=/usr/sbin/runc bash integration/cri.sh   # validate the scenarios with runc only
#   CRI_EXEC_SECONDS=60 bash integration/cri.sh       # ExecSync at 20/s for a minute
#   CRI_ONLY=pod-lifecycle,oom-and-restart bash integration/cri.sh   # these scenarios only
#   CRI_SCENARIO_TIMEOUT=300 bash integration/cri.sh  # a scenario longer than that fails, naming
#                                 # the CRI call it was stuck in (default: no limit)
#   CRI_TRACE=1 bash integration/cri.sh               # every CRI call with its time
#   CRI_BENCH_RUNTIMES=husk=/p/husk,runc=/usr/sbin/runc,crun=/usr/bin/crun CRI_BENCH_RUNS=20 \
#       bash integration/cri.sh                       # `make bench`'s pod rows instead of the tests
#   CRI_CONTAINERD_SNIPPET=docs/engines/containerd-config.toml CRI_ONLY=pod-lifecycle \
#       bash integration/cri.sh   # the handlers exactly as that file configures them (husk only;
#                                 # SystemdCgroup set false on a host without systemd)
#   CRI_SYSTEMD=1 bash integration/cri.sh   # containerd's systemd cgroup driver (SystemdCgroup =
#                                 # true, a kubelet's default): each pod in a slice of its own below
#                                 # the test's slice, each container a cri-containerd-ID.scope;
#                                 # afterwards no scope of the test's and no slice may remain
# Where the machine lacks parts (the systemd guest of `make vm-test`), they can come from outside:
#   CRI_CLIENT=PATH   the client, built already (else built here with cargo)
#   CRI_IMAGES=DIR    DIR/probe.tar and DIR/pause.tar, made already by integration/cri/image.py
#   CRI_CNI_BIN=DIR   the CNI plugins (default /usr/lib/cni)
set -uo pipefail
. "$(dirname "$0")/engines/lib.sh"

need_root "CRI integration"
need_pkgs containerd:containerd ctr:containerd nsenter:util-linux ip:iproute2
[ -n "${CRI_CLIENT:-}" ] || need_pkgs protoc:protobuf-compiler
CNI_BIN=${CRI_CNI_BIN:-/usr/lib/cni}
[ -x "$CNI_BIN/bridge" ] || need_pkgs _none_:containernetworking-plugins
SYSTEMD=${CRI_SYSTEMD:-}
make_tmp cri
if [ -n "$SYSTEMD" ]; then
    [ -d /run/systemd/system ] || die_setup "CRI_SYSTEMD=1: systemd is not PID 1 here"
    # the test's slice (no dash: a dash in a slice name is a level); the pods' slices below it
    CGPARENT=huskcri_${TMP##*.}.slice
    CGARG=$CGPARENT SC=true
else
    CGARG=/$CGPARENT SC=false
fi
# the systemd units of containers (the shim asks for cri-containerd-ID.scope): those there
# before the run are not the test's
scopes() { systemctl list-units --all --plain --no-legend 'cri-containerd-*.scope' 2>/dev/null | awk '{print $1}' | sort; }
[ -n "$SYSTEMD" ] && SCOPES_BEFORE=$(scopes)
NETNS=husk-cri-${TMP##*.}
SOCK=$TMP/containerd.sock
CT=(ctr -a "$SOCK" -n k8s.io)
IMG=docker.io/library/husk-cri-probe:1
PAUSE=docker.io/library/husk-cri-pause:1
# handler=binary pairs; the benchmark passes its own set
declare -A BINARY=([husk]=$HUSK_BIN [runc]=/usr/sbin/runc)
HANDLERS=(husk runc)
if [ -n "${CRI_BENCH_RUNTIMES:-}" ]; then
    BINARY=() HANDLERS=()
    IFS=, read -ra pairs <<<"$CRI_BENCH_RUNTIMES"
    for p in "${pairs[@]}"; do BINARY[${p%%=*}]=${p#*=}; HANDLERS+=("${p%%=*}"); done
fi

engine_cleanup() {
    [ -x "${CLIENT:-}" ] && [ -S "$SOCK" ] &&
        timeout 120 nsenter --net="/run/netns/$NETNS" "$CLIENT" --socket "$SOCK" cleanup >/dev/null 2>&1
    # pod network namespaces containerd left under its state dir
    find "$TMP/state" -path '*netns*' -type f 2>/dev/null | while read -r n; do umount "$n" 2>/dev/null; done
    ip netns del "$NETNS" 2>/dev/null
    # the pods' slices, as a kubelet removes them (stopping the test's slice ends what is in it)
    [ -n "$SYSTEMD" ] && systemctl stop "$CGPARENT" 2>/dev/null
}

# --- the client
CLIENT_DIR=$REPO/integration/cri
if [ -n "${CRI_CLIENT:-}" ]; then
    CLIENT=$CRI_CLIENT
    [ -x "$CLIENT" ] || die_setup "CRI_CLIENT=$CLIENT is not an executable"
else
    out=$(cd "$CLIENT_DIR" && cargo build --release --quiet 2>&1) || die_setup "build the CRI client (integration/cri)" "$out"
    CLIENT=$CLIENT_DIR/target/release/husk-cri-test
    pass "build the CRI client"
fi

# --- network namespace, CNI config
ip netns add "$NETNS" || die_setup "ip netns add $NETNS"
ip -n "$NETNS" link set lo up
mkdir -p "$TMP/cni" "$TMP/ipam" "$TMP/logs" "$TMP/seccomp"
cat >"$TMP/cni/10-husk-cri.conflist" <<EOT
{
  "cniVersion": "0.4.0",
  "name": "husk-cri",
  "plugins": [
    {"type": "bridge", "bridge": "huskcri0", "isGateway": true, "ipMasq": false,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.223.0.0/24"}]], "dataDir": "$TMP/ipam"}}
  ]
}
EOT

# --- containerd: CRI plugin, the runtime handlers, everything private
runtime() { # runtime NAME BINARY ROOT
    cat <<EOT
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.$1]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.$1.options]
        BinaryName = "$2"
        Root = "$3"
        SystemdCgroup = $SC
EOT
}
if [ -n "${CRI_CONTAINERD_SNIPPET:-}" ]; then
    HANDLERS=(husk)
fi
{
    cat <<EOT
version = 2
root = "$TMP/root"
state = "$TMP/state"
[grpc]
  address = "$SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE"
  # Exec/Attach URLs point at the streaming server: loopback of the test's network namespace
  # only, any free port (the client refuses a URL on another address)
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  netns_mounts_under_state_dir = true
  # this machine's bounding set lacks CAP_SYS_RESOURCE, so no process may lower its
  # oom_score_adj; containerd then keeps every container's at or above its own (as rootless)
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN"
    conf_dir = "$TMP/cni"
EOT
    if [ -n "${CRI_CONTAINERD_SNIPPET:-}" ]; then
        # the documented file's tables, as they are (without systemd, its cgroupfs variant)
        sc=true
        [ -d /run/systemd/system ] || sc=false
        grep -v '^version = ' "$CRI_CONTAINERD_SNIPPET" | sed "s/SystemdCgroup = true/SystemdCgroup = $sc/"
    else
        cat <<EOT
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "${HANDLERS[0]}"
EOT
        for h in "${HANDLERS[@]}"; do
            mkdir -p "$TMP/$h-root"
            runtime "$h" "${BINARY[$h]}" "$TMP/$h-root"
        done
    fi
} >"$TMP/containerd.toml"
nsenter --net="/run/netns/$NETNS" containerd --config "$TMP/containerd.toml" --log-level info \
    >"$TMP/containerd.log" 2>&1 &
DAEMON_PIDS+=($!)
wait_for 30 "${CT[@]}" version >/dev/null 2>&1 || die_setup "private containerd starts" "$(tail -30 "$TMP/containerd.log")"
pass "private containerd with the CRI plugin starts in network namespace $NETNS"

# --- images, built here from the test rootfs
for spec in "probe|$IMG|null|[\"/probe\"]" "pause|$PAUSE|[\"/probe\",\"pause\"]|null"; do
    IFS='|' read -r file ref ep cmd <<<"$spec"
    tar=$TMP/image.tar
    if [ -n "${CRI_IMAGES:-}" ]; then
        tar=$CRI_IMAGES/$file.tar
    else
        python3 "$CLIENT_DIR/image.py" "$TESTROOT" "$tar" "$ref" "$ep" "$cmd" ||
            die_setup "build image $ref"
    fi
    out=$("${CT[@]}" images import "$tar" 2>&1) || die_setup "ctr images import $ref ($tar)" "$out"
done
rm -f "$TMP/image.tar"
pass "images built from the test rootfs and imported"

if [ -n "${CRI_BENCH_RUNTIMES:-}" ]; then
    IFS=,; hs="${HANDLERS[*]}"; unset IFS
    nsenter --net="/run/netns/$NETNS" "$CLIENT" --socket "$SOCK" --handlers "$hs" --image "$IMG" \
        --cgroup-parent "$CGARG" --tmp "$TMP" --runs "${CRI_BENCH_RUNS:-20}" \
        --warmup "${CRI_BENCH_WARMUP:-3}" bench
    check "CRI benchmark ran" "" [ "$?" = 0 ]
    finish
    exit
fi

# --- the scenarios, once per handler
declare -A RESULT
for h in "${HANDLERS[@]}"; do
    say "# --- scenarios with runtime handler $h"
    # streamed as it comes: "# [h] # start NAME (+S s)" and its "ok"/"not ok" line with its time,
    # so a scenario that never ends shows as a start with nothing after it
    nsenter --net="/run/netns/$NETNS" "$CLIENT" --socket "$SOCK" --handler "$h" --image "$IMG" \
        --cgroup-parent "$CGARG" --tmp "$TMP" --exec-seconds "${CRI_EXEC_SECONDS:-10}" \
        --scenario-timeout "${CRI_SCENARIO_TIMEOUT:-0}" --trace "${CRI_TRACE:-0}" \
        ${CRI_ONLY:+--only "$CRI_ONLY"} 2>&1 | tee "$TMP/scenarios-$h.out" |
        sed -u "s/^/# [$h] /" | grep --line-buffered -E '^# \[[a-z]+\] (ok|not ok|#    |# )'

    while read -r verdict name; do
        RESULT[$h/$name]=$verdict
    done < <(sed -nE 's/^(ok|not ok) - ([^ ]+).*/\1 \2/p' "$TMP/scenarios-$h.out" | sed 's/^not ok/not_ok/')
done
names=$(sed -nE 's/^(ok|not ok) - ([^ ]+).*/\2/p' "$TMP"/scenarios-*.out | sort -u)
[ -n "$names" ] || fail "the CRI client ran no scenario" "$(tail -20 "$TMP"/scenarios-husk.out)"
for n in $names; do
    hv=${RESULT[husk/$n]:-missing} rv=${RESULT[runc/$n]:-missing}
    if [ "$hv" = ok ]; then
        pass "cri $n (husk ok, runc $rv)"
    else
        fail "cri $n (husk $hv, runc $rv)" "$(awk -v n="$n" '$0 ~ "^not ok - " n "( |$)" {p=1; next} /^(ok|not ok) - |^# start / {p=0} p' "$TMP/scenarios-husk.out")"
    fi
done

# --- nothing left behind
out=$(timeout 60 nsenter --net="/run/netns/$NETNS" "$CLIENT" --socket "$SOCK" leftovers 2>&1)
check "no pod sandbox or container left in CRI" "$out" [ -z "$out" ]
out=$(settled cg_procs)
check "no process left in the test's cgroups" "$out" [ -z "$out" ]
if [ -n "$SYSTEMD" ]; then
    new_scopes() { comm -13 <(printf '%s\n' "$SCOPES_BEFORE") <(scopes) | grep .; }
    out=$(settled new_scopes)
    check "no container scope unit left (systemd)" "$out" [ -z "$out" ]
    out=$(find "/sys/fs/cgroup/$CGPARENT" -name '*.scope' 2>/dev/null)
    check "no scope cgroup left in the test's slice" "$out" [ -z "$out" ]
    # the pods' slices are the kubelet's to remove: the test removes them as it would
    out=$(systemctl stop "$CGPARENT" 2>&1)
    check "the test's slice and its pod slices stop" "$out" [ $? = 0 ]
    out=$(systemctl list-units --all --plain --no-legend "${CGPARENT%.slice}*" 2>/dev/null | grep -v ' inactive ')
    check "no pod slice left active" "$out" [ -z "$out" ]
fi
out=$("${CT[@]}" tasks ls -q 2>/dev/null; "${CT[@]}" containers ls -q 2>/dev/null)
check "no containerd task or container left" "$out" [ -z "$out" ]
shims() { for p in /proc/[0-9]*; do { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -q "containerd-shim.*-address $SOCK" && echo "${p#/proc/}"; done; }
out=$(settled shims)
check "no shim left" "$out" [ -z "$out" ]
out=$(find "$TMP/state" -path '*netns*' -type f 2>/dev/null)
check "no pod network namespace left" "$out" [ -z "$out" ]
# (the shim makes one directory per containerd namespace under the runtime's root)
out=$(find "$TMP/husk-root" -mindepth 2 2>/dev/null; [ -n "${CRI_CONTAINERD_SNIPPET:-}" ] && find /run/containerd/runc/k8s.io -maxdepth 1 -mindepth 1 -newer "$TMP" 2>/dev/null)
check "no husk state left" "$out" [ -z "$out" ]
out=$(ip -n "$NETNS" -o link show | grep -v -e ' lo:' -e huskcri0)
check "no veth left in the test network namespace" "$out" [ -z "$out" ]
out=$(find "$TMP/ipam" -type f ! -name 'last_reserved_ip*' ! -name lock 2>/dev/null)
check "no address left allocated (host-local)" "$out" [ -z "$out" ]
finish
