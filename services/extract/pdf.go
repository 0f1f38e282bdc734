package extract

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"codeberg.org/go-pdf/fpdf"

	"github.com/chancery-gov/chancery/services/extract/offline"
)

// AttachmentName is the name of the file embedded in an extract's PDF: the
// text the QR code holds ("CX1:" and Base45), which ReadPDF takes back
// out. Text rather than the COSE bytes: it compresses to a Huffman block
// in the PDF's own zlib stream, never to a stored one, which keeps that
// stream's one spelling checkable (offline.Inflate).
const AttachmentName = "extract.cx1.txt"

// PDF renders an extract as one A4 page: a human-readable summary, the QR
// code, and the extract itself embedded as a file, so that a verifier can
// check the PDF without reading the QR code from paper.
func PDF(e *Extract, text string, qr []byte) ([]byte, error) {
	b, err := writePDF(e, text, qr)
	if err != nil {
		return nil, err
	}
	// Hand out only a PDF its reader takes the extract back out of.
	if got, err := ReadPDF(b); err != nil || !bytes.Equal(got, e.COSE) {
		return nil, fmt.Errorf("extract %s: PDF: the embedded extract does not read back (%v)", e.Claims.ID, err)
	}
	return b, nil
}

// writePDF writes the PDF with text embedded, unchecked.
func writePDF(e *Extract, text string, qr []byte) ([]byte, error) {
	c := e.Claims
	pdf := fpdf.New("P", "mm", "A4", "")
	pdf.SetCreationDate(time.Unix(c.IssuedAt, 0).UTC())
	pdf.SetModificationDate(time.Unix(c.IssuedAt, 0).UTC())
	pdf.SetTitle("Certified extract "+c.ID, true)
	pdf.SetAttachments([]fpdf.Attachment{{Content: []byte(text), Filename: AttachmentName, Description: "certified extract: CX1: and Base45 of the zlib-compressed COSE_Sign1 with its COSE receipt"}})
	pdf.AddPage()
	tr := pdf.UnicodeTranslatorFromDescriptor("")
	pdf.SetFont("Helvetica", "B", 16)
	pdf.CellFormat(0, 10, tr("Certified extract of the "+c.Registry+" register"), "", 1, "L", false, 0, "")
	pdf.SetFont("Helvetica", "", 10)
	line := func(k, v string) {
		pdf.SetFont("Helvetica", "B", 10)
		pdf.CellFormat(45, 6, tr(k), "", 0, "L", false, 0, "")
		pdf.SetFont("Helvetica", "", 10)
		pdf.MultiCell(0, 6, tr(v), "", "L", false)
	}
	line("State", c.Guest)
	line("Record", fmt.Sprintf("%s, version %d (ledger entry %d)", c.Record, c.Version, c.RecordIndex))
	keys := make([]string, 0, len(c.Fields))
	for k := range c.Fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		line(k, fmt.Sprint(c.Fields[k]))
	}
	line("Issued", fmt.Sprintf("%s by site %s, epoch %d", time.Unix(c.IssuedAt, 0).UTC().Format(time.RFC3339), c.Site, c.Epoch))
	line("Extract id", c.ID)
	line("Ledger", fmt.Sprintf("act %d, proven against checkpoint %d", e.Act, e.Checkpoint))
	pdf.Ln(4)
	pdf.RegisterImageOptionsReader("qr", fpdf.ImageOptions{ImageType: "PNG"}, bytes.NewReader(qr))
	pdf.ImageOptions("qr", pdf.GetX(), pdf.GetY(), 90, 90, false, fpdf.ImageOptions{ImageType: "PNG"}, 0, "")
	pdf.SetY(pdf.GetY() + 94)
	pdf.SetFont("Helvetica", "", 8)
	pdf.MultiCell(0, 4, tr("Verify offline with the charter alone: chancery extract verify THIS.pdf --charter charter.yaml. "+
		"The QR code and the embedded file "+AttachmentName+" carry the same COSE_Sign1, signed with the state's extract key, "+
		"with a receipt proving its inclusion in the state's ledger, cosigned by the embassy sites."), "", "L", false)
	var b bytes.Buffer
	if err := pdf.Output(&b); err != nil {
		return nil, fmt.Errorf("extract %s: PDF: %w", c.ID, err)
	}
	return b.Bytes(), nil
}

const embeddedMarker = "<< /Type /EmbeddedFile /Length "

// ReadPDF takes the extract's text back out of a PDF written by PDF: the
// one embedded file stream, inflated, checked against the MD5 checksum
// and size the PDF declares for it. It reads only what PDF writes; it is not
// a general PDF parser.
func ReadPDF(b []byte) ([]byte, error) {
	i := bytes.Index(b, []byte(embeddedMarker))
	if i < 0 {
		return nil, errors.New("PDF: no embedded extract")
	}
	if bytes.Contains(b[i+1:], []byte(embeddedMarker)) {
		return nil, errors.New("PDF: more than one embedded file")
	}
	rest := b[i+len(embeddedMarker):]
	// "<n> /Filter /FlateDecode /Params << /CheckSum <hex> /Size <m> >> >>\n\nstream\n"
	head, body, ok := bytes.Cut(rest, []byte(">> >>\n"))
	if ok {
		body, ok = bytes.CutPrefix(body, []byte("\nstream\n"))
	}
	if !ok || len(head) > 200 {
		return nil, errors.New("PDF: embedded file header not as written")
	}
	f := strings.Fields(string(head))
	if len(f) != 9 || f[1] != "/Filter" || f[2] != "/FlateDecode" || f[3] != "/Params" || f[4] != "<<" || f[5] != "/CheckSum" || f[7] != "/Size" {
		return nil, fmt.Errorf("PDF: embedded file header %q not as written", head)
	}
	n, err1 := strconv.Atoi(f[0])
	size, err2 := strconv.Atoi(f[8])
	sum, err3 := hex.DecodeString(strings.Trim(f[6], "<>"))
	if err1 != nil || err2 != nil || err3 != nil || n < 0 || n > len(body) || size < 0 || size > offline.MaxExtractSize || len(sum) != md5.Size {
		return nil, fmt.Errorf("PDF: embedded file header %q not as written", head)
	}
	if !bytes.HasPrefix(body[n:], []byte("\nendstream")) {
		return nil, errors.New("PDF: embedded file stream not of its declared length")
	}
	msg, err := offline.Inflate(body[:n], offline.ZlibSpeed)
	if err != nil {
		return nil, fmt.Errorf("PDF: embedded file: %w", err)
	}
	if len(msg) != size {
		return nil, fmt.Errorf("PDF: embedded file of %d bytes, declared %d", len(msg), size)
	}
	if got := md5.Sum(msg); !bytes.Equal(got[:], sum) {
		return nil, errors.New("PDF: embedded file does not match its declared checksum")
	}
	return offline.DecodeText(string(msg))
}
