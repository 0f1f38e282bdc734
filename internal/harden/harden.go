// Package harden keeps key material out of places a host can read it
// without attaching a debugger: core dumps, /proc/<pid>/mem of a
// same-user process, and swap.
//
// Process is called once at the start of every command that holds keys
// (serve, custody). Secret is memory for key bytes that the kernel is asked
// to lock in RAM and leave out of core dumps. Both are best effort: what
// the platform refuses is reported, not fatal, because a site that cannot
// lock memory (RLIMIT_MEMLOCK) must still serve. docs/threat-model.md says
// what remains exposed.
//
// The package is a leaf: it imports nothing of Chancery.
package harden

import (
	"errors"
	"fmt"
	"strings"
)

// Report says what Process did and what the platform refused.
type Report struct {
	// NoDump: the process is not dumpable (Linux PR_SET_DUMPABLE 0), so
	// no core file is written and other processes of the same user cannot
	// ptrace it or read /proc/<pid>/mem.
	NoDump bool
	// NoCore: RLIMIT_CORE is 0, soft and hard.
	NoCore bool
	// Errs lists what could not be done.
	Errs []error
}

// String is one line for a log.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "process hardening: not dumpable %v, core limit 0 %v", r.NoDump, r.NoCore)
	if err := errors.Join(r.Errs...); err != nil {
		fmt.Fprintf(&b, "; not done: %s", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	return b.String()
}

// Process makes the current process non-dumpable and sets its core size
// limit to zero, where the platform allows. It is idempotent.
func Process() Report { return process() }

// Secret is memory for key material: on Unix an anonymous private mapping
// of its own, locked in RAM (mlock) and, on Linux, excluded from core
// dumps (MADV_DONTDUMP); elsewhere, or if mapping fails, ordinary heap
// memory. Wipe zeroes it. A Secret is not safe for concurrent Wipe and use.
type Secret struct {
	b      []byte
	mem    []byte // the whole mapping, if mapped
	locked bool
}

// NewSecret returns n zero bytes of secret memory. It never fails: the
// protections it could not get are reported by Locked.
func NewSecret(n int) *Secret { return newSecret(n) }

// Bytes is the secret's memory; nil after Wipe.
func (s *Secret) Bytes() []byte {
	if s == nil {
		return nil
	}
	return s.b
}

// Locked reports whether the kernel agreed to keep the memory in RAM.
func (s *Secret) Locked() bool { return s != nil && s.locked }

// Wipe zeroes the memory, then unlocks and unmaps it.
func (s *Secret) Wipe() {
	if s == nil || s.b == nil {
		return
	}
	clear(s.b)
	s.release()
	s.b = nil
}
