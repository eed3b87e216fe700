package h2

import (
	"bytes"
	"testing"

	"golang.org/x/net/http2/hpack"
)

// hpackLimits are the decoder limits the fuzz target checks: a dynamic
// table of 4096 bytes (the HTTP/2 default) and 16 KiB strings.
const (
	hpackTable     = 4096
	hpackMaxString = 16 << 10
)

type decoded struct {
	fields []hpack.HeaderField
	err    error
}

func decodeBlocks(blocks [][]byte, split int) (out []decoded) {
	var cur []hpack.HeaderField
	d := hpack.NewDecoder(hpackTable, func(f hpack.HeaderField) { cur = append(cur, f) })
	d.SetMaxStringLength(hpackMaxString)
	for _, b := range blocks {
		cur = nil
		var err error
		if split > 0 && split < len(b) {
			// The same block arriving in two pieces (HEADERS then
			// CONTINUATION) must decode the same.
			if _, err = d.Write(b[:split]); err == nil {
				_, err = d.Write(b[split:])
			}
		} else {
			_, err = d.Write(b)
		}
		if err == nil {
			err = d.Close()
		}
		out = append(out, decoded{fields: cur, err: err})
		if err != nil {
			break // a decoding error is a connection error: the table is gone
		}
	}
	return out
}

// FuzzHPACK decodes a sequence of header blocks (separated by 0xff 0x00
// in the input) on one connection's decoder. Invariants: no panic; the
// same blocks split at another byte decode to the same fields or fail the
// same way; no string exceeds the limit; and the decoded fields, encoded
// again, decode back to themselves (values and sensitivity).
func FuzzHPACK(f *testing.F) {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for _, hf := range []hpack.HeaderField{{Name: ":status", Value: "200"}, {Name: "content-type", Value: "text/plain"}, {Name: "x-secret", Value: "s", Sensitive: true}} {
		enc.WriteField(hf)
	}
	first := bytes.Clone(buf.Bytes())
	buf.Reset()
	enc.WriteField(hpack.HeaderField{Name: "content-type", Value: "text/plain"}) // now indexed
	f.Add(append(append(first, 0xff, 0x00), buf.Bytes()...), uint8(3))
	for _, s := range []string{
		"\x88",                             // :status 200, static
		"\x3f\xe1\x1f",                     // table size update to 4096
		"\x3f\xe1\xff\x03",                 // table size update above the limit
		"\x20\x88",                         // size update to 0, then indexed
		"\x88\x20",                         // size update after a field: invalid
		"\xbe",                             // dynamic index not in the table
		"\x00",                             // truncated literal
		"\x40\x01a\x7f\xff\xff\xff\xff",    // huge value length
		"\x40\x81\xff\x01a",                // huffman with EOS
		"\x40\x83\xff\xff\xff\x01a",        // huffman padding too long
		"\x7f\x80\x80\x80\x80\x80\x80\x01", // integer overflow
		"\x10\x01a\x01b",                   // never-indexed
	} {
		f.Add([]byte(s), uint8(1))
	}
	f.Fuzz(func(t *testing.T, in []byte, split uint8) {
		blocks := bytes.Split(in, []byte{0xff, 0x00})
		whole := decodeBlocks(blocks, 0)
		parts := decodeBlocks(blocks, int(split))
		if len(whole) != len(parts) {
			t.Fatalf("%d blocks whole, %d split", len(whole), len(parts))
		}
		for i := range whole {
			if (whole[i].err == nil) != (parts[i].err == nil) {
				t.Fatalf("block %d: whole %v, split at %d %v", i, whole[i].err, split, parts[i].err)
			}
			if whole[i].err == nil && !sameFields(whole[i].fields, parts[i].fields) {
				t.Fatalf("block %d: whole %v, split %v", i, whole[i].fields, parts[i].fields)
			}
		}
		// Re-encode what decoded and decode it on a fresh pair.
		var out bytes.Buffer
		enc := hpack.NewEncoder(&out)
		var back []hpack.HeaderField
		dec := hpack.NewDecoder(hpackTable, func(f hpack.HeaderField) { back = append(back, f) })
		dec.SetMaxStringLength(hpackMaxString)
		for i, d := range whole {
			for _, hf := range d.fields {
				if len(hf.Name) > hpackMaxString || len(hf.Value) > hpackMaxString {
					t.Fatalf("block %d: string of %d bytes passed the limit", i, max(len(hf.Name), len(hf.Value)))
				}
			}
			if d.err != nil {
				continue
			}
			out.Reset()
			back = nil
			for _, hf := range d.fields {
				enc.WriteField(hf)
			}
			if _, err := dec.Write(out.Bytes()); err != nil {
				t.Fatalf("block %d: re-encoded fields do not decode: %v", i, err)
			}
			if !sameFields(d.fields, back) {
				t.Fatalf("block %d: %v re-encoded decodes to %v", i, d.fields, back)
			}
		}
	})
}

func sameFields(a, b []hpack.HeaderField) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || a[i].Value != b[i].Value || a[i].Sensitive != b[i].Sensitive {
			return false
		}
	}
	return true
}
