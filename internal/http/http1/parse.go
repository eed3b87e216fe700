package http1

import (
	"bufio"
	"bytes"
	"io"
)

// UnderscoreAction is what to do with a header name containing '_'
// (Envoy's headers_with_underscores_action).
type UnderscoreAction uint8

const (
	AllowUnderscores  UnderscoreAction = iota // keep the header
	RejectUnderscores                         // reject the message with 400
	DropUnderscores                           // silently remove the header
)

// Limits bound what a peer may send.
type Limits struct {
	MaxHeaderBytes int // whole header block, start line included; default 60 KiB
	MaxHeaders     int // number of fields; default 100
	Underscores    UnderscoreAction
}

const (
	defaultMaxHeaderBytes = 60 << 10
	defaultMaxHeaders     = 100
	// maxChunkLine bounds a chunk-size line including extensions: anything
	// longer is an attempt to make us buffer or scan junk.
	maxChunkLine = 1024
	// maxChunkExtBytes bounds all chunk extensions of one body, so tiny
	// chunks with extensions cannot burn CPU indefinitely.
	maxChunkExtBytes = 16 << 10
)

func (l Limits) withDefaults() Limits {
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = defaultMaxHeaderBytes
	}
	if l.MaxHeaders <= 0 {
		l.MaxHeaders = defaultMaxHeaders
	}
	return l
}

// Character classes, indexed by byte.
var (
	tcharTab [256]bool // RFC 9110 token
	valueTab [256]bool // field-value octets: HTAB, SP, VCHAR, obs-text
	urlTab   [256]bool // request-target octets we accept: visible ASCII
	hostTab  [256]bool // Host / authority octets
)

func init() {
	for c := 'a'; c <= 'z'; c++ {
		tcharTab[c] = true
		tcharTab[c-'a'+'A'] = true
	}
	for c := '0'; c <= '9'; c++ {
		tcharTab[c] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		tcharTab[c] = true
	}
	valueTab['\t'] = true
	for c := 0x20; c < 0x7f; c++ {
		valueTab[c] = true
	}
	for c := 0x80; c < 0x100; c++ {
		valueTab[c] = true
	}
	for c := 0x21; c < 0x7f; c++ {
		urlTab[c] = true
	}
	for c := 0; c < 256; c++ {
		if tcharTab[c] && c != '|' && c != '^' && c != '`' && c != '#' {
			hostTab[c] = true
		}
	}
	for _, c := range "[]:@;=,()" {
		hostTab[c] = true
	}
}

// field is one header line as offsets into the header block.
type field struct {
	ns, ne, vs, ve int32
}

// readBlock reads a start line plus header fields (or a trailer block) up
// to and including the empty line, appending the raw bytes to dst[:0]. It
// insists on CRLF line ends. first means "a new message": a clean EOF before
// any byte is io.EOF rather than io.ErrUnexpectedEOF.
func readBlock(br *bufio.Reader, dst []byte, max int, first bool) ([]byte, error) {
	dst = dst[:0]
	ls := 0 // start of the current line in dst
	for {
		line, err := br.ReadSlice('\n')
		if len(dst)+len(line) > max {
			return dst, errTooLarge
		}
		dst = append(dst, line...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if err == io.EOF {
				if first && len(dst) == 0 {
					return dst, io.EOF
				}
				return dst, io.ErrUnexpectedEOF
			}
			return dst, err
		}
		n := len(dst) - ls
		if n < 2 || dst[len(dst)-2] != '\r' {
			return dst, errBareLF
		}
		if n == 2 {
			return dst, nil
		}
		ls = len(dst)
	}
}

// blockErr maps a readBlock failure to what callers return.
func blockErr(err error) error {
	switch err {
	case errTooLarge:
		return &ProtocolError{Status: 431, Details: detailHeadersTooLarge, Err: err}
	case errBareLF:
		return &ProtocolError{Status: 400, Details: detailCodecError, Err: err}
	}
	return err
}

// parseFields validates the field lines of block starting at off (the
// block ends with the empty line) and appends their offsets to fields.
// Names are lower-cased in place so that the block can then be converted to
// a string once.
func parseFields(block []byte, off int, lim *Limits, fields []field) ([]field, error) {
	count := 0
	for {
		nl := bytes.IndexByte(block[off:], '\n')
		if nl < 0 { // readBlock guarantees the final CRLF
			return fields, badRequest(detailCodecError, "unterminated header block")
		}
		end := off + nl - 1 // the '\r'
		if end == off {
			return fields, nil
		}
		if c := block[off]; c == ' ' || c == '\t' {
			return fields, badRequest(detailCodecError, "obsolete line folding")
		}
		count++
		if count > lim.MaxHeaders {
			return fields, &ProtocolError{Status: 431, Details: detailTooManyHeaders, Err: errTooManyHeaders}
		}
		ns := off
		i := off
		underscore := false
		for ; i < end; i++ {
			c := block[i]
			if !tcharTab[c] {
				break
			}
			if 'A' <= c && c <= 'Z' {
				block[i] = c + ('a' - 'A')
			} else if c == '_' {
				underscore = true
			}
		}
		if i == off || i == end || block[i] != ':' {
			return fields, badRequest(detailInvalidChars, "invalid header name")
		}
		ne := i
		i++
		for i < end && (block[i] == ' ' || block[i] == '\t') {
			i++
		}
		vs := i
		for ; i < end; i++ {
			if !valueTab[block[i]] {
				return fields, badRequest(detailInvalidChars, "invalid header value")
			}
		}
		ve := end
		for ve > vs && (block[ve-1] == ' ' || block[ve-1] == '\t') {
			ve--
		}
		off = end + 2
		if underscore {
			switch lim.Underscores {
			case RejectUnderscores:
				return fields, badRequest(detailUnderscore, "underscore in header name")
			case DropUnderscores:
				continue
			}
		}
		fields = append(fields, field{ns: int32(ns), ne: int32(ne), vs: int32(vs), ve: int32(ve)})
	}
}
