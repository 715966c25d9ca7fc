#!/usr/bin/env bash
# Summarise the stage logs `make test` writes to target/test-logs/: cargo's "test result:" lines
# (unit and root tests; a test that printed `SKIP name: why` counts as skipped, not passed), the
# closing "N passed, N failed[, N skipped]" line of each script stage (containerd, engines, cri,
# validation, package, vm-test), and the skip lines with their reasons. Prints a table, every skip, and one
# closing line "make test: N passed, N failed, N skipped".
# Exits non-zero when a stage's log is missing or has no closing line (the stage did not run),
# or when anything failed.
#   bash integration/summary.sh [DIR]
set -uo pipefail
dir=${1:-target/test-logs}
tp=0 tf=0 ts=0 rc=0
printf '%-12s %8s %8s %8s\n' stage passed failed skipped
for stage in lint unit root fallback containerd engines cri validation package vm; do
	log=$dir/$stage.log
	if [ ! -f "$log" ]; then
		printf '%-12s %s\n' "$stage" "did not run (no $log)"
		rc=1
		continue
	fi
	p=0 f=0 s=0
	case $stage in
	lint)
		# the lint stage writes "lint: ok" or "lint: failed"
		if grep -q '^lint: ok$' "$log"; then p=1; elif grep -q '^lint: failed$' "$log"; then f=1; else rc=1; fi
		;;
	unit|root|fallback)
		if ! grep -q '^test result:' "$log"; then
			printf '%-12s %s\n' "$stage" "no cargo test result line"
			rc=1
		fi
		read -r p f i < <(awk '/^test result:/ {
			for (k = 1; k <= NF; k++) {
				if ($k ~ /^passed;?$/) p += $(k-1)
				if ($k ~ /^failed;?$/) f += $(k-1)
				if ($k ~ /^ignored;?$/) i += $(k-1)
			} } END { print p+0, f+0, i+0 }' "$log")
		# a test binary that did not build or crashed prints "error: test failed" / "could not compile"
		if grep -qE '^error: (could not compile|test failed|[0-9]+ targets failed)' "$log"; then
			f=$((f > 0 ? f : 1))
		fi
		# `SKIP test: why` = the whole test returned having checked nothing: libtest says "ok",
		# the summary counts it as skipped, not passed; `SKIP-PART test/what: why` = one part
		# of a test that otherwise ran: a skip, and the test still counts as passed
		whole=$(grep -c '^SKIP ' "$log")
		part=$(grep -c '^SKIP-PART ' "$log")
		p=$((p - whole))
		s=$((whole + part + i))
		;;
	*)
		line=$(grep -E '^([A-Za-z-]+: )?[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
		if [ -z "$line" ]; then
			printf '%-12s %s\n' "$stage" "no closing 'N passed, N failed' line"
			rc=1
			continue
		fi
		p=$(sed -E 's/^([A-Za-z-]+: )?([0-9]+) passed.*/\2/' <<<"$line")
		f=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")
		s=$(sed -nE 's/.* ([0-9]+) skipped.*/\1/p' <<<"$line")
		s=${s:-0}
		;;
	esac
	printf '%-12s %8s %8s %8s\n' "$stage" "$p" "$f" "$s"
	tp=$((tp + p)) tf=$((tf + f)) ts=$((ts + s))
done
if grep -hE '^SKIP(-PART)? ' "$dir"/*.log >/dev/null 2>&1; then
	echo "skipped, with the reason each printed:"
	grep -hE '^SKIP(-PART)? ' "$dir"/*.log | sort | uniq -c | sed 's/^/  /'
fi
[ "$tf" = 0 ] || rc=1
echo "make test: $tp passed, $tf failed, $ts skipped"
exit $rc
