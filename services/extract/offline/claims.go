package offline

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"

	"github.com/fxamacker/cbor/v2"
)

// Claims are what an extract certifies: that version Version of record
// Record in registry Registry of Guest, written at ledger index
// RecordIndex, held the Fields given, as the site Site said at IssuedAt in
// epoch Epoch. Integer map keys keep the QR code small.
type Claims struct {
	Guest       string `cbor:"1,keyasint"`
	Registry    string `cbor:"2,keyasint"`
	Record      string `cbor:"3,keyasint"`
	Version     uint64 `cbor:"4,keyasint"`
	RecordIndex uint64 `cbor:"5,keyasint"`
	// Fields is the certified subset of the record: names to JSON-like
	// values (text, integers, booleans, lists, maps with text keys).
	Fields map[string]any `cbor:"6,keyasint"`
	// IssuedAt is in Unix seconds; the act's ledger entry carries it as
	// its time, so the entry can be rebuilt from the extract alone.
	IssuedAt int64 `cbor:"7,keyasint"`
	// Epoch is the epoch the act was issued in, also the entry's epoch.
	Epoch uint64 `cbor:"8,keyasint"`
	// Site is the charter id of the issuing site.
	Site string `cbor:"9,keyasint"`
	// ID names the extract, unique per guest.
	ID string `cbor:"10,keyasint"`
}

// Core deterministic encoding (RFC 8949 section 4.2.1): map keys sorted,
// shortest forms, no indefinite lengths. Decoding refuses duplicate keys,
// unknown claim keys and indefinite lengths, and then demands that the
// bytes be exactly the deterministic encoding of what they decode to, so
// that one set of claims has one encoding only.
var (
	encMode = func() cbor.EncMode {
		m, err := cbor.CoreDetEncOptions().EncMode()
		if err != nil {
			panic(err)
		}
		return m
	}()
	// decMode reads the claims: no unknown key, no tag; maps in the
	// fields decode with text keys.
	decMode = decOptions(true, false)
	// strictMode reads the receipt's and statement's headers: labels the
	// structs do not name are refused.
	strictMode = decOptions(true, true)
	// frameMode reads the COSE framing: tags allowed (COSE_Sign1 is tag
	// 18).
	frameMode = decOptions(false, true)
)

// decOptions is the strict decoding every reader here shares: duplicate
// keys, indefinite lengths and deep nesting refused; unknown struct
// fields refused when unknown is set; tags allowed only when tags is.
func decOptions(unknown, tags bool) cbor.DecMode {
	o := cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		MaxNestedLevels:  16,
		MaxArrayElements: 4096,
		MaxMapPairs:      4096,
	}
	if unknown {
		o.ExtraReturnErrors = cbor.ExtraDecErrorUnknownField
	}
	if !tags {
		o.TagsMd = cbor.TagsForbidden
		o.DefaultMapType = reflect.TypeOf(map[string]any(nil))
	}
	m, err := o.DecMode()
	if err != nil {
		panic(err)
	}
	return m
}

// MarshalClaims encodes claims deterministically.
func MarshalClaims(c *Claims) ([]byte, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	b, err := encMode.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("extract claims: %w", err)
	}
	return b, nil
}

// ParseClaims decodes claims, refusing any encoding but the deterministic
// one and any claim missing or out of place.
func ParseClaims(b []byte) (*Claims, error) {
	var c Claims
	if err := decMode.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("extract claims: %w", err)
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	again, err := encMode.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("extract claims: %w", err)
	}
	if !bytes.Equal(again, b) {
		return nil, errors.New("extract claims: not in the deterministic CBOR encoding")
	}
	return &c, nil
}

func (c *Claims) check() error {
	switch {
	case c.Guest == "":
		return errors.New("extract claims: guest (key 1) is empty")
	case c.Registry == "":
		return errors.New("extract claims: registry (key 2) is empty")
	case c.Record == "":
		return errors.New("extract claims: record (key 3) is empty")
	case c.Version == 0:
		return errors.New("extract claims: version (key 4) is zero")
	case len(c.Fields) == 0:
		return errors.New("extract claims: fields (key 6) certify nothing")
	case c.IssuedAt <= 0:
		return fmt.Errorf("extract claims: issued-at (key 7) %d is not after 1970", c.IssuedAt)
	case c.IssuedAt > 1<<40:
		return fmt.Errorf("extract claims: issued-at (key 7) %d is out of range", c.IssuedAt)
	case c.Site == "":
		return errors.New("extract claims: site (key 9) is empty")
	case c.ID == "":
		return errors.New("extract claims: id (key 10) is empty")
	}
	return nil
}
