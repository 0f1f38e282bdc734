// Package lazyfs is a test filesystem that loses, when the power is cut,
// everything a program wrote but did not make durable, as Jepsen's LazyFS
// does. SIGKILL keeps the kernel's page cache, so a crash test that kills a
// process cannot tell a missing fsync from a present one; a Cut of this
// filesystem can.
//
// It is a FUSE loopback over a backing directory. Every operation goes
// through to the backing directory at once (reads see what was written),
// and beside it the filesystem keeps a model of what a disk would hold
// after a power loss:
//
//   - fsync or fdatasync of a file makes its data and size durable;
//   - a name created, renamed or removed in a directory is durable only
//     after an fsync of that directory (so a new file needs an fsync of its
//     parent; a rename across directories, of both);
//   - syncfs makes everything durable;
//   - nothing else does (closing a file does not).
//
// Cut freezes the filesystem (every later change fails with EIO),
// unmounts it and rewrites the backing directory as that model says, so
// that the program can be reopened on it as after a power loss.
//
// syncfs(2) never reaches a FUSE server (the kernel forwards FUSE_SYNCFS to
// virtiofs only), so a program under test calls TrapSyncfs, which traps its
// syncfs calls with seccomp and reports them to the filesystem before they
// run: see Child.
package lazyfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// ErrNoFUSE is returned by Mount when /dev/fuse cannot be used.
var ErrNoFUSE = errors.New("lazyfs: /dev/fuse is not available")

// Available reports whether FUSE filesystems can be mounted here (it does
// not mount one): nil, or why not.
func Available() error { return available(fuseDevice) }

const fuseDevice = "/dev/fuse"

func available(dev string) error {
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNoFUSE, err)
	}
	f.Close()
	return nil
}

// FS is a mounted lazy filesystem.
type FS struct {
	backing string // the directory the mount passes through to
	mnt     string // where it is mounted
	store   string // durable file data, one file per object
	srv     *fuse.Server

	mu      sync.Mutex // guards everything below
	cut     bool
	nextID  uint64
	byIno   map[uint64]uint64 // backing inode number → object, for live inodes
	objs    map[uint64]*object
	rootID  uint64
	stats   Stats
	closing bool
}

// Stats count what the filesystem was asked to make durable.
type Stats struct {
	FileSyncs int // fsync and fdatasync of files
	DirSyncs  int // fsync of directories
	Syncfs    int // syncfs (trapped)
}

// object is one inode of the model: what survives a power loss.
type object struct {
	kind    uint32 // S_IFREG, S_IFDIR or S_IFLNK
	mode    uint32 // permission bits
	size    int64  // regular files: durable size (data in the store)
	entries map[string]uint64
	target  string // symlinks
	dirty   []span // regular files: ranges changed since the last sync
}

type span struct{ off, end int64 }

// Mount mounts a lazy filesystem over backing at mountpoint. Everything
// already in backing counts as durable.
func Mount(backing, mountpoint string) (*FS, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	backing, err := filepath.Abs(backing)
	if err != nil {
		return nil, fmt.Errorf("lazyfs: backing %s: %w", backing, err)
	}
	store, err := os.MkdirTemp("", "lazyfs-durable-")
	if err != nil {
		return nil, fmt.Errorf("lazyfs: durable store: %w", err)
	}
	f := &FS{backing: backing, mnt: mountpoint, store: store, byIno: map[uint64]uint64{}, objs: map[uint64]*object{}}
	if err := f.load(); err != nil {
		os.RemoveAll(store)
		return nil, err
	}
	root := &gofs.LoopbackRoot{Path: backing}
	var st syscall.Stat_t
	if err := syscall.Stat(backing, &st); err != nil {
		os.RemoveAll(store)
		return nil, fmt.Errorf("lazyfs: backing %s: %w", backing, err)
	}
	root.Dev = st.Dev
	root.NewNode = func(r *gofs.LoopbackRoot, parent *gofs.Inode, name string, st *syscall.Stat_t) gofs.InodeEmbedder {
		return &node{LoopbackNode: gofs.LoopbackNode{RootData: r}, fs: f}
	}
	root.RootNode = root.NewNode(root, nil, "", &st)
	f.srv, err = gofs.Mount(mountpoint, root.RootNode, &gofs.Options{
		MountOptions: fuse.MountOptions{
			DirectMount:       true,
			DirectMountStrict: true,
			FsName:            "lazyfs",
			Name:              "lazyfs",
			// The kernel handles flock and fcntl locks itself, as for
			// one machine; the model has nothing to say about them.
			EnableLocks: false,
		},
	})
	if err != nil {
		os.RemoveAll(store)
		return nil, fmt.Errorf("lazyfs: mount %s: %w", mountpoint, err)
	}
	return f, nil
}

// Dir is the mountpoint.
func (f *FS) Dir() string { return f.mnt }

// Backing is the backing directory.
func (f *FS) Backing() string { return f.backing }

// Stats returns what the filesystem was asked to make durable so far.
func (f *FS) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

// load records everything in the backing directory as durable.
func (f *FS) load() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return filepath.WalkDir(f.backing, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("lazyfs: load %s: %w", path, err)
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(path, &st); err != nil {
			return fmt.Errorf("lazyfs: load %s: %w", path, err)
		}
		id, o := f.lookup(st.Ino, st.Mode)
		if path == f.backing {
			f.rootID = id
		}
		switch o.kind {
		case syscall.S_IFDIR:
			if err := f.syncDirLocked(path, o); err != nil {
				return err
			}
		case syscall.S_IFREG:
			fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("lazyfs: load %s: %w", path, err)
			}
			o.dirty = []span{{0, st.Size}}
			err = f.syncDataLocked(id, o, fd)
			syscall.Close(fd)
			if err != nil {
				return err
			}
		case syscall.S_IFLNK:
			if o.target, err = os.Readlink(path); err != nil {
				return fmt.Errorf("lazyfs: load %s: %w", path, err)
			}
		}
		return nil
	})
}

// fresh records a new inode of the backing directory: the backing
// filesystem may reuse the number of one that is gone, which the model
// may still hold under another name.
func (f *FS) fresh(ino uint64, mode uint32) (uint64, *object) {
	f.nextID++
	id := f.nextID
	o := &object{kind: mode & syscall.S_IFMT, mode: mode & 0o7777}
	if o.kind == syscall.S_IFDIR {
		o.entries = map[string]uint64{}
	}
	f.objs[id] = o
	f.byIno[ino] = id
	return id, o
}

// lookup finds the object of a live inode, recording it if it is new (an
// inode made outside this filesystem's view: it has no durable data).
func (f *FS) lookup(ino uint64, mode uint32) (uint64, *object) {
	if id, ok := f.byIno[ino]; ok {
		return id, f.objs[id]
	}
	return f.fresh(ino, mode)
}

// creating runs op, which makes a new inode at path, and records that
// inode, with the model locked throughout: a syncfs walking the tree
// meanwhile must not meet the new inode before it is recorded, or it
// would record it under another object.
func (f *FS) creating(path, target string, op func() syscall.Errno) syscall.Errno {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cut {
		return syscall.EIO
	}
	if e := op(); e != 0 {
		return e
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		return gofs.ToErrno(err)
	}
	_, o := f.fresh(st.Ino, st.Mode)
	o.target = target
	return 0
}

// changed marks a range of a file as written since its last sync.
func (f *FS) changed(id uint64, off, end int64) syscall.Errno {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cut {
		return syscall.EIO
	}
	if o := f.objs[id]; o != nil && end > off {
		o.dirty = append(o.dirty, span{off, end})
	}
	return 0
}

// frozen reports whether the power is cut: every change then fails.
func (f *FS) frozen() syscall.Errno {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cut {
		return syscall.EIO
	}
	return 0
}

// syncData makes the data of the file open as fd durable (fsync,
// fdatasync).
func (f *FS) syncData(id uint64, fd int) syscall.Errno {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cut {
		return syscall.EIO
	}
	f.stats.FileSyncs++
	// The handle may be write-only: read through a read-only one, which
	// /proc gives even for a file no longer named anywhere.
	rfd, err := syscall.Open("/proc/self/fd/"+strconv.Itoa(fd), syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return gofs.ToErrno(err)
	}
	defer syscall.Close(rfd)
	if err := f.syncDataLocked(id, f.objs[id], rfd); err != nil {
		return syscall.EIO
	}
	return 0
}

func (f *FS) syncDataLocked(id uint64, o *object, fd int) error {
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return fmt.Errorf("lazyfs: sync object %d: %w", id, err)
	}
	o.mode = st.Mode & 0o7777
	name := filepath.Join(f.store, strconv.FormatUint(id, 10))
	out, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("lazyfs: sync object %d: %w", id, err)
	}
	defer out.Close()
	slices.SortFunc(o.dirty, func(a, b span) int { return int(min(max(a.off-b.off, -1), 1)) })
	var buf []byte
	done := int64(0) // dirty spans overlap: copy each byte once
	for _, s := range o.dirty {
		off, end := max(s.off, done), min(s.end, st.Size)
		for off < end {
			n := min(end-off, 1<<20)
			if int64(cap(buf)) < n {
				buf = make([]byte, n)
			}
			got, err := syscall.Pread(fd, buf[:n], off)
			if err != nil {
				return fmt.Errorf("lazyfs: sync object %d: read at %d: %w", id, off, err)
			}
			if got == 0 {
				break
			}
			if _, err := out.WriteAt(buf[:got], off); err != nil {
				return fmt.Errorf("lazyfs: sync object %d: %w", id, err)
			}
			off += int64(got)
		}
		done = max(done, off)
	}
	if err := out.Truncate(st.Size); err != nil {
		return fmt.Errorf("lazyfs: sync object %d: %w", id, err)
	}
	o.size, o.dirty = st.Size, nil
	return nil
}

// syncDir makes the names in a directory durable (fsync of a directory).
func (f *FS) syncDir(path string) syscall.Errno {
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		return gofs.ToErrno(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cut {
		return syscall.EIO
	}
	f.stats.DirSyncs++
	_, o := f.lookup(st.Ino, st.Mode)
	if err := f.syncDirLocked(path, o); err != nil {
		return syscall.EIO
	}
	return 0
}

func (f *FS) syncDirLocked(path string, o *object) error {
	des, err := os.ReadDir(path)
	if err != nil {
		return fmt.Errorf("lazyfs: sync directory %s: %w", path, err)
	}
	entries := make(map[string]uint64, len(des))
	for _, de := range des {
		var st syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(path, de.Name()), &st); err != nil {
			if errors.Is(err, syscall.ENOENT) {
				continue
			}
			return fmt.Errorf("lazyfs: sync directory %s: %w", path, err)
		}
		id, _ := f.lookup(st.Ino, st.Mode)
		entries[de.Name()] = id
	}
	o.entries = entries
	return nil
}

// Syncfs makes everything durable, as syncfs(2) does. Child calls it when
// the program under test calls syncfs.
func (f *FS) Syncfs() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cut {
		return fmt.Errorf("lazyfs: syncfs after the power was cut: %w", syscall.EIO)
	}
	f.stats.Syncfs++
	return filepath.WalkDir(f.backing, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return fmt.Errorf("lazyfs: syncfs %s: %w", path, err)
		}
		// A name the program removes while the walk runs is skipped:
		// the removal raced with the syncfs, and may come after it.
		var st syscall.Stat_t
		if err := syscall.Lstat(path, &st); err != nil {
			if errors.Is(err, syscall.ENOENT) {
				return nil
			}
			return fmt.Errorf("lazyfs: syncfs %s: %w", path, err)
		}
		id, o := f.lookup(st.Ino, st.Mode)
		switch o.kind {
		case syscall.S_IFDIR:
			return f.syncDirLocked(path, o)
		case syscall.S_IFREG:
			fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC|syscall.O_NOFOLLOW, 0)
			if errors.Is(err, syscall.ENOENT) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("lazyfs: syncfs %s: %w", path, err)
			}
			defer syscall.Close(fd)
			return f.syncDataLocked(id, o, fd)
		}
		return nil
	})
}

// Cut cuts the power: from now on every change through the mount fails
// with EIO. It then unmounts the filesystem (lazily, if a process still
// holds files open in it) and rewrites the backing directory to hold only
// what was durable. Kill the programs using the mount before or after;
// their acknowledgements up to the Cut are what it must keep.
func (f *FS) Cut() error {
	f.mu.Lock()
	if f.closing {
		f.mu.Unlock()
		return errors.New("lazyfs: already unmounted")
	}
	f.cut, f.closing = true, true
	f.mu.Unlock()
	uerr := f.unmount()
	f.mu.Lock()
	defer f.mu.Unlock()
	err := f.rebuild()
	os.RemoveAll(f.store)
	return errors.Join(uerr, err)
}

// Close unmounts the filesystem as a clean shutdown does: the backing
// directory keeps everything written.
func (f *FS) Close() error {
	f.mu.Lock()
	if f.closing {
		f.mu.Unlock()
		return nil
	}
	f.closing = true
	f.mu.Unlock()
	err := f.unmount()
	os.RemoveAll(f.store)
	return err
}

// unmount detaches the mount and waits for the server to stop, which it
// does once no process holds a file of it open.
func (f *FS) unmount() error {
	if err := f.srv.Unmount(); err != nil {
		if err := syscall.Unmount(f.mnt, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("lazyfs: unmount %s: %w", f.mnt, err)
		}
	}
	f.srv.Wait()
	return nil
}

// rebuild makes the backing directory hold what the model says. A file
// whose live inode is the durable object, unchanged since its last sync,
// already holds the durable bytes and is kept; everything else is
// rewritten from the store or removed.
func (f *FS) rebuild() error {
	return f.restoreDir(f.backing, f.objs[f.rootID], map[uint64]string{})
}

// restoreDir makes the directory at path (which exists) hold a durable
// directory's entries and nothing else. An object found under two names
// (a hard link, or a rename whose old directory was not synced) is
// linked; a directory is restored once.
func (f *FS) restoreDir(path string, dir *object, placed map[uint64]string) error {
	des, err := os.ReadDir(path)
	if err != nil {
		return fmt.Errorf("lazyfs: restore %s: %w", path, err)
	}
	for _, de := range des {
		if _, ok := dir.entries[de.Name()]; !ok {
			if err := os.RemoveAll(filepath.Join(path, de.Name())); err != nil {
				return fmt.Errorf("lazyfs: restore %s: %w", path, err)
			}
		}
	}
	names := make([]string, 0, len(dir.entries))
	for name := range dir.entries {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		id := dir.entries[name]
		o := f.objs[id]
		p := filepath.Join(path, name)
		var st syscall.Stat_t
		live := syscall.Lstat(p, &st) == nil
		same := live && f.byIno[st.Ino] == id && st.Mode&syscall.S_IFMT == o.kind
		if prev, ok := placed[id]; ok {
			if o.kind == syscall.S_IFDIR {
				if err := os.RemoveAll(p); err != nil {
					return fmt.Errorf("lazyfs: restore %s: %w", p, err)
				}
				continue
			}
			if same {
				continue // the same inode, linked there already
			}
			if err := os.RemoveAll(p); err != nil {
				return fmt.Errorf("lazyfs: restore %s: %w", p, err)
			}
			if err := os.Link(prev, p); err != nil {
				return fmt.Errorf("lazyfs: restore %s: %w", p, err)
			}
			continue
		}
		placed[id] = p
		keep := same
		if o.kind == syscall.S_IFREG {
			keep = same && len(o.dirty) == 0 && st.Size == o.size
		}
		if live && !keep {
			if err := os.RemoveAll(p); err != nil {
				return fmt.Errorf("lazyfs: restore %s: %w", p, err)
			}
		}
		switch o.kind {
		case syscall.S_IFDIR:
			if !keep {
				if err := os.Mkdir(p, 0o700); err != nil {
					return fmt.Errorf("lazyfs: restore %s: %w", p, err)
				}
			}
			if err := f.restoreDir(p, o, placed); err != nil {
				return err
			}
		case syscall.S_IFLNK:
			if !keep {
				if err := os.Symlink(o.target, p); err != nil {
					return fmt.Errorf("lazyfs: restore %s: %w", p, err)
				}
			}
			continue
		case syscall.S_IFREG:
			if !keep {
				if err := f.restoreFile(p, id, o); err != nil {
					return err
				}
			}
		}
		if err := os.Chmod(p, os.FileMode(o.mode)); err != nil {
			return fmt.Errorf("lazyfs: restore %s: %w", p, err)
		}
	}
	return nil
}

func (f *FS) restoreFile(p string, id uint64, o *object) error {
	out, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("lazyfs: restore %s: %w", p, err)
	}
	defer out.Close()
	if o.size > 0 {
		in, err := os.Open(filepath.Join(f.store, strconv.FormatUint(id, 10)))
		if err != nil {
			return fmt.Errorf("lazyfs: restore %s: %w", p, err)
		}
		defer in.Close()
		if _, err := out.ReadFrom(in); err != nil {
			return fmt.Errorf("lazyfs: restore %s: %w", p, err)
		}
	}
	if err := out.Truncate(o.size); err != nil {
		return fmt.Errorf("lazyfs: restore %s: %w", p, err)
	}
	if err := out.Chmod(os.FileMode(o.mode)); err != nil {
		return fmt.Errorf("lazyfs: restore %s: %w", p, err)
	}
	return nil
}
