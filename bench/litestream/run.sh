#!/bin/sh
# Replication lag side by side: Chancery vs Litestream v0.3.13, 5,000
# writes/s at home, two sites, lag from each write's acknowledgement until
# both sites hold it.
#
# Usage: bench/litestream/run.sh          (about 4 minutes)
#   RUNS=5 bench/litestream/run.sh
#   LITESTREAM=/path/to/litestream bench/litestream/run.sh
#
# Each round runs, one after the other on the same machine:
#   - Chancery: go test -run '^$' -bench 'Lag/checkpoint=default$' -benchtime 3x ./replica/
#     (BenchmarkReplicationLag: 12 s of writes, product defaults);
#   - Litestream with its defaults (monitor-interval 1s, sync-interval 1s);
#   - Litestream with both intervals at 10ms, the most it can be pushed.
# Without a litestream binary it runs
# `go install github.com/benbjohnson/litestream/cmd/litestream@v0.3.13`
# (cgo: needs gcc), which the harness's SQLite needs too.
set -eu

cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
ls_bin=${LITESTREAM:-$(command -v litestream || echo "$HOME/go/bin/litestream")}
if [ ! -x "$ls_bin" ]; then
	echo "litestream not found; go install github.com/benbjohnson/litestream/cmd/litestream@v0.3.13" >&2
	go install github.com/benbjohnson/litestream/cmd/litestream@v0.3.13
	ls_bin=$(go env GOPATH)/bin/litestream
fi

tmp=${TMPDIR:-/tmp}
cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //' || true)
fs=$(df -PT "$tmp" 2>/dev/null | awk 'NR==2 {print $2 " on " $1}' || true)
echo "machine: $(uname -m), $(nproc) CPUs, ${cpu:-unknown CPU}, $(go version | awk '{print $3}'), TMPDIR=$tmp ($fs)"
echo "litestream: $ls_bin ($(go version -m "$ls_bin" 2>/dev/null | awk '$1 == "mod" {print $3}'))"
echo "chancery: (cd .. && go test -run '^\$' -bench 'Lag/checkpoint=default\$' -benchtime 3x ./replica/)"
echo "litestream: (cd litestream && go run .) [-monitor-interval 10ms -sync-interval 10ms]"
echo "load before: $(uptime)"
echo

out=$(mktemp)
harness=$(mktemp)
trap 'rm -f "$out" "$harness"' EXIT
# Its own module (bench/litestream/go.mod): its cgo sqlite driver stays out of make lint.
(cd litestream && go build -o "$harness" .)

r=1
while [ "$r" -le "$RUNS" ]; do
	echo "== round $r/$RUNS, load: $(uptime | sed 's/.*load average: //')"
	(cd .. && go test -run '^$' -bench 'Lag/checkpoint=default$' -benchtime 3x -timeout 10m ./replica/) | grep '^Benchmark' | tee -a "$out"
	"$harness" -litestream "$ls_bin" | tee -a "$out"
	"$harness" -litestream "$ls_bin" -monitor-interval 10ms -sync-interval 10ms | tee -a "$out"
	r=$((r + 1))
done
echo
echo "load after: $(uptime)"
echo

# Medians over the rounds, then the ratios of p99 to Chancery's.
awk '
function median(key,   n, i, j, t, a) {
	n = cnt[key]
	for (i = 1; i <= n; i++) a[i] = val[key, i]
	for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
	if (n % 2) return a[(n + 1) / 2]
	return (a[n / 2] + a[n / 2 + 1]) / 2
}
/^Benchmark(ReplicationLag|LitestreamLag)\// {
	name = $1
	sub(/^BenchmarkReplicationLag\//, "chancery/", name)
	sub(/^BenchmarkLitestreamLag\//, "litestream/", name)
	sub(/-[0-9]+$/, "", name)
	if (!(name in seen)) { seen[name] = 1; order[++nn] = name }
	for (i = 3; i < NF; i++) {
		u = $(i + 1)
		if (u == "writes/s" || u == "p50-ms" || u == "p99-ms" || u == "max-ms" || u == "ack-p99-ms") {
			k = name SUBSEP u
			val[k, ++cnt[k]] = $i
		}
	}
}
END {
	printf "%-46s %9s %9s %9s %9s %11s %5s\n", "replication lag (median of rounds)", "writes/s", "p50-ms", "p99-ms", "max-ms", "ack-p99-ms", "runs"
	for (o = 1; o <= nn; o++) {
		n = order[o]
		printf "%-46s %9.0f %9.1f %9.1f %9.1f %11.1f %5d\n", n, median(n SUBSEP "writes/s"), median(n SUBSEP "p50-ms"), median(n SUBSEP "p99-ms"), median(n SUBSEP "max-ms"), median(n SUBSEP "ack-p99-ms"), cnt[n SUBSEP "p99-ms"]
	}
	c = "chancery/checkpoint=default" SUBSEP "p99-ms"
	if (!cnt[c]) { print "\nratio: n/a (Chancery did not run)"; exit }
	print ""
	for (o = 1; o <= nn; o++) {
		n = order[o]
		if (n !~ /^litestream\//) continue
		printf "p99 ratio %s / chancery: %.1fx (%.0f vs %.0f ms)\n", n, median(n SUBSEP "p99-ms") / median(c), median(n SUBSEP "p99-ms"), median(c)
	}
}' "$out"
