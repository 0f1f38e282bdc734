package padme

import (
	"bytes"
	"testing"
)

// TestFinishBody: a payload padded by Finish has exactly its Padmé length
// and gives its body back; one byte more or less, a non-zero pad byte or
// a length field past the end is refused, so a body has one encoding.
func TestFinishBody(t *testing.T) {
	for _, n := range []int{0, 1, 7, 100, 1000, 70000} {
		body := bytes.Repeat([]byte{'b'}, n)
		p := Finish(append([]byte{0xee, 0, 0, 0, 0}, body...), 1)
		if len(p) != Len(5+n) || p[0] != 0xee {
			t.Fatalf("%d-byte body: payload of %d bytes, want %d", n, len(p), Len(5+n))
		}
		got, err := Body(p, 1)
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("%d-byte body: %v", n, err)
		}
		if _, err := Body(append(p, 0), 1); err == nil {
			t.Errorf("%d-byte body: a payload one byte long accepted", n)
		}
		if len(p) > 5+n {
			bad := bytes.Clone(p)
			bad[len(bad)-1] = 1
			if _, err := Body(bad, 1); err == nil {
				t.Errorf("%d-byte body: non-zero padding accepted", n)
			}
			if _, err := Body(p[:len(p)-1], 1); err == nil {
				t.Errorf("%d-byte body: a payload one byte short accepted", n)
			}
		}
	}
	if _, err := Body([]byte{0, 0, 0, 9}, 0); err == nil {
		t.Error("a length past the end accepted")
	}
	if _, err := Body([]byte{0, 0}, 0); err == nil {
		t.Error("a payload shorter than its header accepted")
	}
}
