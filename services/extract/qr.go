package extract

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	_ "image/png" // ReadQRPNG decodes PNG
	"math/bits"
	"sync"

	"github.com/makiuchi-d/gozxing"
	gzqr "github.com/makiuchi-d/gozxing/qrcode"
	"github.com/makiuchi-d/gozxing/qrcode/decoder"
	"github.com/makiuchi-d/gozxing/qrcode/encoder"
)

// QR codes. The served encoders take 6 to 8 ms of CPU for the version-24
// code an extract needs (yeqown/go-qrcode v2.3.0 7.3 ms, skip2/go-qrcode
// 7.9 ms, gozxing 6.2 ms; docs/benchmarks.md), which caps issuance near
// 300 extracts a second on two cores. Most of that is Reed-Solomon coding
// done with a polynomial object per block and the mask search's
// allocations. So the data codewords and their error correction are made
// here (alphanumeric mode, level M, table-driven GF(256)), gozxing, whose
// version tables and module placement are exported, places them under one
// fixed mask (qrMask), and the PNG is written as 1-bit rows directly.

// qrMask is the data mask of every extract's QR code. ISO/IEC 18004
// section 7.8.2 has the encoder score the eight masks and keep the least
// penalised; that search costs eight placements and four penalty rules
// each, two thirds of the code's CPU time. The data here is zlib output,
// close to random, on which the masks' penalties differ by a few per
// cent, and decoders read the mask from the format information: one fixed
// mask gives codes every reader reads (TestHomeAndEmbassy reads them back
// with gozxing's decoder) at a third of the cost.
const qrMask = 2

// QR image geometry: 4 pixels a module and the 4-module quiet zone the
// QR standard asks for.
const (
	qrScale = 4 // the row builder in png sets a nibble a module
	qrQuiet = 4 // even, so the quiet zone is whole bytes
)

// qrAlphanumeric is the QR alphanumeric set in value order; it is also
// Base45's alphabet, which is why the text fits this mode.
const qrAlphanumeric = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"

// QRPNG renders the text of an extract (offline.EncodeText) as a QR code
// in alphanumeric mode, error correction level M, as a 1-bit PNG.
func QRPNG(text string) ([]byte, error) {
	var q QREncoder
	return q.PNG(text)
}

// QREncoder is QRPNG for many extracts: it reuses its PNG compressors
// (allocating and clearing one costs more than the compression). Its zero
// value is ready; it is safe for concurrent use.
type QREncoder struct {
	pool sync.Pool // *zlib.Writer

	mu      sync.Mutex
	layouts map[int]*qrLayout // by version
}

// PNG is QRPNG.
func (q *QREncoder) PNG(text string) ([]byte, error) {
	m, err := q.qrMatrix(text)
	if err != nil {
		return nil, err
	}
	return q.png(m.GetArray()), nil
}

// qrPNG writes the modules as a 1-bit grayscale PNG (0 black, 1 white),
// qrScale pixels a module inside a qrQuiet-module white border: rows of
// bits built directly, where image/png would ask each pixel its colour.
func (q *QREncoder) png(mods [][]int8) []byte {
	n := (len(mods) + 2*qrQuiet) * qrScale
	stride := (n + 7) / 8
	raw := make([]byte, 0, (stride+1)*n)
	row := make([]byte, stride)
	prev := make([]byte, stride) // the row above, for the filter
	zero := make([]byte, stride)
	for y := 0; y < n; y += qrScale {
		for i := range row {
			row[i] = 0xff
		}
		if my := y/qrScale - qrQuiet; my >= 0 && my < len(mods) {
			// Four pixels a module: each module is a nibble of the row,
			// and the quiet zone is a whole number of bytes.
			for mx, v := range mods[my] {
				if v == 1 {
					row[qrQuiet/2+mx/2] &^= 0xf0 >> uint(4*(mx%2))
				}
			}
		}
		// Filter "Up" (PNG section 9.2): each module row is qrScale
		// identical pixel rows, of which all but the first become zeros,
		// runs that zlib's fastest level turns into a few back-references
		// (a 1.7 KB PNG, and faster than Huffman-only coding, which codes
		// every zero).
		raw = append(raw, 2)
		for i := range row {
			raw = append(raw, row[i]-prev[i])
		}
		for range qrScale - 1 {
			raw = append(raw, 2)
			raw = append(raw, zero...)
		}
		prev, row = row, prev
	}
	var z bytes.Buffer
	zw, _ := q.pool.Get().(*zlib.Writer)
	if zw == nil {
		zw, _ = zlib.NewWriterLevel(&z, zlib.BestSpeed)
	} else {
		zw.Reset(&z)
	}
	_, _ = zw.Write(raw) // a bytes.Buffer does not fail
	_ = zw.Close()
	q.pool.Put(zw)
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], uint32(n))
	binary.BigEndian.PutUint32(ihdr[4:], uint32(n))
	ihdr[8], ihdr[9] = 1, 0 // bit depth 1, grayscale
	pngChunk(&b, "IHDR", ihdr)
	pngChunk(&b, "IDAT", z.Bytes())
	pngChunk(&b, "IEND", nil)
	return b.Bytes()
}

func pngChunk(b *bytes.Buffer, typ string, data []byte) {
	var hdr [8]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(len(data)))
	copy(hdr[4:], typ)
	b.Write(hdr[:])
	b.Write(data)
	crc := crc32.NewIEEE()
	crc.Write(hdr[4:])
	crc.Write(data)
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], crc.Sum32())
	b.Write(sum[:])
}

// qrMatrix encodes text as a QR code at level M in the smallest version
// that holds it, with the mask of least penalty.
func (q *QREncoder) qrMatrix(text string) (*encoder.ByteMatrix, error) {
	vals := make([]byte, len(text))
	for i := 0; i < len(text); i++ {
		j := bytes.IndexByte([]byte(qrAlphanumeric), text[i])
		if j < 0 {
			return nil, fmt.Errorf("QR code: character %q at %d is not in the alphanumeric set", text[i], i)
		}
		vals[i] = byte(j)
	}
	nbits := 11*(len(text)/2) + 6*(len(text)%2)
	var (
		ver      *decoder.Version
		ecb      *decoder.ECBlocks
		capacity int
	)
	for v := 1; v <= 40; v++ {
		vv, err := decoder.Version_GetVersionForNumber(v)
		if err != nil {
			return nil, err
		}
		e := vv.GetECBlocksForLevel(decoder.ErrorCorrectionLevel_M)
		c := vv.GetTotalCodewords() - e.GetTotalECCodewords()
		if 4+countBits(v)+nbits <= 8*c {
			ver, ecb, capacity = vv, e, c
			break
		}
	}
	if ver == nil {
		return nil, fmt.Errorf("QR code: %d characters do not fit a version-40 code at level M", len(text))
	}
	// Data codewords: mode 0010, count, pairs in 11 bits, a last single
	// in 6, terminator, zero bits to a byte, then pad bytes EC 11.
	w := bitWriter{buf: make([]byte, 0, capacity)}
	w.put(0b0010, 4)
	w.put(uint32(len(text)), countBits(ver.GetVersionNumber()))
	for i := 0; i+1 < len(vals); i += 2 {
		w.put(uint32(vals[i])*45+uint32(vals[i+1]), 11)
	}
	if len(vals)%2 == 1 {
		w.put(uint32(vals[len(vals)-1]), 6)
	}
	w.put(0, min(4, 8*capacity-w.n))
	w.align()
	for i := 0; len(w.buf) < capacity; i++ {
		w.buf = append(w.buf, [2]byte{0xec, 0x11}[i%2])
	}
	data := w.buf

	// Blocks, their error correction, interleaved.
	nec := ecb.GetECCodewordsPerBlock()
	gen := rsGenerator(nec)
	var blocks, ecs [][]byte
	off := 0
	for _, g := range ecb.GetECBlocks() {
		for range g.GetCount() {
			d := data[off : off+g.GetDataCodewords()]
			off += len(d)
			blocks = append(blocks, d)
			ecs = append(ecs, rsEncode(d, gen))
		}
	}
	if off != len(data) {
		return nil, errors.New("QR code: block structure does not cover the data")
	}
	// Interleave: the i-th data codeword of every block in turn, then the
	// same for the error correction codewords (ISO/IEC 18004 7.6).
	seq := make([]byte, 0, ver.GetTotalCodewords())
	for _, bs := range [][][]byte{blocks, ecs} {
		longest := 0
		for _, b := range bs {
			longest = max(longest, len(b))
		}
		for i := range longest {
			for _, b := range bs {
				if i < len(b) {
					seq = append(seq, b[i])
				}
			}
		}
	}
	dim := ver.GetDimensionForVersion()
	lay, err := q.layoutFor(ver)
	if err != nil {
		return nil, err
	}
	if 8*len(seq) > len(lay.order) {
		return nil, fmt.Errorf("QR code: %d codewords do not fit the %d data modules of version %d", len(seq), len(lay.order), ver.GetVersionNumber())
	}
	m := encoder.NewByteMatrix(dim, dim)
	rows := m.GetArray()
	for y := range rows {
		copy(rows[y], lay.blank[y*dim:(y+1)*dim])
	}
	// The template holds every data module masked over a zero bit; a one
	// bit flips its module (mask XOR bit).
	for i, c := range seq {
		for c != 0 {
			j := bits.LeadingZeros8(c)
			p := lay.order[8*i+j]
			rows[p/int32(dim)][p%int32(dim)] ^= 1
			c &^= 0x80 >> uint(j)
		}
	}
	return m, nil
}

// qrLayout is what every code of one version shares under qrMask: the
// modules with all data bits zero (finder, timing and alignment patterns,
// format and version information, the mask over the data area), and the
// data modules' positions (y*dim+x) in the order the bit stream fills them.
type qrLayout struct {
	blank []int8
	order []int32
}

// layoutFor returns the version's layout, made once per encoder. gozxing
// builds the code twice, with all data bits zero and all one: the modules
// that differ are the data modules, so the function patterns and format
// information come from gozxing's own tables and placement.
func (q *QREncoder) layoutFor(ver *decoder.Version) (*qrLayout, error) {
	v := ver.GetVersionNumber()
	q.mu.Lock()
	defer q.mu.Unlock()
	if lay := q.layouts[v]; lay != nil {
		return lay, nil
	}
	dim := ver.GetDimensionForVersion()
	n := 8 * ver.GetTotalCodewords()
	build := func(one bool) ([][]int8, error) {
		b := gozxing.NewBitArray(n)
		if one {
			for i := range n {
				b.Set(i)
			}
		}
		m := encoder.NewByteMatrix(dim, dim)
		if err := encoder.MatrixUtil_buildMatrix(b, decoder.ErrorCorrectionLevel_M, ver, qrMask, m); err != nil {
			return nil, fmt.Errorf("QR code: version %d: %w", v, err)
		}
		return m.GetArray(), nil
	}
	zero, err := build(false)
	if err != nil {
		return nil, err
	}
	ones, err := build(true)
	if err != nil {
		return nil, err
	}
	lay := &qrLayout{blank: make([]int8, 0, dim*dim)}
	for _, row := range zero {
		lay.blank = append(lay.blank, row...)
	}
	// The placement order of ISO/IEC 18004 7.7.3: two-module columns from
	// the right, upwards then downwards, skipping the vertical timing
	// pattern's column 6.
	up := true
	for x := dim - 1; x > 0; x -= 2 {
		if x == 6 {
			x--
		}
		for k := range dim {
			y := k
			if up {
				y = dim - 1 - k
			}
			for _, xx := range []int{x, x - 1} {
				if zero[y][xx] != ones[y][xx] {
					lay.order = append(lay.order, int32(y*dim+xx))
				}
			}
		}
		up = !up
	}
	if len(lay.order) != n {
		return nil, fmt.Errorf("QR code: version %d has %d data modules, want %d", v, len(lay.order), n)
	}
	if q.layouts == nil {
		q.layouts = make(map[int]*qrLayout)
	}
	q.layouts[v] = lay
	return lay, nil
}

// countBits is the width of the alphanumeric character count.
func countBits(version int) int {
	switch {
	case version <= 9:
		return 9
	case version <= 26:
		return 11
	default:
		return 13
	}
}

type bitWriter struct {
	buf []byte
	n   int // bits written
}

func (w *bitWriter) put(v uint32, bits int) {
	for i := bits - 1; i >= 0; i-- {
		if w.n%8 == 0 {
			w.buf = append(w.buf, 0)
		}
		if v>>uint(i)&1 == 1 {
			w.buf[len(w.buf)-1] |= 0x80 >> uint(w.n%8)
		}
		w.n++
	}
}

func (w *bitWriter) align() { w.n = 8 * len(w.buf) }

// GF(256) with the QR polynomial x^8+x^4+x^3+x^2+1 (0x11d), generator 2.
var gfExp, gfLog = func() (exp [512]byte, log [256]byte) {
	x := 1
	for i := range 255 {
		exp[i] = byte(x)
		log[x] = byte(i)
		x <<= 1
		if x&0x100 != 0 {
			x ^= 0x11d
		}
	}
	for i := 255; i < 512; i++ {
		exp[i] = exp[i-255]
	}
	return exp, log
}()

func gfMul(a, b byte) byte {
	if a == 0 || b == 0 {
		return 0
	}
	return gfExp[int(gfLog[a])+int(gfLog[b])]
}

// rsGenerator is the product of (x - 2^i) for i < n, highest degree
// first, leading 1 left out.
func rsGenerator(n int) []byte {
	g := []byte{1}
	for i := range n {
		next := make([]byte, len(g)+1)
		for j, c := range g {
			next[j] ^= c
			next[j+1] ^= gfMul(c, gfExp[i])
		}
		g = next
	}
	return g[1:]
}

// rsEncode returns the error correction codewords of data: the remainder
// of data(x)·x^n divided by the generator, by the shift register.
func rsEncode(data, gen []byte) []byte {
	rem := make([]byte, len(gen))
	for _, d := range data {
		f := d ^ rem[0]
		copy(rem, rem[1:])
		rem[len(rem)-1] = 0
		if f != 0 {
			lf := int(gfLog[f])
			for j, g := range gen {
				if g != 0 {
					rem[j] ^= gfExp[lf+int(gfLog[g])]
				}
			}
		}
	}
	return rem
}

// ReadQRPNG decodes the text of the QR code in a PNG (or any image the
// standard library decodes).
func ReadQRPNG(b []byte) (string, error) {
	img, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		return "", fmt.Errorf("QR image: %w", err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		return "", fmt.Errorf("QR image: %w", err)
	}
	res, err := gzqr.NewQRCodeReader().Decode(bmp, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_PURE_BARCODE: true})
	if err != nil {
		return "", fmt.Errorf("QR image: no QR code read: %w", err)
	}
	return res.GetText(), nil
}
