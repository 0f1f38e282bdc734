package registry

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chancery-gov/chancery/internal/lazyfs"
	"github.com/chancery-gov/chancery/ledger"
	"github.com/chancery-gov/chancery/seal"
	storefs "github.com/chancery-gov/chancery/store/fs"
)

// The registry's write path on a filesystem that forgets what was not
// made durable when the power is cut (internal/lazyfs): a child writes
// records, some with attachments, and prints each acknowledged one; the
// parent cuts the power and checks, on what the disk held, that the
// registry opens and every acknowledged record reads back with its data
// and its attachment.

const (
	powerEnvDir   = "REGISTRY_POWER_CHILD"
	powerEnvState = "REGISTRY_POWER_STATE" // root key file and signer seed, outside the mount
	powerEnvRound = "REGISTRY_POWER_ROUND"
	powerEnvSync  = "REGISTRY_POWER_SYNC"
	powerPass     = "registry power test"
)

// powerOpen opens the ledger and the registries of a power-loss site.
func powerOpen(t testing.TB, dir, state, syncIv string) (*ledger.Log, *Registries, error) {
	ctx := context.Background()
	seed, err := os.ReadFile(filepath.Join(state, "signer"))
	if err != nil {
		t.Fatal(err)
	}
	c := testCharter()
	signer, _, err := ledger.NewLogSigner(c.Guest.Origin, ed25519.NewKeyFromSeed(seed))
	if err != nil {
		t.Fatal(err)
	}
	root, err := seal.ReadRootKeyFile(filepath.Join(state, "root.age"), []byte(powerPass))
	if err != nil {
		t.Fatal(err)
	}
	o := ledger.Options{Origin: c.Guest.Origin, Signer: signer, CheckpointInterval: time.Millisecond, SegmentSize: 64 << 10}
	if syncIv != "" {
		if o.SyncInterval, err = time.ParseDuration(syncIv); err != nil {
			t.Fatal(err)
		}
	}
	l, err := ledger.Open(ctx, filepath.Join(dir, "ledger"), o)
	if err != nil {
		return nil, nil, err
	}
	be, err := storefs.New(filepath.Join(dir, "blobs"))
	if err != nil {
		l.Close()
		return nil, nil, err
	}
	r, err := Open(ctx, Options{Charter: c, Site: "home", Log: l, Keys: seal.NewKeyring(c.Guest.ID, root), Blobs: be})
	if err != nil {
		l.Close()
		return nil, nil, err
	}
	return l, r, nil
}

// TestPowerChild is the child side of TestPowerLoss. It prints "open" and
// then "ack <id> <sha256 of the record> <sha256 of the attachment or ->"
// for each acknowledged Put.
func TestPowerChild(t *testing.T) {
	dir := os.Getenv(powerEnvDir)
	if dir == "" {
		t.Skip("child of TestPowerLoss only")
	}
	lazyfs.ChildStart()
	round, _ := strconv.Atoi(os.Getenv(powerEnvRound))
	_, reg, err := powerOpen(t, dir, os.Getenv(powerEnvState), os.Getenv(powerEnvSync))
	if err != nil {
		fmt.Printf("error open: %v\n", err)
		os.Exit(2)
	}
	fmt.Println("open")
	ctx := context.Background()
	var out sync.Mutex
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := mrand.New(mrand.NewPCG(uint64(round), uint64(g)))
			for seq := 0; ; seq++ {
				id := fmt.Sprintf("P-%d-%d-%d", round, g, seq)
				data := json.RawMessage(fmt.Sprintf(`{"parcel_id":%q,"owner_id":"O-%d"}`, id, r.IntN(1000)))
				var atts []Attachment
				attSum := "-"
				if seq%4 == 0 {
					blob := make([]byte, 1<<10+r.IntN(24<<10))
					for i := range blob {
						blob[i] = byte(r.Uint32())
					}
					ref, err := reg.PutBlob(ctx, "land", bytes.NewReader(blob))
					if err != nil {
						fmt.Printf("error blob: %v\n", err)
						os.Exit(2)
					}
					atts = []Attachment{{Name: "deed.pdf", Size: ref.Size, Ref: ref}}
					attSum = fmt.Sprintf("%x", sha256.Sum256(blob))
				}
				if _, err := reg.Put(ctx, "land", id, data, atts); err != nil {
					fmt.Printf("error put: %v\n", err)
					os.Exit(2)
				}
				line := fmt.Sprintf("ack %s %x %s\n", id, sha256.Sum256(data), attSum)
				out.Lock()
				os.Stdout.WriteString(line)
				out.Unlock()
			}
		}()
	}
	wg.Wait()
}

// TestPowerLoss: 20 power cuts while a child writes records; after each
// the registry opens and every acknowledged record and attachment is there.
func TestPowerLoss(t *testing.T) {
	lazyfs.RequireRounds(t)
	state := t.TempDir()
	root, err := seal.NewRootKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := seal.WriteRootKeyFile(filepath.Join(state, "root.age"), root, []byte(powerPass), 10); err != nil {
		t.Fatal(err)
	}
	seed := make([]byte, ed25519.SeedSize)
	rand.Read(seed)
	if err := os.WriteFile(filepath.Join(state, "signer"), seed, 0o600); err != nil {
		t.Fatal(err)
	}
	rseed := uint64(time.Now().UnixNano())
	t.Logf("schedule seed %d", rseed)
	rnd := mrand.New(mrand.NewPCG(rseed, 3))

	base := t.TempDir()
	backing, mnt := filepath.Join(base, "backing"), filepath.Join(base, "mnt")
	type ack struct{ data, att string }
	acked := map[string]ack{}
	const rounds = 20
	for round := range rounds {
		syncIv := []string{"", "5ms", "50ms"}[round%3]
		cutAfter := time.Duration(30+rnd.IntN(250)) * time.Millisecond
		cmd := exec.Command(os.Args[0], "-test.run=^TestPowerChild$", "-test.count=1", "-test.timeout=90s")
		cmd.Env = append(os.Environ(), powerEnvDir+"="+mnt, powerEnvState+"="+state,
			powerEnvRound+"="+strconv.Itoa(round), powerEnvSync+"="+syncIv)
		n := 0
		st := lazyfs.Round(t, backing, mnt, cmd, cutAfter, false, func(line string) bool {
			f := strings.Fields(line)
			switch {
			case len(f) == 4 && f[0] == "ack":
				acked[f[1]] = ack{f[2], f[3]}
				n++
			case len(f) > 0 && f[0] == "error":
				t.Fatalf("round %d: child before the cut: %s", round, line)
			}
			return line == "open"
		})
		l, reg, err := powerOpen(t, backing, state, syncIv)
		if err != nil {
			t.Fatalf("round %d: the registry does not open after the power cut: %v", round, err)
		}
		ctx := context.Background()
		for id, a := range acked {
			rec, err := reg.Get(ctx, "land", id, AsOf{})
			if err != nil {
				t.Fatalf("round %d: acknowledged record %s lost in the power cut: %v", round, id, err)
			}
			if got := fmt.Sprintf("%x", sha256.Sum256(rec.Data)); got != a.data {
				t.Fatalf("round %d: record %s differs from what was acknowledged", round, id)
			}
			if a.att == "-" {
				continue
			}
			var buf bytes.Buffer
			if len(rec.Attachments) != 1 {
				t.Fatalf("round %d: record %s has %d attachments", round, id, len(rec.Attachments))
			}
			if err := reg.GetBlob(ctx, "land", rec.Attachments[0].Ref, &buf); err != nil {
				t.Fatalf("round %d: attachment of acknowledged record %s lost in the power cut: %v", round, id, err)
			}
			if got := fmt.Sprintf("%x", sha256.Sum256(buf.Bytes())); got != a.att {
				t.Fatalf("round %d: attachment of record %s differs from what was acknowledged", round, id)
			}
		}
		if err := reg.Close(); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if err := l.Close(); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		t.Logf("round %d: cut after %v, %d acks, sync %q, %+v", round, cutAfter, n, syncIv, st)
	}
	if len(acked) == 0 {
		t.Fatal("no record was acknowledged: the test checked nothing")
	}
	t.Logf("%d power cuts: %d acknowledged records, 0 lost", rounds, len(acked))
}
