package store

import (
	"context"
	"fmt"
	"io"
	"strings"
)

// Prefixed returns a view of be in which every name is stored under prefix
// (for example "registries/population/"), and List hands back names with
// the prefix stripped. Each registry gets its own Store over its own view,
// so shipping a registry's packs to a site means shipping one prefix, and
// a site the charter does not allow that registry never receives them.
//
// The prefix must end in "/" and, without that slash, be a ValidName. The
// trailing slash is what keeps "registries/a/" from seeing the objects of
// "registries/ab/", on S3 (where a prefix is a plain string match) as on
// disk. Views whose prefixes nest ("a/" and "a/b/") are not isolated from
// each other; give each registry one component.
//
// An invalid prefix does not panic, because a prefix usually comes from a
// charter rather than from code: the returned Backend fails every call with
// an error naming the prefix, and nothing reaches be.
func Prefixed(be Backend, prefix string) Backend {
	if err := checkPrefix(prefix); err != nil {
		return badPrefix{err}
	}
	return &prefixed{be: be, prefix: prefix}
}

func checkPrefix(prefix string) error {
	base, ok := strings.CutSuffix(prefix, "/")
	if !ok || !ValidName(base) {
		return fmt.Errorf("store: prefixed backend: invalid prefix %q (want a valid object name followed by \"/\")", prefix)
	}
	return nil
}

type prefixed struct {
	be     Backend
	prefix string
}

// full checks name on its own, not only prefix+name, so that the view
// accepts exactly the names a Backend does and the error names what the
// caller passed rather than a path they never wrote.
func (p *prefixed) full(name string) (string, error) {
	if !ValidName(name) {
		return "", fmt.Errorf("store: prefixed backend %s: invalid object name %q", p.prefix, name)
	}
	return p.prefix + name, nil
}

func (p *prefixed) Save(ctx context.Context, name string, data io.Reader, size int64) error {
	full, err := p.full(name)
	if err != nil {
		return err
	}
	return p.be.Save(ctx, full, data, size)
}

func (p *prefixed) Load(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	full, err := p.full(name)
	if err != nil {
		return nil, err
	}
	return p.be.Load(ctx, full, off, length)
}

func (p *prefixed) Stat(ctx context.Context, name string) (int64, error) {
	full, err := p.full(name)
	if err != nil {
		return 0, err
	}
	return p.be.Stat(ctx, full)
}

func (p *prefixed) List(ctx context.Context, prefix string, fn func(name string, size int64) error) error {
	return p.be.List(ctx, p.prefix+prefix, func(name string, size int64) error {
		rel, ok := strings.CutPrefix(name, p.prefix)
		if !ok {
			// The Backend contract rules this out; a view must never pass
			// another view's object up, so refuse rather than guess.
			return fmt.Errorf("store: prefixed backend %s: list returned %q, outside the prefix", p.prefix, name)
		}
		return fn(rel, size)
	})
}

func (p *prefixed) Remove(ctx context.Context, name string) error {
	full, err := p.full(name)
	if err != nil {
		return err
	}
	return p.be.Remove(ctx, full)
}

// badPrefix is what Prefixed returns for an invalid prefix.
type badPrefix struct{ err error }

func (b badPrefix) Save(context.Context, string, io.Reader, int64) error { return b.err }
func (b badPrefix) Load(context.Context, string, int64, int64) (io.ReadCloser, error) {
	return nil, b.err
}
func (b badPrefix) Stat(context.Context, string) (int64, error) { return 0, b.err }
func (b badPrefix) List(context.Context, string, func(string, int64) error) error {
	return b.err
}
func (b badPrefix) Remove(context.Context, string) error { return b.err }
