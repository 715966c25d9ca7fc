#!/usr/bin/env bash
# Every engine script against HUSK_BIN; each runs even if an earlier one failed. Ends with the
# summed "N passed, N failed" and exits non-zero if any scenario failed.
#   HUSK_BIN=/usr/sbin/runc bash integration/engines/run.sh   # validate the suite with runc
set -uo pipefail
dir=$(cd "$(dirname "$0")" && pwd)
pass=0 fail=0 rc=0
for s in docker podman; do
    echo "== $s (HUSK_BIN=${HUSK_BIN:-default})"
    start=$(date +%s)
    log=$(mktemp /tmp/husk-engines-log.XXXXXX)
    bash "$dir/$s.sh" 2>&1 | tee "$log"
    [ "${PIPESTATUS[0]}" = 0 ] || rc=1
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
    rm -f "$log"
    [ -n "$line" ] || { rc=1; fail=$((fail + 1)); echo "not ok - $s.sh printed no summary"; }
    p=$(sed -E 's/^([0-9]+) passed.*/\1/' <<<"$line"); f=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")
    pass=$((pass + ${p:-0})); fail=$((fail + ${f:-0}))
    echo "# $s.sh took $(($(date +%s) - start)) s"
done
echo "$pass passed, $fail failed"
[ "$rc" = 0 ] && [ "$fail" = 0 ]
