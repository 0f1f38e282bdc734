package lazyfs

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The kernel never tells a FUSE server about syncfs(2) (it sends
// FUSE_SYNCFS to virtiofs only), so the model cannot see it from the
// filesystem side. A program under test traps its own syncfs calls with a
// seccomp filter whose decisions a goroutine of the same process makes
// (SECCOMP_RET_USER_NOTIF): the goroutine reports each call to the
// filesystem, waits for it to make everything durable, and only then lets
// the call run.

// seccompNotif is struct seccomp_notif.
type seccompNotif struct {
	id    uint64
	pid   uint32
	flags uint32
	nr    int32
	arch  uint32
	ip    uint64
	args  [6]uint64
}

// seccompNotifResp is struct seccomp_notif_resp.
type seccompNotifResp struct {
	id    uint64
	val   int64
	error int32
	flags uint32
}

const seccompIoctlNotifSend = 0xc0182101 // SECCOMP_IOCTL_NOTIF_SEND

// Trap holds the seccomp listener that answers this process's syncfs
// calls.
type Trap struct {
	fd   int
	stop [2]int // a pipe: closing its write end stops the goroutine
	done sync.WaitGroup
	fn   func() error
}

// TrapSyncfs makes every syncfs(2) of this process, from any thread, call
// fn first; the call then runs if fn returned nil and fails with EIO
// otherwise. The filter cannot be removed: after Close, syncfs fails
// with ENOSYS. It is meant for a child process that a test kills.
func TrapSyncfs(fn func() error) (*Trap, error) {
	var arch uint32
	switch runtime.GOARCH {
	case "amd64":
		arch = unix.AUDIT_ARCH_X86_64
	case "arm64":
		arch = unix.AUDIT_ARCH_AARCH64
	default:
		return nil, fmt.Errorf("lazyfs: trap syncfs: architecture %s not supported", runtime.GOARCH)
	}
	// seccomp_data: nr at offset 0, arch at 4.
	prog := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 4},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 3, K: arch},
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 1, K: unix.SYS_SYNCFS},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_USER_NOTIF},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// Without CAP_SYS_ADMIN a filter needs no_new_privs; TSYNC gives it
	// to every thread along with the filter.
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("lazyfs: trap syncfs: no_new_privs: %w", err)
	}
	fd, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
		unix.SECCOMP_FILTER_FLAG_TSYNC|unix.SECCOMP_FILTER_FLAG_TSYNC_ESRCH|unix.SECCOMP_FILTER_FLAG_NEW_LISTENER,
		uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(prog)
	if errno != 0 {
		return nil, fmt.Errorf("lazyfs: trap syncfs: seccomp: %w", errno)
	}
	t := &Trap{fd: int(fd), fn: fn}
	if err := unix.Pipe2(t.stop[:], unix.O_CLOEXEC); err != nil {
		unix.Close(t.fd)
		return nil, fmt.Errorf("lazyfs: trap syncfs: %w", err)
	}
	t.done.Add(1)
	go t.serve()
	return t, nil
}

func (t *Trap) serve() {
	defer t.done.Done()
	for {
		pfd := []unix.PollFd{{Fd: int32(t.fd), Events: unix.POLLIN}, {Fd: int32(t.stop[0]), Events: unix.POLLIN}}
		if _, err := unix.Poll(pfd, -1); err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		if pfd[1].Revents != 0 {
			return
		}
		var n seccompNotif
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(t.fd), unix.SECCOMP_IOCTL_NOTIF_RECV, uintptr(unsafe.Pointer(&n))); errno != 0 {
			if errno == unix.EINTR || errno == unix.ENOENT {
				continue
			}
			return
		}
		resp := seccompNotifResp{id: n.id, flags: unix.SECCOMP_USER_NOTIF_FLAG_CONTINUE}
		if err := t.fn(); err != nil {
			resp = seccompNotifResp{id: n.id, error: -int32(unix.EIO)}
		}
		// ENOENT: the caller is gone (killed while it waited).
		unix.Syscall(unix.SYS_IOCTL, uintptr(t.fd), seccompIoctlNotifSend, uintptr(unsafe.Pointer(&resp)))
	}
}

// Close stops answering; later syncfs calls fail with ENOSYS.
func (t *Trap) Close() error {
	unix.Close(t.stop[1])
	t.done.Wait()
	unix.Close(t.stop[0])
	return unix.Close(t.fd)
}
