//go:build linux

package harden

import (
	"fmt"

	"golang.org/x/sys/unix"
)

func noDump() error {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl PR_SET_DUMPABLE 0: %w", err)
	}
	return nil
}

// Dumpable reports the process's PR_GET_DUMPABLE flag (for tests).
func Dumpable() (bool, error) {
	v, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	return v != 0, err
}

func dontDump(b []byte) { _ = unix.Madvise(b, unix.MADV_DONTDUMP) }
