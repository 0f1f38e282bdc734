#!/usr/bin/env bash
# Side-by-side ingest: restic 0.14 (Debian) backing up the synthetic deed
# corpus to a local repository, against Chancery's store ingesting the same
# files into an fs backend. Both read the same files from the page cache
# and both fsync their repository; the ratio is Chancery MB/s / restic MB/s.
#
#   bench/restic/run.sh                      # 2 GB corpus
#   CORPUS_BYTES=10G bench/restic/run.sh     # 10 GB corpus
#   KEEP=1 bench/restic/run.sh               # keep the temporary directory
set -euo pipefail

CORPUS_BYTES=${CORPUS_BYTES:-2G}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
GO=${GO:-go}

if ! command -v restic >/dev/null 2>&1; then
	echo "restic not found; installing Debian's package" >&2
	apt-get update -qq && apt-get install -y -qq restic >/dev/null
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/chancery-restic-bench.XXXXXX")
cleanup() { if [ -z "${KEEP:-}" ]; then rm -rf "$WORK"; else echo "kept $WORK"; fi; }
trap cleanup EXIT

# Build the test binary first so compilation is not timed.
(cd "$ROOT" && $GO test -c -o "$WORK/store.test" ./store/)

echo "writing a $CORPUS_BYTES corpus to $WORK/corpus"
CHANCERY_CORPUS_OUT="$WORK/corpus" CHANCERY_CORPUS_BYTES="$CORPUS_BYTES" \
	"$WORK/store.test" -test.run '^TestWriteCorpus$' -test.count=1 >/dev/null
BYTES=$(du -sb "$WORK/corpus" | cut -f1)
FILES=$(ls "$WORK/corpus" | wc -l)
echo "corpus: $FILES files, $BYTES bytes"
sync

now() { date +%s.%N; }
mbps() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.1f", b / 1e6 / s }'; }

export RESTIC_PASSWORD=chancery-bench
restic version
restic init --quiet --repo "$WORK/restic-repo"
t0=$(now)
restic backup --quiet --repo "$WORK/restic-repo" "$WORK/corpus"
sync
t1=$(now)
RESTIC_S=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
RESTIC_SIZE=$(du -sb "$WORK/restic-repo" | cut -f1)

t0=$(now)
CHANCERY_INGEST_DIR="$WORK/corpus" CHANCERY_INGEST_REPO="$WORK/chancery-repo" \
	"$WORK/store.test" -test.run '^TestIngestDir$' -test.count=1 | grep '^chancery:' || true
sync
t1=$(now)
CHANCERY_S=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
CHANCERY_SIZE=$(du -sb "$WORK/chancery-repo" | cut -f1)

R=$(mbps "$BYTES" "$RESTIC_S")
C=$(mbps "$BYTES" "$CHANCERY_S")
echo
printf "%-10s %8s s %8s MB/s  repo %6d MiB\n" restic "$(printf %.2f "$RESTIC_S")" "$R" $((RESTIC_SIZE >> 20))
printf "%-10s %8s s %8s MB/s  repo %6d MiB\n" chancery "$(printf %.2f "$CHANCERY_S")" "$C" $((CHANCERY_SIZE >> 20))
awk -v c="$C" -v r="$R" 'BEGIN { printf "ratio chancery/restic: %.2fx (goal >= 1.5x)\n", c / r }'
echo "load average during the run: $(cut -d' ' -f1-3 /proc/loadavg) (on $(nproc) cores)"
