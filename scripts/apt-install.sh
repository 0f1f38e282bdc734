#!/usr/bin/env bash
# apt-install.sh CHECK PACKAGE: install Debian's PACKAGE with apt-get when
# CHECK (a shell test) fails. `make deps` uses it for what the browser and
# PostgreSQL tests need. As root it runs apt-get itself, otherwise through
# sudo when there is one; with neither it says what to run and stops, so a
# missing tool is never silently skipped (under CI=true the tests would
# fail on it anyway, with less to go on).
set -euo pipefail
check=$1 pkg=$2
if bash -c "$check" >/dev/null 2>&1; then
	echo "$pkg present"
	exit 0
fi
if [ "$(id -u)" = 0 ]; then
	sudo=()
elif command -v sudo >/dev/null 2>&1; then
	sudo=(sudo)
else
	echo "$pkg is missing and this user cannot install it: run 'apt-get install -y $pkg' as root" >&2
	exit 1
fi
echo "installing $pkg with apt-get (the tests need it)"
export DEBIAN_FRONTEND=noninteractive
# A fresh machine may have no package lists yet.
"${sudo[@]}" apt-get install -y -q "$pkg" || { "${sudo[@]}" apt-get update -q && "${sudo[@]}" apt-get install -y -q "$pkg"; }
bash -c "$check" || { echo "apt-get installed $pkg but the check '$check' still fails" >&2; exit 1; }
