#!/usr/bin/env bash
# Start versitygw (posix backend, object lock available) on loopback for
# manual runs and benchmarks; tests start their own through internal/s3test.
#
#   scripts/s3-server.sh [dir] [port]
# prints the environment to reach it and runs in the foreground (Ctrl-C
# stops it). Install the server with:
#   go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
set -euo pipefail

DIR=${1:-$(mktemp -d "${TMPDIR:-/tmp}/chancery-s3.XXXXXX")}
PORT=${2:-7070}
ACCESS=${S3_ACCESS_KEY:-chancery}
SECRET=${S3_SECRET_KEY:-chancery-secret-key}

BIN=$(command -v versitygw || true)
if [ -z "$BIN" ]; then
	BIN="$(go env GOPATH)/bin/versitygw"
fi
if [ ! -x "$BIN" ]; then
	echo "versitygw not found; go install github.com/versity/versitygw/cmd/versitygw@v1.8.0" >&2
	exit 1
fi

mkdir -p "$DIR/root" "$DIR/versions"
cat <<ENV
export S3_ENDPOINT=127.0.0.1:$PORT
export S3_ACCESS_KEY=$ACCESS
export S3_SECRET_KEY=$SECRET
export S3_REGION=us-east-1
# data in $DIR/root, object versions in $DIR/versions
ENV
# --versioning-dir is what lets buckets be created with object lock.
exec "$BIN" --access "$ACCESS" --secret "$SECRET" --port "127.0.0.1:$PORT" --quiet \
	posix --versioning-dir "$DIR/versions" "$DIR/root"
