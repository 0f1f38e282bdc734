package ledger

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Checkpoint is the body of a C2SP tlog-checkpoint: origin, tree size, root
// hash, then extension lines. The first extension line is always
// "epoch <n>", the epoch of the newest entry at the time of signing; any
// further ones are kept verbatim.
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   Hash
	Epoch  uint64
	// Extra holds extension lines other than the epoch, kept verbatim so a
	// checkpoint written by a newer version still round-trips.
	Extra []string
}

const epochPrefix = "epoch "

// Marshal returns the note text of the checkpoint (every line ends in \n).
func (c Checkpoint) Marshal() []byte {
	var b bytes.Buffer
	b.Grow(len(c.Origin) + 80)
	b.WriteString(c.Origin)
	b.WriteByte('\n')
	b.WriteString(strconv.FormatUint(c.Size, 10))
	b.WriteByte('\n')
	b.WriteString(base64.StdEncoding.EncodeToString(c.Root[:]))
	b.WriteByte('\n')
	b.WriteString(epochPrefix)
	b.WriteString(strconv.FormatUint(c.Epoch, 10))
	b.WriteByte('\n')
	for _, e := range c.Extra {
		b.WriteString(e)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// ParseCheckpoint parses checkpoint note text (without signatures). It is
// strict: a size with leading zeros, a root of the wrong length, an empty or
// duplicated epoch line is an error naming the line.
func ParseCheckpoint(text []byte) (Checkpoint, error) {
	var c Checkpoint
	if len(text) == 0 || text[len(text)-1] != '\n' {
		return c, errors.New("checkpoint: text must end in a newline")
	}
	lines := strings.Split(string(text[:len(text)-1]), "\n")
	if len(lines) < 3 {
		return c, fmt.Errorf("checkpoint: %d lines, need at least origin, size and root", len(lines))
	}
	c.Origin = lines[0]
	if c.Origin == "" {
		return c, errors.New("checkpoint line 1 (origin): empty")
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil || strconv.FormatUint(size, 10) != lines[1] {
		return c, fmt.Errorf("checkpoint line 2 (size): %q is not a decimal size without leading zeros", lines[1])
	}
	c.Size = size
	// Go's decoder skips \r and \n inside its input; only the canonical
	// encoding of a 32-byte hash is a root line.
	root, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(root) != len(c.Root) || base64.StdEncoding.EncodeToString(root) != lines[2] {
		return c, fmt.Errorf("checkpoint line 3 (root): %q is not a base64 32-byte hash", lines[2])
	}
	copy(c.Root[:], root)
	// Chancery checkpoints carry the epoch as the first extension line;
	// requiring it there makes parsing the exact inverse of Marshal.
	if len(lines) < 4 {
		return c, errors.New("checkpoint line 4 (epoch): missing")
	}
	v, ok := strings.CutPrefix(lines[3], epochPrefix)
	e, err := strconv.ParseUint(v, 10, 64)
	if !ok || err != nil || strconv.FormatUint(e, 10) != v {
		return c, fmt.Errorf("checkpoint line 4 (epoch): %q is not \"epoch <decimal>\"", lines[3])
	}
	c.Epoch = e
	for i, l := range lines[4:] {
		if l == "" {
			return c, fmt.Errorf("checkpoint line %d: empty extension line", i+5)
		}
		if strings.HasPrefix(l, epochPrefix) {
			return c, fmt.Errorf("checkpoint line %d: second epoch line", i+5)
		}
		c.Extra = append(c.Extra, l)
	}
	return c, nil
}

// SignCheckpoint returns the checkpoint as a signed note.
func SignCheckpoint(c Checkpoint, signers ...note.Signer) ([]byte, error) {
	for _, s := range signers {
		if s.Name() != c.Origin {
			return nil, fmt.Errorf("sign checkpoint: key name %q differs from origin %q", s.Name(), c.Origin)
		}
	}
	return note.Sign(&note.Note{Text: string(c.Marshal())}, signers...)
}

// OpenCheckpoint verifies a signed checkpoint note against the given
// verifiers and parses it. At least one signature by a known key must
// verify, and every signature by a known key must verify; signatures by
// unknown keys (cosigners one does not know) are ignored.
func OpenCheckpoint(signed []byte, origin string, verifiers note.Verifiers) (Checkpoint, *note.Note, error) {
	n, err := note.Open(signed, verifiers)
	if err != nil {
		return Checkpoint{}, nil, fmt.Errorf("open checkpoint: %w", err)
	}
	c, err := ParseCheckpoint([]byte(n.Text))
	if err != nil {
		return Checkpoint{}, nil, err
	}
	if origin != "" && c.Origin != origin {
		return Checkpoint{}, nil, fmt.Errorf("checkpoint origin %q, expected %q", c.Origin, origin)
	}
	logSigned := false
	for _, s := range n.Sigs {
		if !isCosigner(verifiers, s) {
			if s.Name != c.Origin {
				return Checkpoint{}, nil, fmt.Errorf("checkpoint signed by %q, which is neither the log %q nor a cosigner", s.Name, c.Origin)
			}
			logSigned = true
		}
	}
	if !logSigned {
		return Checkpoint{}, nil, fmt.Errorf("checkpoint for %q: no signature by a known log key, only cosignatures", c.Origin)
	}
	return c, n, nil
}

func isCosigner(v note.Verifiers, s note.Signature) bool {
	ver, err := v.Verifier(s.Name, s.Hash)
	if err != nil {
		return false
	}
	_, ok := ver.(*CosignatureVerifier)
	return ok
}

// ParseSignedCheckpoint reads the checkpoint a signed note carries without
// opening it (no signature checked): for what is checked elsewhere, or
// only reported.
func ParseSignedCheckpoint(signed []byte) (Checkpoint, error) {
	text, err := SplitNote(signed)
	if err != nil {
		// As ParseCheckpoint's own errors do, say what was being read.
		return Checkpoint{}, fmt.Errorf("checkpoint: %w", err)
	}
	return ParseCheckpoint(text)
}

// SplitNote returns the text of a signed note without opening it (no
// signature checked): for tools that must say plainly that they could not
// check a signature.
func SplitNote(signed []byte) (text []byte, err error) {
	i := bytes.LastIndex(signed, []byte("\n\n"))
	if i < 0 {
		return nil, errors.New("signed note: no blank line before the signatures")
	}
	return signed[:i+1], nil
}
