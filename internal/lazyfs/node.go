package lazyfs

import (
	"context"
	"path/filepath"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// node is go-fuse's loopback node with the model kept beside it: each
// operation that changes the backing directory is recorded (or refused
// after a Cut), and fsync updates the model.
type node struct {
	gofs.LoopbackNode
	fs *FS
}

func (n *node) backingPath() string {
	return filepath.Join(n.fs.backing, n.EmbeddedInode().Path(nil))
}

func (n *node) childPath(name string) string { return filepath.Join(n.backingPath(), name) }

var (
	_ gofs.NodeCreater        = (*node)(nil)
	_ gofs.NodeOpener         = (*node)(nil)
	_ gofs.NodeMkdirer        = (*node)(nil)
	_ gofs.NodeMknoder        = (*node)(nil)
	_ gofs.NodeSymlinker      = (*node)(nil)
	_ gofs.NodeLinker         = (*node)(nil)
	_ gofs.NodeRenamer        = (*node)(nil)
	_ gofs.NodeUnlinker       = (*node)(nil)
	_ gofs.NodeRmdirer        = (*node)(nil)
	_ gofs.NodeSetattrer      = (*node)(nil)
	_ gofs.NodeFsyncer        = (*node)(nil)
	_ gofs.NodeOpendirHandler = (*node)(nil)
	_ gofs.NodeCopyFileRanger = (*node)(nil)
	_ gofs.NodeTmpfiler       = (*node)(nil)
	_ gofs.NodeSetxattrer     = (*node)(nil)
	_ gofs.NodeRemovexattrer  = (*node)(nil)
	_ gofs.FileReaddirenter   = (*dirHandle)(nil)
	_ gofs.FileFsyncdirer     = (*dirHandle)(nil)
	_ gofs.FileReleasedirer   = (*dirHandle)(nil)
	_ gofs.FileSeekdirer      = (*dirHandle)(nil)
	_ gofs.FileWriter         = (*file)(nil)
	_ gofs.FileFsyncer        = (*file)(nil)
	_ gofs.FileAllocater      = (*file)(nil)
	_ gofs.FileGetattrer      = (*file)(nil)
	_ gofs.FileSetattrer      = (*file)(nil)
	_ gofs.FileReader         = (*file)(nil)
	_ gofs.FileReleaser       = (*file)(nil)
	_ gofs.FileFlusher        = (*file)(nil)
	_ gofs.FileLseeker        = (*file)(nil)
	_ gofs.NodeAllocater      = (*node)(nil)
	_ gofs.NodeGetattrer      = (*node)(nil)
	_ gofs.NodeLookuper       = (*node)(nil)
	_ gofs.NodeReaddirer      = (*node)(nil)
	_ gofs.NodeReadlinker     = (*node)(nil)
	_ gofs.NodeStatfser       = (*node)(nil)
	_ gofs.NodeGetxattrer     = (*node)(nil)
	_ gofs.NodeListxattrer    = (*node)(nil)
	_ gofs.NodeStatxer        = (*node)(nil)
	_ gofs.InodeEmbedder      = (*node)(nil)
	_ gofs.NodeOnAdder        = (*node)(nil)
)

// OnAdd is part of the node interfaces; loopback nodes need nothing.
func (n *node) OnAdd(ctx context.Context) {}

func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	var in *gofs.Inode
	var fh gofs.FileHandle
	var ff uint32
	e := n.fs.creating(n.childPath(name), "", func() (e syscall.Errno) {
		in, fh, ff, e = n.LoopbackNode.Create(ctx, name, flags, mode, out)
		return e
	})
	if e != 0 {
		if r, ok := fh.(gofs.FileReleaser); ok {
			r.Release(ctx)
		}
		return nil, nil, 0, e
	}
	w, e := n.fs.wrap(fh)
	return in, w, ff, e
}

func (n *node) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	writes := flags&syscall.O_ACCMODE != syscall.O_RDONLY
	if writes || flags&syscall.O_TRUNC != 0 {
		if e := n.fs.frozen(); e != 0 {
			return nil, 0, e
		}
	}
	if flags&syscall.O_TRUNC != 0 {
		// The truncation loses the old data in the live file; the
		// model keeps it until the next sync.
		var st syscall.Stat_t
		if err := syscall.Lstat(n.backingPath(), &st); err == nil {
			n.fs.mu.Lock()
			id, _ := n.fs.lookup(st.Ino, st.Mode)
			n.fs.mu.Unlock()
			if e := n.fs.changed(id, 0, st.Size); e != 0 {
				return nil, 0, e
			}
		}
	}
	fh, ff, e := n.LoopbackNode.Open(ctx, flags)
	if e != 0 {
		return nil, 0, e
	}
	w, e := n.fs.wrap(fh)
	return w, ff, e
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	var in *gofs.Inode
	e := n.fs.creating(n.childPath(name), "", func() (e syscall.Errno) {
		in, e = n.LoopbackNode.Mkdir(ctx, name, mode, out)
		return e
	})
	if e != 0 {
		return nil, e
	}
	return in, 0
}

func (n *node) Mknod(ctx context.Context, name string, mode, rdev uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	var in *gofs.Inode
	e := n.fs.creating(n.childPath(name), "", func() (e syscall.Errno) {
		in, e = n.LoopbackNode.Mknod(ctx, name, mode, rdev, out)
		return e
	})
	if e != 0 {
		return nil, e
	}
	return in, 0
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	var in *gofs.Inode
	e := n.fs.creating(n.childPath(name), target, func() (e syscall.Errno) {
		in, e = n.LoopbackNode.Symlink(ctx, target, name, out)
		return e
	})
	if e != 0 {
		return nil, e
	}
	return in, 0
}

func (n *node) Link(ctx context.Context, target gofs.InodeEmbedder, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if e := n.fs.frozen(); e != 0 {
		return nil, e
	}
	return n.LoopbackNode.Link(ctx, target, name, out)
}

func (n *node) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if e := n.fs.frozen(); e != 0 {
		return e
	}
	return n.LoopbackNode.Rename(ctx, name, newParent, newName, flags)
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	if e := n.fs.frozen(); e != 0 {
		return e
	}
	return n.LoopbackNode.Unlink(ctx, name)
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	if e := n.fs.frozen(); e != 0 {
		return e
	}
	return n.LoopbackNode.Rmdir(ctx, name)
}

func (n *node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	if e := n.fs.frozen(); e != 0 {
		return e
	}
	return n.LoopbackNode.Setxattr(ctx, attr, data, flags)
}

func (n *node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	if e := n.fs.frozen(); e != 0 {
		return e
	}
	return n.LoopbackNode.Removexattr(ctx, attr)
}

func (n *node) Setattr(ctx context.Context, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if e := n.fs.frozen(); e != 0 {
		return e
	}
	if size, ok := in.GetSize(); ok {
		// Both a cut and an extension change bytes that a sync must
		// copy: the cut-off tail may be written again, the extension
		// reads as zeros.
		// Through the handle if there is one: the file may have no
		// name any more.
		var st syscall.Stat_t
		var err error
		if w, ok := f.(*file); ok {
			err = syscall.Fstat(w.fd, &st)
		} else {
			err = syscall.Lstat(n.backingPath(), &st)
		}
		if err == nil {
			n.fs.mu.Lock()
			id, _ := n.fs.lookup(st.Ino, st.Mode)
			n.fs.mu.Unlock()
			lo, hi := min(st.Size, int64(size)), max(st.Size, int64(size))
			if e := n.fs.changed(id, lo, hi); e != 0 {
				return e
			}
		}
	}
	if w, ok := f.(*file); ok {
		f = w.inner
	}
	return n.LoopbackNode.Setattr(ctx, f, in, out)
}

// Allocate goes to the file handle.
func (n *node) Allocate(ctx context.Context, f gofs.FileHandle, off uint64, size uint64, mode uint32) syscall.Errno {
	if w, ok := f.(*file); ok {
		return w.Allocate(ctx, off, size, mode)
	}
	return syscall.EBADF
}

// Fsync of a directory makes its names durable; of a file, its data.
func (n *node) Fsync(ctx context.Context, f gofs.FileHandle, flags uint32) syscall.Errno {
	if w, ok := f.(*file); ok {
		return w.Fsync(ctx, flags)
	}
	if n.EmbeddedInode().IsDir() {
		return n.fs.syncDir(n.backingPath())
	}
	return syscall.EBADF
}

func (n *node) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	ds, e := gofs.NewLoopbackDirStream(n.backingPath())
	if e != 0 {
		return nil, 0, e
	}
	return &dirHandle{n: n, ds: ds.(loopbackDir)}, 0, 0
}

// CopyFileRange is refused, so that the kernel copies with reads and
// writes, which the model sees.
func (n *node) CopyFileRange(ctx context.Context, fhIn gofs.FileHandle, offIn uint64, out *gofs.Inode, fhOut gofs.FileHandle, offOut uint64, len uint64, flags uint64) (uint32, syscall.Errno) {
	return 0, syscall.ENOSYS
}

// Tmpfile (O_TMPFILE) is refused: the model has no anonymous inodes.
func (n *node) Tmpfile(ctx context.Context, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EOPNOTSUPP
}

// loopbackDir is what go-fuse's loopback directory stream does.
type loopbackDir interface {
	gofs.DirStream
	gofs.FileReaddirenter
	gofs.FileReleasedirer
	gofs.FileSeekdirer
}

// dirHandle is an open directory: its fsync goes to the model.
type dirHandle struct {
	n  *node
	ds loopbackDir
}

func (d *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	return d.ds.Readdirent(ctx)
}
func (d *dirHandle) Releasedir(ctx context.Context, flags uint32) { d.ds.Releasedir(ctx, flags) }
func (d *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	return d.ds.Seekdir(ctx, off)
}
func (d *dirHandle) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno {
	return d.n.fs.syncDir(d.n.backingPath())
}

// file is an open regular file: writes are recorded, fsync goes to the
// model. It does not offer go-fuse's passthrough, which would take
// writes past the model.
type file struct {
	fs    *FS
	inner *gofs.LoopbackFile
	fd    int
	id    uint64
}

// wrap turns a loopback file handle into one the model sees.
func (f *FS) wrap(fh gofs.FileHandle) (gofs.FileHandle, syscall.Errno) {
	lf, ok := fh.(*gofs.LoopbackFile)
	if !ok {
		return nil, syscall.EIO
	}
	fd, _ := lf.PassthroughFd()
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		lf.Release(context.Background())
		return nil, gofs.ToErrno(err)
	}
	f.mu.Lock()
	id, _ := f.lookup(st.Ino, st.Mode)
	f.mu.Unlock()
	return &file{fs: f, inner: lf, fd: fd, id: id}, 0
}

func (f *file) Read(ctx context.Context, buf []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	return f.inner.Read(ctx, buf, off)
}

func (f *file) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	if e := f.fs.changed(f.id, off, off+int64(len(data))); e != 0 {
		return 0, e
	}
	return f.inner.Write(ctx, data, off)
}

func (f *file) Writev(ctx context.Context, data [][]byte, off int64) (uint32, syscall.Errno) {
	n := 0
	for _, d := range data {
		n += len(d)
	}
	if e := f.fs.changed(f.id, off, off+int64(n)); e != 0 {
		return 0, e
	}
	return f.inner.Writev(ctx, data, off)
}

func (f *file) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	return f.fs.syncData(f.id, f.fd)
}

func (f *file) Allocate(ctx context.Context, off uint64, size uint64, mode uint32) syscall.Errno {
	if e := f.fs.frozen(); e != 0 {
		return e
	}
	if mode != 0 {
		// Punching, zeroing, collapsing or inserting a range changes
		// the data from off on; plain preallocation changes none.
		if e := f.fs.changed(f.id, int64(off), 1<<62); e != 0 {
			return e
		}
	}
	return f.inner.Allocate(ctx, off, size, mode)
}

func (f *file) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	return f.inner.Getattr(ctx, out)
}

func (f *file) Setattr(ctx context.Context, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return f.inner.Setattr(ctx, in, out)
}

func (f *file) Statx(ctx context.Context, flags uint32, mask uint32, out *fuse.StatxOut) syscall.Errno {
	return f.inner.Statx(ctx, flags, mask, out)
}

func (f *file) Release(ctx context.Context) syscall.Errno { return f.inner.Release(ctx) }
func (f *file) Flush(ctx context.Context) syscall.Errno   { return f.inner.Flush(ctx) }
func (f *file) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	return f.inner.Lseek(ctx, off, whence)
}
