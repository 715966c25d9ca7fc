#!/bin/bash
# cgroup-v2-tests.sh -- run husk's cgroup root tests inside a throw-away pure
# cgroup v2 guest (User-mode Linux, see vm-run.sh next to this script).
#
#   integration/vm/cgroup-v2-tests.sh [--systemd] [EXTRA TEST-BINARY ARGS...]
#
# --systemd boots the Debian 12 guest with systemd as PID 1 instead (the tests
# then run in a delegated service cgroup, below cgroups systemd owns).
#
# The library's unit-test binary is built on the host (`cargo test --no-run`)
# and run in the guest, whose / is the host's / read-only and whose current
# directory (the project) is shared read-write.  Only the tests whose names
# contain "cgroups" run, one at a time (the guest has one slow vCPU).
# Exit status: the test binary's (124 on VM_TIMEOUT, 125 if the guest died).
# run.sh (make vm-test) runs these tests too, plus real containers, in both guests.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
mode=()
if [ "${1:-}" = --systemd ]; then mode=(--systemd); shift; fi

bin=$(cargo test --lib --no-run 2>&1 | tee /dev/stderr |
	sed -n 's/^ *Executable unittests src\/lib\.rs (\(.*\))$/\1/p' | tail -1)
[ -n "$bin" ] && [ -x "$bin" ] || { echo "cgroup-v2-tests: no test binary found" >&2; exit 2; }

args=""
for a in "$@"; do args+=" $(printf '%q' "$a")"; done
export VM_TIMEOUT=${VM_TIMEOUT:-900}
exec "$here/vm-run.sh" "${mode[@]}" "
set -e
fs=\$(stat -fc %T /sys/fs/cgroup)
[ \"\$fs\" = cgroup2fs ] || { echo \"guest /sys/fs/cgroup is \$fs, not cgroup2\" >&2; exit 3; }
echo \"guest: cgroup2 with controllers: \$(cat /sys/fs/cgroup/cgroup.subtree_control)\"
$(printf '%q' "$bin") --test-threads=1 --show-output cgroups$args
"
