package extract_test

import (
	"bytes"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/chancery-gov/chancery/services/extract"
	"github.com/chancery-gov/chancery/services/extract/offline"
)

const base45Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"

// altered is one extract in its three carried forms.
type altered struct {
	cose   []byte
	text   string
	pdf    []byte
	png    []byte
	claims *offline.Claims
	v      *offline.Verifier
}

func newAltered(t *testing.T) *altered {
	f := newFixture(t)
	home := f.openLog(t, "home")
	e := issueOne(t, f.issuer(t, "home", home, 1, "embassy-north", "embassy-south"), 0)
	text, err := offline.EncodeText(e.COSE)
	if err != nil {
		t.Fatal(err)
	}
	png, err := extract.QRPNG(text)
	if err != nil {
		t.Fatal(err)
	}
	pdf, err := extract.PDF(e, text, png)
	if err != nil {
		t.Fatal(err)
	}
	a := &altered{cose: e.COSE, text: text, pdf: pdf, png: png, claims: e.Claims, v: f.verifier(t)}
	if _, err := a.v.Verify(a.cose); err != nil {
		t.Fatal(err)
	}
	return a
}

// accepts says whether the verifier accepts what Read takes out of in.
func (a *altered) accepts(in []byte) bool {
	msg, _, err := extract.Read(in)
	if err != nil {
		return false
	}
	_, err = a.v.Verify(msg)
	return err == nil
}

// TestEverySingleByteChangeRefused: every change of one byte of the COSE
// (three flips at every position, and random values), of one character of
// the QR text (every other character of the alphabet at every position,
// and one outside it), and of one character of the extract a PDF embeds is
// refused offline.
func TestEverySingleByteChangeRefused(t *testing.T) {
	a := newAltered(t)
	t.Run("COSE", func(t *testing.T) {
		for i := range a.cose {
			for _, d := range []byte{0x01, 0x80, 0xff} {
				b := bytes.Clone(a.cose)
				b[i] ^= d
				if _, err := a.v.Verify(b); err == nil {
					t.Fatalf("byte %d xor %#x accepted", i, d)
				}
			}
		}
		rapid.Check(t, func(t *rapid.T) {
			i := rapid.IntRange(0, len(a.cose)-1).Draw(t, "i")
			v := byte(rapid.IntRange(0, 255).Filter(func(v int) bool { return byte(v) != a.cose[i] }).Draw(t, "v"))
			b := bytes.Clone(a.cose)
			b[i] = v
			if _, err := a.v.Verify(b); err == nil {
				t.Fatalf("byte %d set to %#x accepted", i, v)
			}
		})
	})
	t.Run("Base45 text", func(t *testing.T) {
		// A changed character must be refused, or leave the extract read
		// out byte for byte the one issued: the text's zlib stream is
		// deflate, which has more than one spelling of the same bytes (a
		// back-reference to another earlier copy of the same string, an
		// unused code length), so a very few changes (about one extract
		// in 150 has one) give another spelling of the same signed
		// extract, not another extract.
		same := 0
		for i := len(offline.TextPrefix); i < len(a.text); i++ {
			for _, c := range []byte(base45Alphabet + "a") {
				if c == a.text[i] {
					continue
				}
				b := []byte(a.text)
				b[i] = c
				if _, err := a.v.VerifyText(string(b)); err == nil {
					if msg, err := offline.DecodeText(string(b)); err == nil && bytes.Equal(msg, a.cose) {
						same++
						continue
					}
					t.Fatalf("character %d set to %q: another extract accepted", i, c)
				}
			}
		}
		if total := (len(a.text) - len(offline.TextPrefix)) * len(base45Alphabet); same > total/1000 {
			t.Fatalf("%d of %d changed characters gave the same extract: the text is not strict", same, total)
		}
		for i := 0; i < len(offline.TextPrefix); i++ {
			b := []byte(a.text)
			b[i] ^= 0x20
			if _, err := a.v.VerifyText(string(b)); err == nil {
				t.Fatalf("prefix character %d altered accepted", i)
			}
		}
	})
	t.Run("PDF embedded extract", func(t *testing.T) {
		// Every character of the extract embedded in the PDF, changed to
		// the next of the alphabet, in a PDF written around it.
		e := &extract.Extract{COSE: a.cose, Claims: a.claims}
		for i := len(offline.TextPrefix); i < len(a.text); i++ {
			b := []byte(a.text)
			b[i] = base45Alphabet[(strings.IndexByte(base45Alphabet, b[i])+1)%len(base45Alphabet)]
			pdf, err := extract.WritePDF(e, string(b), a.png)
			if err != nil {
				t.Fatal(err)
			}
			if a.accepts(pdf) {
				t.Fatalf("embedded character %d changed: accepted", i)
			}
		}
	})
	t.Run("PDF container", func(t *testing.T) {
		// A change of the PDF's own zlib stream around the extract is
		// refused, or leaves the extract read out byte for byte the one
		// issued: deflate has spellings a decoder cannot tell apart
		// (unused code lengths in a block header), and the extract, not
		// the compression around it, is what is verified.
		start := bytes.Index(a.pdf, []byte("<< /Type /EmbeddedFile"))
		end := bytes.Index(a.pdf[start:], []byte("endstream"))
		if start < 0 || end < 0 {
			t.Fatal("no embedded file in the PDF")
		}
		for i := start; i < start+end; i++ {
			for _, d := range []byte{0x01, 0x80} {
				b := bytes.Clone(a.pdf)
				b[i] ^= d
				if msg, _, err := extract.Read(b); err == nil && !bytes.Equal(msg, a.cose) {
					t.Fatalf("PDF byte %d (embedded object offset %d) xor %#x: another extract read out", i, i-start, d)
				}
			}
		}
		if !a.accepts(a.pdf) {
			t.Fatal("the unaltered PDF is refused")
		}
	})
}
