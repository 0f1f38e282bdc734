// Package demogen generates the Demo Republic's registry data: citizens in
// the population register with their identity documents, land parcels (with
// scanned title deeds as attachments) and businesses, and the legal acts of
// the state. The output is deterministic — the same Options give the same
// bytes, however many cores do the work — and streams: memory does not grow
// with the number of persons, so ten million citizens fit a small machine.
//
// Records come out as Lines, one per record, ready for import: JSON Lines
// with {"registry","id","record","attachments"}. Every record carries its
// registry's index fields as the Demo Republic's charter names them
// (population: national_id, last_name; identity-documents: document_no,
// national_id; land: parcel_id, owner_id; business: registration_no;
// legal-acts: act_id).
package demogen

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
)

// Registry names, as in the Demo Republic's charter.
const (
	RegPopulation = "population"
	RegIdentity   = "identity-documents"
	RegLand       = "land"
	RegBusiness   = "business"
	RegLegalActs  = "legal-acts"
)

// IndexFields lists each registry's index fields (from the charter); every
// generated record holds all of them as strings.
func IndexFields(registry string) []string {
	switch registry {
	case RegPopulation:
		return []string{"national_id", "last_name"}
	case RegIdentity:
		return []string{"document_no", "national_id"}
	case RegLand:
		return []string{"parcel_id", "owner_id"}
	case RegBusiness:
		return []string{"registration_no"}
	case RegLegalActs:
		return []string{"act_id"}
	}
	return nil
}

// DefaultPersons is the population generated when Options.Persons is zero.
const DefaultPersons = 1000

// MaxPersons bounds Options.Persons: identifiers are nine-digit numbers and a
// person may hold up to four parcels.
const MaxPersons = 100_000_000

// Options configure a generation.
type Options struct {
	// Persons is the number of citizens (default DefaultPersons).
	Persons int
	// Seed selects the republic: the same seed gives byte-identical output.
	Seed uint64
	// Deeds writes a scanned title deed (100 KB – 5 MB) per land parcel
	// under DeedDir and attaches it to the parcel's record. About 5% of
	// parcels also carry a notarised copy: a second file, byte-identical.
	// Deeds average about 1.25 MB, some 375 KB of disk per person.
	Deeds   bool
	DeedDir string
	// Workers is the number of goroutines generating records (default
	// GOMAXPROCS). It never changes the output.
	Workers int
}

// Line is one record to import.
type Line struct {
	Registry string `json:"registry"`
	ID       string `json:"id"`
	// Record is the record as compact JSON; it holds the registry's index
	// fields.
	Record json.RawMessage `json:"record"`
	// Attachments maps attachment name ("deed", "deed-copy") to a file path.
	Attachments map[string]string `json:"attachments,omitempty"`
}

// Counts returns the expected number of records per registry for a
// population (the generator draws counts at random around these means).
func Counts(persons int) map[string]float64 {
	p := float64(persons)
	return map[string]float64{
		RegPopulation: p,
		RegIdentity:   p * meanDocuments,
		RegLand:       p * meanParcels,
		RegBusiness:   p * meanBusinesses,
		RegLegalActs:  float64(ActCount(persons)),
	}
}

// ActCount is the number of legal acts generated for a population.
func ActCount(persons int) int { return persons/1000 + 20 }

func (o Options) normalized() (Options, error) {
	if o.Persons == 0 {
		o.Persons = DefaultPersons
	}
	if o.Persons < 0 || o.Persons > MaxPersons {
		return o, fmt.Errorf("demogen: persons %d out of range 1..%d", o.Persons, MaxPersons)
	}
	if o.Deeds && o.DeedDir == "" {
		return o, errors.New("demogen: deeds need a deed directory")
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	return o, nil
}

// blockSize is the number of persons a worker generates at a time.
const blockSize = 256

// block is one unit of work: persons [start, end), its output either as
// Lines or as JSON Lines bytes.
type block struct {
	start, end int
	lines      []Line
	out        []byte
	err        error
	done       chan struct{}
}

// Generate emits the legal acts, then each person's population record
// followed by their identity documents, parcels and businesses, in order.
// Workers build records in parallel; emit is called from one goroutine.
// If emit returns an error, Generate stops and returns it.
func Generate(ctx context.Context, opts Options, emit func(Line) error) error {
	opts, err := opts.normalized()
	if err != nil {
		return err
	}
	acts := newActWriter(opts.Seed, opts.Persons)
	for k := range acts.n {
		if err := ctx.Err(); err != nil {
			return err
		}
		id, rec := acts.act(nil, k)
		if err := emit(Line{Registry: RegLegalActs, ID: id, Record: rec}); err != nil {
			return err
		}
	}
	return run(ctx, opts, false, func(b *block) error {
		for _, l := range b.lines {
			if err := emit(l); err != nil {
				return err
			}
		}
		return nil
	})
}

// WriteJSONL writes the generation to w as JSON Lines (one Line per line,
// the same bytes json.Marshal gives for it). progress, if set, is called
// with the number of persons done so far and the total, after each few
// hundred persons and at the end.
func WriteJSONL(ctx context.Context, opts Options, w io.Writer, progress func(done, total int)) error {
	opts, err := opts.normalized()
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	acts := newActWriter(opts.Seed, opts.Persons)
	var rec, line []byte
	for k := range acts.n {
		if err := ctx.Err(); err != nil {
			return err
		}
		var id string
		id, rec = acts.act(rec[:0], k)
		line = appendLine(line[:0], RegLegalActs, id, rec, nil)
		if _, err := bw.Write(line); err != nil {
			return err
		}
	}
	if progress != nil {
		progress(0, opts.Persons)
	}
	err = run(ctx, opts, true, func(b *block) error {
		if _, err := bw.Write(b.out); err != nil {
			return err
		}
		if progress != nil {
			progress(b.end, opts.Persons)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return bw.Flush()
}

// run generates the persons in blocks on opts.Workers goroutines and hands
// the blocks to consume in order. At most a few blocks per worker are in
// flight, so memory is bounded whatever the population.
func run(ctx context.Context, opts Options, serialize bool, consume func(*block) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	inflight := opts.Workers * 4
	jobs := make(chan *block, inflight)
	order := make(chan *block, inflight)
	free := make(chan *block, inflight+opts.Workers+2)

	var wg sync.WaitGroup
	// Dispatcher: hands out blocks in order.
	wg.Go(func() {
		defer close(jobs)
		defer close(order)
		for start := 0; start < opts.Persons; start += blockSize {
			var b *block
			select {
			case b = <-free:
			default:
				b = &block{}
			}
			b.start, b.end = start, min(start+blockSize, opts.Persons)
			b.lines, b.out, b.err = b.lines[:0], b.out[:0], nil
			b.done = make(chan struct{})
			select {
			case order <- b:
			case <-ctx.Done():
				return
			}
			select {
			case jobs <- b:
			case <-ctx.Done():
				close(b.done)
				return
			}
		}
	})
	for range opts.Workers {
		wg.Go(func() {
			g := newGen(opts, serialize)
			for b := range jobs {
				if ctx.Err() != nil {
					b.err = ctx.Err()
				} else {
					b.err = g.block(b)
				}
				close(b.done)
			}
		})
	}

	var err error
	for b := range order {
		<-b.done
		if err == nil {
			err = b.err
		}
		if err == nil {
			err = ctx.Err()
		}
		if err == nil {
			err = consume(b)
		}
		if err != nil {
			cancel()
			continue // drain
		}
		if serialize {
			// The block's buffers are reused; Lines handed to emit are not.
			select {
			case free <- b:
			default:
			}
		} else {
			b.lines = nil
		}
	}
	wg.Wait()
	if err == nil {
		err = ctx.Err()
	}
	return err
}

// appendLine appends the JSON Lines form of a Line.
func appendLine(b []byte, registry, id string, rec []byte, att []attachment) []byte {
	b = append(b, `{"registry":`...)
	b = appendString(b, registry)
	b = append(b, `,"id":`...)
	b = appendString(b, id)
	b = append(b, `,"record":`...)
	b = append(b, rec...)
	if len(att) > 0 {
		b = append(b, `,"attachments":{`...)
		for i, a := range att { // names are sorted, as json.Marshal sorts
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, a.name)
			b = append(b, ':')
			b = appendString(b, a.path)
		}
		b = append(b, '}')
	}
	return append(b, '}', '\n')
}

type attachment struct{ name, path string }

// gen is one worker's generator state; it is reused from record to record.
type gen struct {
	opts      Options
	serialize bool
	pcg       rand.PCG
	r         *rand.Rand
	rec       []byte
	id        []byte
	id2       []byte
	deed      []byte
	att       []attachment
	b         *block
}

func newGen(opts Options, serialize bool) *gen {
	g := &gen{opts: opts, serialize: serialize}
	g.r = rand.New(&g.pcg)
	return g
}

// reseed points the worker's PCG at the stream of one record.
func (g *gen) reseed(domain uint64, index uint64) {
	g.pcg.Seed(streamSeed(g.opts.Seed, domain, index))
}

// put adds a finished record (g.rec) to the block.
func (g *gen) put(registry string, id []byte, att []attachment) {
	b := g.b
	if g.serialize {
		b.out = appendLine(b.out, registry, string(id), g.rec, att)
		return
	}
	l := Line{Registry: registry, ID: string(id), Record: bytes.Clone(g.rec)}
	if len(att) > 0 {
		l.Attachments = make(map[string]string, len(att))
		for _, a := range att {
			l.Attachments[a.name] = a.path
		}
	}
	b.lines = append(b.lines, l)
}

func (g *gen) block(b *block) error {
	g.b = b
	for i := b.start; i < b.end; i++ {
		if err := g.person(i); err != nil {
			return err
		}
	}
	return nil
}
