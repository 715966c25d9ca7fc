#!/usr/bin/env bash
# The Debian package as a user gets it: `make deb`, lintian, `apt-get install ./husk_*.deb`, then
# `man husk-run`, bash completion of `husk <Tab><Tab>`, `husk --version`, and one container through
# each engine configured with the exact files of docs/engines/ (private daemons under a temp dir,
# as integration/engines/): dockerd with daemon.json, podman with containers.conf, containerd
# with containerd-config.toml (read back from containerd's config dump, then pods run through that
# CRI handler by integration/cri.sh's client; and ctr, which does not read the CRI section, runs
# a container with --runc-binary /usr/bin/husk).
# The package is removed again on exit unless it was installed before this run.
# Ends with "N passed, N failed".
set -uo pipefail
. "$(dirname "$0")/engines/lib.sh"

need_root "package integration"
need_pkgs dockerd:docker.io containerd:containerd podman:podman conmon:conmon catatonit:catatonit \
    man:man-db lintian:lintian
[ -f /usr/share/bash-completion/bash_completion ] || need_pkgs _none_:bash-completion
make_tmp package
IMG=husk-test:latest
BIN=/usr/bin/husk

# Installed before this run? Then leave it installed (upgraded) afterwards; else purge it.
WAS_INSTALLED=
dpkg-query -W -f='${Status}' husk 2>/dev/null | grep -q 'install ok installed' && WAS_INSTALLED=1
if [ -z "$WAS_INSTALLED" ] && [ -e "$BIN" ]; then
    fail "install: $BIN exists and belongs to no husk package; not overwriting it"
    finish
    exit 1
fi
KEY=/etc/docker/key.json
KEY_EXISTED=; [ -e "$KEY" ] && KEY_EXISTED=1
LOCK=/dev/shm/libpod_lock
LOCK_EXISTED=; [ -e "$LOCK" ] && LOCK_EXISTED=1
engine_cleanup() {
    [ -S "$TMP/docker.sock" ] && timeout 60 docker -H "unix://$TMP/docker.sock" rm -f pkg-d1 >/dev/null 2>&1
    [ -n "${PM:-}" ] && timeout 60 "${PM[@]}" rm -af -t 0 >/dev/null 2>&1
    [ -S "$TMP/containerd.sock" ] && {
        timeout 20 ctr -a "$TMP/containerd.sock" -n pkg task kill -s KILL pkg-c1 >/dev/null 2>&1
        timeout 20 ctr -a "$TMP/containerd.sock" -n pkg task delete pkg-c1 >/dev/null 2>&1
        timeout 20 ctr -a "$TMP/containerd.sock" -n pkg container delete pkg-c1 >/dev/null 2>&1
    }
    [ -n "$KEY_EXISTED" ] || rm -f "$KEY"
    [ -n "$LOCK_EXISTED" ] || rm -f "$LOCK"
    if [ -z "$WAS_INSTALLED" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get purge -y husk >/dev/null 2>&1 || dpkg --purge husk >/dev/null 2>&1
    fi
}

# --- build and check the package
out=$(make -C "$REPO" --no-print-directory deb 2>&1) || die_setup "make deb" "$(tail -30 <<<"$out")"
DEB=$(ls "$REPO"/target/debian/husk_*_amd64.deb 2>/dev/null | tail -1)
check "make deb builds target/debian/husk_*_amd64.deb" "$out" [ -f "$DEB" ]
# Suppressed, on purpose: the binary is static (non-PIE, no loader: the start path's speed), and
# the maintainer address of a locally built package is no Debian upload's.
out=$(lintian --fail-on error --suppress-tags statically-linked-binary,bogus-mail-host,bogus-mail-host-in-debian-changelog "$DEB" 2>&1); rc=$?
check "lintian finds no error in the package" "$out" [ "$rc" = 0 ]
[ "$rc" = 0 ] && [ -n "$out" ] && printf '%s\n' "$out" | sed 's/^/# lintian: /'
out=$(DEBIAN_FRONTEND=noninteractive apt-get install -y "$DEB" 2>&1); rc=$?
check "apt-get install ./husk_*.deb" "$out" [ "$rc" = 0 -a -x "$BIN" ]

# --- the installed files
cmp -s "$BIN" "$REPO/target/x86_64-unknown-linux-gnu/release/husk"
verdict "the installed /usr/bin/husk is the release binary make bench measures" "$(ls -l "$BIN")"
out=$("$BIN" --version 2>&1)
head=$(git -C "$REPO" rev-parse HEAD 2>/dev/null)
check "husk --version names the commit ($head)" "$out" grep -q "^commit: $head" <<<"$out"
out=$(MANPAGER=cat MANWIDTH=100 man husk-run 2>&1)
check "man husk-run shows the run page with its flags" "$out" grep -q -- '--bundle' <<<"$out"
out=$(MANPAGER=cat man 8 husk 2>&1)
check "man husk lists the subcommands' pages" "$out" grep -q 'husk-create(8)' <<<"$out"
# bash: the completion is loaded on demand by bash-completion, as in an interactive shell
complete_words() { # complete_words WORD...: what <Tab><Tab> offers after "husk WORD..."
    bash --norc --noprofile -c '
        . /usr/share/bash-completion/bash_completion
        _completion_loader husk >/dev/null 2>&1
        f=$(complete -p husk 2>/dev/null | sed -nE "s/.* -F ([^ ]+) .*/\1/p")
        [ -n "$f" ] || { echo "no completion for husk"; exit 1; }
        COMP_WORDS=(husk "$@"); COMP_CWORD=$#; COMP_LINE="husk $*"; COMP_POINT=${#COMP_LINE}
        "$f" husk "${COMP_WORDS[$COMP_CWORD]}" "${COMP_WORDS[$COMP_CWORD-1]}"
        printf "%s\n" "${COMPREPLY[@]}"' _ "$@"
}
out=$(complete_words "" 2>&1)
check "bash: husk <Tab><Tab> offers the subcommands" "$out" \
    bash -c 'grep -qx create <<<"$1" && grep -qx run <<<"$1" && grep -qx delete <<<"$1"' _ "$out"
out=$(complete_words run --bu 2>&1)
check "bash: husk run --bu<Tab> completes --bundle" "$out" grep -qx -- --bundle <<<"$out"
for f in /usr/share/zsh/vendor-completions/_husk /usr/share/fish/vendor_completions.d/husk.fish \
    /usr/share/doc/husk/engines/daemon.json /usr/share/doc/husk/copyright; do
    check "installed: $f" "" [ -s "$f" ]
done

# --- Docker with the documented daemon.json (exactly that file), private everything else
mkdir -p "$TMP/data" "$TMP/exec" "$TMP/cli"
export DOCKER_CONFIG=$TMP/cli
DK=(docker -H "unix://$TMP/docker.sock")
dockerd --config-file "$REPO/docs/engines/daemon.json" --data-root "$TMP/data" --exec-root "$TMP/exec" \
    --pidfile "$TMP/docker.pid" -H "unix://$TMP/docker.sock" \
    --iptables=false --ip-masq=false --bridge=none --userland-proxy=false \
    --cgroup-parent "/$CGPARENT" --exec-opt native.cgroupdriver=cgroupfs >"$TMP/dockerd.log" 2>&1 &
DAEMON_PIDS+=($!)
if wait_for 60 "${DK[@]}" version >/dev/null 2>&1; then
    out=$("${DK[@]}" info --format '{{.DefaultRuntime}} {{(index .Runtimes "husk").Path}}' 2>&1)
    check "dockerd with docs/engines/daemon.json: default runtime husk at $BIN" "$out" [ "$out" = "husk $BIN" ]
    "${DK[@]}" import "$(image_tar)" "$IMG" >/dev/null 2>&1
    out=$(timeout 60 "${DK[@]}" run --runtime husk --rm --network none "$IMG" sh -c 'echo pid-$$' 2>&1)
    check "docker run --runtime husk runs a container" "$out" [ "$out" = pid-1 ]
    out=$(timeout 60 "${DK[@]}" run -d --name pkg-d1 --network none "$IMG" sleep 60 2>&1)
    id=$("${DK[@]}" inspect -f '{{.Id}}' pkg-d1 2>/dev/null)
    rroot=$(dirname "$(find "$TMP/exec" -maxdepth 3 -type d -name "$id" -path '*/runtime-*' 2>/dev/null | head -1)")
    out=$("$BIN" --root "$rroot" state "$id" 2>&1)
    check "the default runtime's container is /usr/bin/husk's (its state: running)" "$out" \
        grep -q '"status": *"running"' <<<"$out"
    timeout 60 "${DK[@]}" rm -f pkg-d1 >/dev/null 2>&1
else
    fail "dockerd starts with docs/engines/daemon.json" "$(tail -20 "$TMP/dockerd.log")"
fi

# --- podman with the documented containers.conf: its [engine] table gets the private settings
mkdir -p "$TMP/proot" "$TMP/prunroot" "$TMP/ptmp" "$TMP/net"
{
    printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=4096:4096"]\n[network]\nnetwork_config_dir = "%s"\n' \
        "$(ulimit -Sn)" "$(ulimit -Hn)" "$TMP/net"
    sed "/^\[engine\]$/a cgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nevents_logfile_path = \"$TMP/events.log\"" \
        "$REPO/docs/engines/containers.conf"
} >"$TMP/containers.conf"
printf '[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "%s"\n' "$TMP/proot" "$TMP/prunroot" >"$TMP/storage.conf"
echo 'unqualified-search-registries = []' >"$TMP/registries.conf"
PM=(env -u DOCKER_CONFIG CONTAINERS_CONF="$TMP/containers.conf" CONTAINERS_STORAGE_CONF="$TMP/storage.conf"
    CONTAINERS_REGISTRIES_CONF="$TMP/registries.conf"
    podman --root "$TMP/proot" --runroot "$TMP/prunroot" --tmpdir "$TMP/ptmp")
out=$("${PM[@]}" info --format '{{.Host.OCIRuntime.Name}} {{.Host.OCIRuntime.Path}}' 2>&1)
check "podman with docs/engines/containers.conf: runtime husk at $BIN" "$out" [ "$out" = "husk $BIN" ]
"${PM[@]}" import "$(image_tar)" "localhost/$IMG" >/dev/null 2>&1
out=$(timeout 60 "${PM[@]}" run --rm --network none --cgroup-parent "/$CGPARENT" "localhost/$IMG" sh -c 'echo pid-$$' 2>&1)
check "podman run (default runtime husk) runs a container" "$out" [ "$out" = pid-1 ]

# --- containerd with the documented config.toml (private root, state and socket added)
{
    echo 'version = 2'
    printf 'root = "%s"\nstate = "%s"\n[grpc]\n  address = "%s"\n' "$TMP/ctrd-root" "$TMP/ctrd-state" "$TMP/containerd.sock"
    grep -v '^version = 2$' "$REPO/docs/engines/containerd-config.toml"
} >"$TMP/containerd.toml"
out=$(containerd --config "$TMP/containerd.toml" config dump 2>&1)
check "containerd reads docs/engines/containerd-config.toml: CRI handler husk, BinaryName $BIN" "$out" \
    bash -c 'grep -q "runtimes.husk.options\]" <<<"$1" && grep -q "BinaryName = \"/usr/bin/husk\"" <<<"$1" && grep -q "default_runtime_name = \"husk\"" <<<"$1"' _ "$out"
containerd --config "$TMP/containerd.toml" >"$TMP/containerd.log" 2>&1 &
DAEMON_PIDS+=($!)
CT=(ctr -a "$TMP/containerd.sock" -n pkg)
if wait_for 30 "${CT[@]}" version >/dev/null 2>&1; then
    mkdir -p "$TMP/rootfs" && cp -a "$TESTROOT/." "$TMP/rootfs/"
    out=$(timeout 60 "${CT[@]}" run --rm --runc-binary "$BIN" --cgroup "/$CGPARENT/pkg-c1" \
        --rootfs "$TMP/rootfs" pkg-c1 /bin/sh -c 'echo pid-$$' 2>&1)
    check "ctr run --runc-binary /usr/bin/husk runs a container" "$out" [ "$(tr -d '\r' <<<"$out")" = pid-1 ]
else
    fail "containerd starts with docs/engines/containerd-config.toml" "$(tail -20 "$TMP/containerd.log")"
fi
# the CRI handler exactly as the documented file configures it, driven by the CRI client
out=$(CRI_CONTAINERD_SNIPPET="$REPO/docs/engines/containerd-config.toml" CRI_ONLY=pod-lifecycle,shared-namespaces \
    HUSK_BIN="$BIN" bash "$REPO/integration/cri.sh" 2>&1); rc=$?
check "containerd's CRI with docs/engines/containerd-config.toml runs pods on $BIN (handler husk)" \
    "$(grep -E '^(not ok|#)' <<<"$out" | tail -20)" [ "$rc" = 0 ]
finish
