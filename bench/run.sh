#!/bin/sh
# Side-by-side durable-append benchmark: Chancery's ledger vs Tessera (POSIX).
#
# Usage: bench/run.sh            (about 2-3 minutes)
#   BENCHTIME=2s COUNT=3 bench/run.sh
#
# Both logs are created in fresh directories under $TMPDIR (b.TempDir), so
# they share a disk. Extra arguments are passed to `go test`, e.g.
#   bench/run.sh -tessera.batch-size=256    (Tessera's library-default batching)
set -eu

cd "$(dirname "$0")"

BENCHTIME=${BENCHTIME:-2s}
COUNT=${COUNT:-3}

tmp=${TMPDIR:-/tmp}
cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //' || true)
fs=$(df -PT "$tmp" 2>/dev/null | awk 'NR==2 {print $2 " on " $1}' || true)
echo "machine: $(uname -m), $(nproc) CPUs, ${cpu:-unknown CPU}, $(go version | awk '{print $3}'), TMPDIR=$tmp ($fs)"
echo "command: go test -run '^\$' -bench . -benchtime $BENCHTIME -count $COUNT $*"
echo

out=$(mktemp)
trap 'rm -f "$out"' EXIT

go test -run '^$' -bench . -benchtime "$BENCHTIME" -count "$COUNT" -timeout 15m "$@" | tee "$out"

echo
# Median over the -count runs of each metric, then the 64-appender ratio.
awk '
function median(key,   n, i, j, t, a) {
	n = cnt[key]
	for (i = 1; i <= n; i++) a[i] = val[key, i]
	for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
	if (n % 2) return a[(n + 1) / 2]
	return (a[n / 2] + a[n / 2 + 1]) / 2
}
/^BenchmarkDurableAppend\// {
	name = $1
	sub(/^BenchmarkDurableAppend\//, "", name)
	sub(/-[0-9]+$/, "", name)
	if (!(name in seen)) { seen[name] = 1; order[++nn] = name }
	for (i = 3; i < NF; i++) {
		if ($(i + 1) == "entries/s" || $(i + 1) == "p50-µs" || $(i + 1) == "p99-µs") {
			k = name SUBSEP $(i + 1)
			val[k, ++cnt[k]] = $i
		}
	}
}
END {
	printf "%-28s %14s %12s %12s %5s\n", "benchmark (median)", "entries/s", "p50-µs", "p99-µs", "runs"
	for (o = 1; o <= nn; o++) {
		n = order[o]
		printf "%-28s %14.0f %12.0f %12.0f %5d\n", n, median(n SUBSEP "entries/s"), median(n SUBSEP "p50-µs"), median(n SUBSEP "p99-µs"), cnt[n SUBSEP "entries/s"]
	}
	c = "chancery/appenders=64" SUBSEP "entries/s"
	t = "tessera/appenders=64" SUBSEP "entries/s"
	if (cnt[c] && cnt[t]) {
		printf "\nratio chancery/tessera, 64 appenders: %.1fx (%.0f vs %.0f entries/s)\n", median(c) / median(t), median(c), median(t)
	} else {
		print "\nratio chancery/tessera, 64 appenders: n/a (a system did not run)"
	}
}' "$out"
