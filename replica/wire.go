package replica

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/chancery-gov/chancery/ledger"
)

// Batch is one shipment of ledger entries: a contiguous run starting at
// First, the writer's signed checkpoint it belongs to, and, when the run
// ends short of that checkpoint, the consistency proof from its end.
type Batch struct {
	First      uint64
	Checkpoint []byte // the writer's signed checkpoint note
	Proof      []ledger.Hash
	Entries    [][]byte // encoded entries (withheld stubs where the site may not hold one)
}

// End is the index after the batch's last entry.
func (b *Batch) End() uint64 { return b.First + uint64(len(b.Entries)) }

// The batch encoding (Content-Type application/x-chancery-batch):
//
//	"CHBATCH1" | u64 first | u32 len ‖ checkpoint | u8 n ‖ n × 32 proof |
//	u32 count | count × (u16 len ‖ entry)
//
// Fixed-width lengths bound every allocation by the bytes actually read.
const (
	batchMagic     = "CHBATCH1"
	batchMediaType = "application/x-chancery-batch"
	// MaxBatchBytes bounds a batch on the wire: it must fit one write-ahead
	// log frame at the site.
	MaxBatchBytes = ledger.MaxFrameBytes - 1<<16
	maxCheckpoint = 64 << 10
	maxProof      = 64
)

// MarshalBinary encodes the batch.
func (b *Batch) MarshalBinary() ([]byte, error) {
	if len(b.Checkpoint) > maxCheckpoint {
		return nil, fmt.Errorf("batch: checkpoint of %d bytes", len(b.Checkpoint))
	}
	if len(b.Proof) > maxProof {
		return nil, fmt.Errorf("batch: proof of %d hashes", len(b.Proof))
	}
	// ParseBatch refuses this; never encode what cannot be decoded.
	if b.First > ^uint64(0)-uint64(len(b.Entries)) {
		return nil, fmt.Errorf("batch: first index %d overflows", b.First)
	}
	n := len(batchMagic) + 8 + 4 + len(b.Checkpoint) + 1 + 32*len(b.Proof) + 4
	for i, e := range b.Entries {
		if len(e) > ledger.MaxEntrySize {
			return nil, fmt.Errorf("batch: entry %d: %d bytes", b.First+uint64(i), len(e))
		}
		n += 2 + len(e)
	}
	if n > MaxBatchBytes {
		return nil, fmt.Errorf("batch of %d bytes: at most %d", n, MaxBatchBytes)
	}
	out := make([]byte, 0, n)
	out = append(out, batchMagic...)
	out = binary.BigEndian.AppendUint64(out, b.First)
	out = binary.BigEndian.AppendUint32(out, uint32(len(b.Checkpoint)))
	out = append(out, b.Checkpoint...)
	out = append(out, byte(len(b.Proof)))
	for _, h := range b.Proof {
		out = append(out, h[:]...)
	}
	out = binary.BigEndian.AppendUint32(out, uint32(len(b.Entries)))
	for _, e := range b.Entries {
		out = binary.BigEndian.AppendUint16(out, uint16(len(e)))
		out = append(out, e...)
	}
	return out, nil
}

// ParseBatch decodes a batch. It is strict: trailing bytes, a count that
// does not match, or any length past the end is an error naming the part.
// Entries alias data.
func ParseBatch(data []byte) (*Batch, error) {
	d := data
	take := func(n int, what string) ([]byte, error) {
		if n < 0 || len(d) < n {
			return nil, fmt.Errorf("batch: %s: %w", what, io.ErrUnexpectedEOF)
		}
		p := d[:n:n]
		d = d[n:]
		return p, nil
	}
	magic, err := take(len(batchMagic), "magic")
	if err != nil {
		return nil, err
	}
	if string(magic) != batchMagic {
		return nil, errors.New("batch: bad magic or version")
	}
	p, err := take(8, "first index")
	if err != nil {
		return nil, err
	}
	b := &Batch{First: binary.BigEndian.Uint64(p)}
	if p, err = take(4, "checkpoint length"); err != nil {
		return nil, err
	}
	cl := binary.BigEndian.Uint32(p)
	if cl > maxCheckpoint {
		return nil, fmt.Errorf("batch: checkpoint of %d bytes", cl)
	}
	if b.Checkpoint, err = take(int(cl), "checkpoint"); err != nil {
		return nil, err
	}
	if p, err = take(1, "proof length"); err != nil {
		return nil, err
	}
	np := int(p[0])
	if np > maxProof {
		return nil, fmt.Errorf("batch: proof of %d hashes", np)
	}
	if p, err = take(32*np, "proof"); err != nil {
		return nil, err
	}
	for i := 0; i < np; i++ {
		b.Proof = append(b.Proof, ledger.Hash(p[32*i:32*i+32]))
	}
	if p, err = take(4, "entry count"); err != nil {
		return nil, err
	}
	count := binary.BigEndian.Uint32(p)
	if uint64(count)*2 > uint64(len(d)) {
		return nil, fmt.Errorf("batch: %d entries cannot fit in %d bytes", count, len(d))
	}
	b.Entries = make([][]byte, 0, count)
	for i := uint32(0); i < count; i++ {
		if p, err = take(2, fmt.Sprintf("entry %d length", b.First+uint64(i))); err != nil {
			return nil, err
		}
		l := int(binary.BigEndian.Uint16(p))
		e, err := take(l, fmt.Sprintf("entry %d", b.First+uint64(i)))
		if err != nil {
			return nil, err
		}
		b.Entries = append(b.Entries, e)
	}
	if len(d) != 0 {
		return nil, fmt.Errorf("batch: %d trailing bytes", len(d))
	}
	if b.First > ^uint64(0)-uint64(count) {
		return nil, fmt.Errorf("batch: first index %d overflows", b.First)
	}
	return b, nil
}

// State is what a site reports about one guest's mirror: where replication
// resumes, and the receipt it last gave.
type State struct {
	Guest  string `json:"guest"`
	Site   string `json:"site"`
	Origin string `json:"origin"`
	Size   uint64 `json:"size"`  // entries held: the next batch starts here
	Epoch  uint64 `json:"epoch"` // highest epoch held
	// Fence is the epoch from which the site takes batches, when an
	// activation order shown to it is ahead of what it holds: a writer
	// of an older epoch reading it knows it is superseded.
	Fence   uint64 `json:"fenced_from,omitempty"`
	Receipt []byte `json:"receipt"` // the newest checkpoint held, cosigned by the site (C2SP tlog-cosignature)
	// Suspension is the host's signed notice of suspension, if one was given
	// (see Suspension).
	Suspension []byte `json:"suspension,omitempty"`
}

// Progress answers a batch that ended short of its checkpoint: the entries
// are durable, but there is no receipt until a batch reaches a checkpoint.
type Progress struct {
	Size uint64 `json:"size"`
}
