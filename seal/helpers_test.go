package seal

import (
	"testing"
)

func newRoot(t testing.TB) *RootKey {
	t.Helper()
	r, err := NewRootKey()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func newKeyring(t testing.TB, guest string) *Keyring {
	t.Helper()
	r := newRoot(t)
	defer r.Wipe()
	return NewKeyring(guest, r)
}

func ad(registry string) RecordAD {
	return RecordAD{Guest: "demo-republic", Registry: registry, BlindID: [32]byte{1, 2, 3}, Version: 7, Epoch: 3}
}

func isZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}
