package bundle

import (
	"context"
	"fmt"

	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/replica"
)

// Imported is what Import took.
type Imported struct {
	Manifest *Manifest
	// Before is the number of entries the site's mirror held before.
	Before uint64
	// Entries taken, of which Withheld are stubs; Packs stored (those the
	// site already held are not counted) and Bytes read from the bundle
	// and stored.
	Entries, Withheld uint64
	Packs             int
	Bytes             int64
	// Receipt is the site's cosigned checkpoint for the bundle's end, and
	// Size that checkpoint's size: where replication resumes.
	Receipt []byte
	Size    uint64
}

// Import verifies a bundle (Verify against the receiver's
// mirror and blobs) and only then feeds it to the receiver: every pack the
// site lacks (PutObject), then the batches in order (Accept), exactly as
// replication would have. It returns the receipt of the last batch.
// Replication then resumes by itself from the site's state.
//
// The result is never nil: on error it says what was taken, and Before
// what the site held (all it holds after a refusal).
//
// Every file is read again as it is fed and must still hash as the
// manifest says. A failure after verification (the disk failing, the site
// moving on meanwhile, a suspension) can leave the site with part of the
// bundle, and never with anything unchecked: each batch the receiver took
// is durable and in order.
func Import(ctx context.Context, dir string, r *replica.Receiver, progress func(Progress)) (*Imported, error) {
	o := r.Options()
	res := &Imported{Before: o.Log.MirrorSize()}
	m, err := verify(ctx, dir, o.Charter, o.Writers, o.Site, Holding{Log: o.Log, Blobs: o.Blobs}, progress)
	if err != nil {
		return res, err
	}
	res.Manifest = m
	// Before anything is taken: PutObject does not ask.
	if err := r.CheckSuspended(); err != nil {
		return res, fmt.Errorf("bundle: %w", err)
	}
	prog := Progress{Stage: "import", TotalEntries: m.Entries(), TotalBytes: m.Bytes()}
	report := func() {
		if progress != nil {
			progress(prog)
		}
	}

	// Which packs the site lacks, and whether the quota has room for them
	// and the entries, before anything is taken.
	var packs []packFile
	byReg := map[string][]string{}
	var need int64
	for _, f := range m.Files {
		switch kind, reg, name := classify(f.Path); kind {
		case "checkpoint":
			// It travels inside every batch too: nothing to feed on its own.
			prog.Bytes += f.Size
		case "pack":
			packs = append(packs, packFile{reg: reg, name: name, file: f})
			byReg[reg] = append(byReg[reg], name)
		case "batch":
			need += f.Size
		}
	}
	missing := map[string]bool{}
	for reg, names := range byReg {
		ms, err := r.Missing(ctx, reg, names)
		if err != nil {
			return res, fmt.Errorf("bundle: registry %s: %w", reg, err)
		}
		for _, name := range ms {
			missing[packPath(reg, name)] = true
		}
	}
	for _, p := range packs {
		if missing[p.file.Path] {
			need += p.file.Size
		}
	}
	if err := r.Room(need); err != nil {
		return res, fmt.Errorf("bundle: %w", err)
	}

	for _, p := range packs {
		if !missing[p.file.Path] {
			prog.Bytes += p.file.Size
			report()
			continue
		}
		data, err := readFile(dir, p.file, replica.MaxObjectBytes)
		if err != nil {
			return res, err
		}
		if err := r.PutObject(ctx, p.reg, p.name, data); err != nil {
			return res, fmt.Errorf("bundle: %s: %w", p.file.Path, err)
		}
		res.Packs++
		res.Bytes += p.file.Size
		prog.Packs++
		prog.Bytes += p.file.Size
		report()
	}
	var receipt []byte
	for _, f := range m.Files {
		if kind, _, _ := classify(f.Path); kind != "batch" {
			continue
		}
		b, err := readBatch(dir, f)
		if err != nil {
			return res, err
		}
		if receipt, err = r.Accept(ctx, b); err != nil {
			return res, fmt.Errorf("bundle: %s: entries %d–%d: %w (the site now holds %d entries)", f.Path, b.First, b.End()-1, err, o.Log.MirrorSize())
		}
		for _, e := range b.Entries {
			if e[1] == byte(ledger.TypeWithheld) {
				res.Withheld++
			}
		}
		res.Entries += uint64(len(b.Entries))
		res.Bytes += f.Size
		prog.Entries += uint64(len(b.Entries))
		prog.Bytes += f.Size
		report()
	}
	if receipt == nil {
		return res, fmt.Errorf("bundle: the site gave no receipt after the last batch")
	}
	cp, err := ledger.ParseSignedCheckpoint(receipt)
	if err != nil {
		return res, fmt.Errorf("bundle: receipt: %w", err)
	}
	res.Receipt, res.Size = receipt, cp.Size
	return res, nil
}
