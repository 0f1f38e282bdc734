package store_test

import (
	"context"
	"testing"

	"github.com/chancery-gov/chancery/internal/s3test"
	"github.com/chancery-gov/chancery/store"
	"github.com/chancery-gov/chancery/store/s3"
)

func TestRefStrict(t *testing.T) {
	good, _ := store.Ref{Size: 10, Chunks: []store.ID{{1}, {2}}}.MarshalBinary()
	bad := map[string][]byte{
		"empty":          nil,
		"magic":          append([]byte("XHRF"), good[4:]...),
		"version":        append(append([]byte("CHRF"), 2), good[5:]...),
		"trailing":       append(append([]byte{}, good...), 0),
		"truncated":      good[:len(good)-1],
		"size<count":     mustRef(t, store.Ref{Size: 10, Chunks: []store.ID{{1}, {2}}}, func(b []byte) { b[12] = 1 }),
		"size>count*max": mustRef(t, store.Ref{Size: 10, Chunks: []store.ID{{1}, {2}}}, func(b []byte) { b[6] = 1 }),
		"zero chunks":    mustRef(t, store.Ref{}, func(b []byte) { b[12] = 1 }),
	}
	for name, b := range bad {
		var r store.Ref
		if err := r.UnmarshalBinary(b); err == nil {
			t.Errorf("%s: accepted %x", name, b)
		}
	}
	var r store.Ref
	if err := r.UnmarshalBinary(good); err != nil || r.Size != 10 || len(r.Chunks) != 2 {
		t.Fatalf("good ref: %+v, %v", r, err)
	}
	if (store.Ref{Size: 10, Chunks: []store.ID{{1}, {2}}}).Hash() == (store.Ref{Size: 11, Chunks: []store.ID{{1}, {2}}}).Hash() {
		t.Fatal("hash ignores size")
	}
	if _, err := (store.Ref{Size: -1}).MarshalBinary(); err == nil {
		t.Fatal("negative size marshalled")
	}
}

func mustRef(t *testing.T, r store.Ref, mutate func([]byte)) []byte {
	b, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	mutate(b)
	return b
}

// TestStoreOverS3 runs the blob layer on the S3 backend against versitygw:
// put, reopen from the bucket alone, read, check, dedup.
func TestStoreOverS3(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	open := func() (*store.Store, store.Backend) {
		be, err := s3.New(ctx, s3.Config{Endpoint: srv.Endpoint, Bucket: "blobs", Prefix: "guest-ua",
			AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, Region: srv.Region, Insecure: true, CreateBucket: true})
		if err != nil {
			t.Fatal(err)
		}
		s, err := store.Open(ctx, be, store.Options{Chunking: testChunking(t), PackSize: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		return s, be
	}
	s, _ := open()
	sl := newTestSealer(t, 1)
	var refs []store.Ref
	var datas [][]byte
	for i := range 5 {
		d := content(uint64(i), 200<<10+i*700<<10, i%3)
		datas = append(datas, d)
		refs = append(refs, put(t, s, sl, d))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, be := open()
	defer s.Close()
	for i := range refs {
		mustGet(t, s, sl, refs[i], datas[i])
	}
	if err := s.Check(ctx, sl); err != nil {
		t.Fatal(err)
	}
	count := func() (n int) {
		be.List(ctx, "", func(string, int64) error { n++; return nil })
		return n
	}
	before := count()
	put(t, s, sl, datas[4])
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if after := count(); after != before {
		t.Fatalf("re-put after reopen: objects %d → %d", before, after)
	}
}
