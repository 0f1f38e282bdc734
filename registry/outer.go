package registry

import (
	"github.com/chancery-gov/chancery/seal"
	"github.com/chancery-gov/chancery/store"
)

// outerSealer puts a site's outer layer around the registry's blob
// sealing: what a site stores is SiteKey.Seal(SiteAD(guest, site, id),
// inner), so that destroying the site's outer key shreds its copy of the
// attachments while every other site's copy stays readable
// (docs/threat-model.md § Site outer layer). Chunk ids stay the inner
// keyed ids, identical everywhere, so dedup and references do not change.
type outerSealer struct {
	inner       store.Sealer
	outer       *seal.SiteKey
	guest, site string
}

func (o outerSealer) ChunkID(plaintext []byte) [32]byte { return o.inner.ChunkID(plaintext) }

func (o outerSealer) Seal(id [32]byte, data []byte) ([]byte, error) {
	in, err := o.inner.Seal(id, data)
	if err != nil {
		return nil, err
	}
	return o.outer.Seal(seal.SiteAD(o.guest, o.site, id), in)
}

func (o outerSealer) Open(id [32]byte, sealed []byte) ([]byte, error) {
	in, err := o.outer.Open(seal.SiteAD(o.guest, o.site, id), sealed)
	if err != nil {
		return nil, err
	}
	return o.inner.Open(id, in)
}

// sealer is the blob sealer of a registry at this site: the registry's
// blob keys, inside the site's outer layer when the site has one.
func (r *Registries) sealer(g *reg) store.Sealer {
	if r.opts.Outer == nil {
		return g.keys.Blobs()
	}
	return outerSealer{inner: g.keys.Blobs(), outer: r.opts.Outer, guest: r.opts.Charter.Guest.ID, site: r.opts.Site}
}

// OuterSealer is the blob sealer of a site whose copy carries an outer
// layer: what to read a site's sealed attachments with, given the
// registry's blob keys and the site's outer key.
func OuterSealer(inner store.Sealer, outer *seal.SiteKey, guest, site string) store.Sealer {
	return outerSealer{inner: inner, outer: outer, guest: guest, site: site}
}
