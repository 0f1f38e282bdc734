//go:build unix && !linux

package harden

import "errors"

func noDump() error {
	return errors.New("no PR_SET_DUMPABLE on this platform (core dumps are off by RLIMIT_CORE only)")
}

func dontDump([]byte) {}
