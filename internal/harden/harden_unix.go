//go:build unix

package harden

import (
	"fmt"

	"golang.org/x/sys/unix"
)

func process() Report {
	var r Report
	if err := noDump(); err != nil {
		r.Errs = append(r.Errs, err)
	} else {
		r.NoDump = true
	}
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: 0, Max: 0}); err != nil {
		r.Errs = append(r.Errs, fmt.Errorf("setrlimit RLIMIT_CORE 0: %w", err))
	} else {
		r.NoCore = true
	}
	return r
}

func newSecret(n int) *Secret {
	if n <= 0 {
		return &Secret{b: []byte{}}
	}
	page := unix.Getpagesize()
	size := (n + page - 1) / page * page
	b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return &Secret{b: make([]byte, n)}
	}
	s := &Secret{b: b[:n:n], mem: b}
	s.locked = unix.Mlock(b) == nil
	dontDump(b)
	return s
}

func (s *Secret) release() {
	if s.mem == nil {
		return
	}
	if s.locked {
		_ = unix.Munlock(s.mem)
	}
	_ = unix.Munmap(s.mem)
	s.mem, s.locked = nil, false
}
