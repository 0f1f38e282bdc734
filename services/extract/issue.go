package extract

import (
	"context"
	"crypto"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/chancery-gov/chancery/charter"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/services/extract/offline"
)

// Issuer issues extracts at one site. It is safe for concurrent use.
type Issuer struct {
	charter *charter.Charter
	signer  crypto.Signer
	gen     uint32
	site    string
	log     *ledger.Log
	prover  *ledger.Prover
	// cosigned returns a signed checkpoint of at least size entries,
	// carrying the cosignatures of enough sites (the site passes its
	// replication receipts).
	cosigned func(ctx context.Context, size uint64) ([]byte, error)
	now      func() time.Time
	epoch    func() uint64

	text offline.TextEncoder
	qr   QREncoder

	mu   sync.Mutex
	last *offline.ReceiptSigner // receipts against the newest checkpoint
}

// Render returns the QR text and the QR code PNG of an extract issued
// here, reusing the issuer's compressors.
func (is *Issuer) Render(e *Extract) (text string, png []byte, err error) {
	if text, err = is.text.EncodeText(e.COSE); err != nil {
		return "", nil, err
	}
	if png, err = is.qr.PNG(text); err != nil {
		return "", nil, err
	}
	return text, png, nil
}

// IssuerOptions configure an Issuer.
type IssuerOptions struct {
	Charter *charter.Charter
	// Signer is the state's extract key (seal.Keyring.StateSigner
	// "extract", EdDSA) of generation Generation; the charter must
	// publish its public half.
	Signer     crypto.Signer
	Generation uint32
	// Site is the issuing site's charter id.
	Site string
	// Log is the ledger the site writes: acts are appended to it and
	// proven from its tiles.
	Log *ledger.Log
	// Cosigned returns a signed checkpoint of the log of at least size
	// entries, with the cosignatures of enough sites.
	Cosigned func(ctx context.Context, size uint64) ([]byte, error)
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Epoch is the guest's current epoch at the site (default: the
	// log's highest epoch).
	Epoch func() uint64
}

// NewIssuer checks the options: the signer must be the key the charter
// publishes for that generation.
func NewIssuer(o IssuerOptions) (*Issuer, error) {
	if o.Charter == nil || o.Signer == nil || o.Log == nil || o.Cosigned == nil {
		return nil, errors.New("extract issuer: charter, signer, log and cosigned are required")
	}
	if _, ok := o.Charter.Site(o.Site); !ok {
		return nil, fmt.Errorf("extract issuer: site %q is not in the charter", o.Site)
	}
	found := false
	for _, k := range o.Charter.StateKeys {
		if k.Purpose != "extract" || k.Generation != o.Generation {
			continue
		}
		pub, err := k.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("extract issuer: charter state key extract/%d: %w", k.Generation, err)
		}
		eq, ok := o.Signer.Public().(interface{ Equal(crypto.PublicKey) bool })
		if !ok || !eq.Equal(pub) {
			return nil, fmt.Errorf("extract issuer: the signer is not the extract key of generation %d the charter publishes", o.Generation)
		}
		found = true
	}
	if !found {
		return nil, fmt.Errorf("extract issuer: the charter publishes no extract key of generation %d", o.Generation)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Epoch == nil {
		o.Epoch = o.Log.Epoch
	}
	return &Issuer{
		charter: o.Charter, signer: o.Signer, gen: o.Generation, site: o.Site, log: o.Log,
		prover: ledger.NewProver(ledger.DirFetcher(o.Log.Dir()), 64), cosigned: o.Cosigned, now: o.Now, epoch: o.Epoch,
	}, nil
}

// Request asks for an extract of one record version.
type Request struct {
	Registry string
	Record   string
	Version  uint64
	// Index is the ledger index of the record version certified.
	Index uint64
	// Fields is the subset of the record certified.
	Fields map[string]any
}

// Extract is an issued extract.
type Extract struct {
	// COSE is the COSE_Sign1 with its receipt: what the QR code, the PDF
	// and offline.Verifier carry.
	COSE   []byte
	Claims *offline.Claims
	// Act is the ledger index of the act entry; Checkpoint the size of
	// the cosigned checkpoint its receipt proves against.
	Act        uint64
	Checkpoint uint64
}

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// Issue issues one extract per request. The acts are appended as one
// batch, so one durable write and one cosigned checkpoint serve them all:
// that is how a site issues thousands a second.
func (is *Issuer) Issue(ctx context.Context, reqs ...Request) ([]*Extract, error) {
	if len(reqs) == 0 {
		return nil, errors.New("issue extracts: no request")
	}
	now := is.now().Unix()
	epoch := is.epoch()
	out := make([]*Extract, len(reqs))
	msgs := make([][]byte, len(reqs))
	entries := make([]ledger.Entry, len(reqs))
	for i, r := range reqs {
		if _, ok := is.charter.Registry(r.Registry); !ok {
			return nil, fmt.Errorf("issue extract %d: registry %q is not in the charter", i, r.Registry)
		}
		var id [10]byte
		if _, err := rand.Read(id[:]); err != nil {
			return nil, err
		}
		c := &offline.Claims{
			Guest: is.charter.Guest.ID, Registry: r.Registry, Record: r.Record, Version: r.Version,
			RecordIndex: r.Index, Fields: r.Fields, IssuedAt: now, Epoch: epoch, Site: is.site,
			ID: idEncoding.EncodeToString(id[:]),
		}
		msg, h, err := offline.SignStatement(is.signer, is.gen, c)
		if err != nil {
			return nil, fmt.Errorf("issue extract of %s/%s: %w", r.Registry, r.Record, err)
		}
		msgs[i] = msg
		out[i] = &Extract{Claims: c}
		entries[i] = ledger.Entry{Type: ledger.TypeAct, Epoch: epoch, Time: time.Unix(now, 0), Payload: h[:]}
	}
	first, err := is.log.AppendBatch(ctx, entries)
	if err != nil {
		return nil, fmt.Errorf("issue extracts: record %d acts: %w", len(entries), err)
	}
	rs, err := is.receiptSigner(ctx, first+uint64(len(entries)))
	if err != nil {
		return nil, err
	}
	size := rs.Checkpoint().Size
	for i := range out {
		idx := first + uint64(i)
		path, err := is.prover.Inclusion(ctx, idx, size)
		if err != nil {
			return nil, fmt.Errorf("issue extract %s: inclusion proof of act %d in tree of size %d: %w", out[i].Claims.ID, idx, size, err)
		}
		// Prove before handing out: a receipt that does not verify
		// would be found out by the first border guard, not here.
		raw, err := entries[i].MarshalBinary()
		if err != nil {
			return nil, err
		}
		if err := ledger.VerifyInclusion(idx, size, ledger.LeafHash(raw), path, rs.Checkpoint().Root); err != nil {
			return nil, fmt.Errorf("issue extract %s: act %d does not prove against checkpoint %d: %w", out[i].Claims.ID, idx, size, err)
		}
		rc, err := rs.Receipt(idx, path)
		if err != nil {
			return nil, err
		}
		if out[i].COSE, err = offline.AttachReceipt(msgs[i], rc); err != nil {
			return nil, err
		}
		out[i].Act, out[i].Checkpoint = idx, size
	}
	return out, nil
}

// receiptSigner returns the receipt signer of a cosigned checkpoint of at
// least size entries, reusing the newest when it is large enough.
func (is *Issuer) receiptSigner(ctx context.Context, size uint64) (*offline.ReceiptSigner, error) {
	is.mu.Lock()
	rs := is.last
	is.mu.Unlock()
	if rs != nil && rs.Checkpoint().Size >= size {
		return rs, nil
	}
	cp, err := is.cosigned(ctx, size)
	if err != nil {
		return nil, fmt.Errorf("issue extracts: cosigned checkpoint of size %d: %w", size, err)
	}
	if rs, err = offline.NewReceiptSigner(is.signer, is.gen, cp); err != nil {
		return nil, err
	}
	if rs.Checkpoint().Size < size {
		return nil, fmt.Errorf("issue extracts: cosigned checkpoint of size %d does not cover act %d", rs.Checkpoint().Size, size-1)
	}
	is.mu.Lock()
	if is.last == nil || is.last.Checkpoint().Size < rs.Checkpoint().Size {
		is.last = rs
	}
	is.mu.Unlock()
	return rs, nil
}
