package harden

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestProcess: after Process the process is not dumpable and its core
// limit is zero, soft and hard.
func TestProcess(t *testing.T) {
	r := Process()
	if !r.NoDump || !r.NoCore || len(r.Errs) > 0 {
		t.Fatalf("report: %s", r)
	}
	if d, err := Dumpable(); err != nil || d {
		t.Fatalf("dumpable %v (%v)", d, err)
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_CORE, &lim); err != nil || lim.Cur != 0 || lim.Max != 0 {
		t.Fatalf("RLIMIT_CORE %+v (%v)", lim, err)
	}
}

// TestSecret: a secret lives in its own mapping, which the kernel marks
// locked and excluded from core dumps (VmFlags "lo" and "dd" in
// /proc/self/smaps); Wipe zeroes it and unmaps it.
func TestSecret(t *testing.T) {
	s := NewSecret(32)
	b := s.Bytes()
	if len(b) != 32 {
		t.Fatalf("%d bytes", len(b))
	}
	copy(b, "thirty-two bytes of key material")
	addr := uintptr(unsafe.Pointer(&b[0]))
	flags := vmFlags(t, addr)
	if !strings.Contains(flags, " dd") {
		t.Errorf("mapping not excluded from core dumps: VmFlags%s", flags)
	}
	if s.Locked() != strings.Contains(flags, " lo") {
		t.Errorf("Locked() %v but VmFlags%s", s.Locked(), flags)
	}
	if !s.Locked() {
		t.Logf("mlock refused here (RLIMIT_MEMLOCK); the mapping is still excluded from dumps")
	}
	s.Wipe()
	if s.Bytes() != nil {
		t.Fatal("bytes after Wipe")
	}
	if f := vmFlags(t, addr); f != "" {
		t.Errorf("mapping still present after Wipe: %s", f)
	}
}

// vmFlags is the VmFlags line of the mapping holding addr, "" if none.
func vmFlags(t *testing.T, addr uintptr) string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Skip(err)
	}
	in := false
	for _, line := range strings.Split(string(data), "\n") {
		var lo, hi uintptr
		if n, _ := fmt.Sscanf(line, "%x-%x", &lo, &hi); n == 2 && strings.Contains(line, " ") && !strings.HasPrefix(line, "VmFlags") {
			in = addr >= lo && addr < hi
			continue
		}
		if in && strings.HasPrefix(line, "VmFlags:") {
			return strings.TrimPrefix(line, "VmFlags:")
		}
	}
	return ""
}
