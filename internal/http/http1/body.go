package http1

import (
	"bufio"
	"bytes"
	"errors"
	"io"

	"github.com/legate-proxy/legate/internal/http/message"
)

type bodyKind uint8

const (
	bodyNone    bodyKind = iota
	bodyFixed            // content-length
	bodyChunked          // transfer-encoding: chunked
	bodyClose            // response delimited by connection close
)

type chunkState uint8

const (
	csSize chunkState = iota
	csData
	csCRLF
	csTrailer
)

// body is the message.Body of the current message on a connection. It lives
// inside the connection so a request costs no allocation for it.
type body struct {
	br       *bufio.Reader
	kind     bodyKind
	cs       chunkState
	done     bool
	remain   int64 // fixed: bytes left; chunked: bytes left in this chunk
	extBytes int
	err      error
	trailers message.Headers
	lim      *Limits
	bufs     *connBufs   // scratch for trailer blocks
	sc       *ServerConn // for 100-continue; nil on the client side
	upstream bool        // a response body: its framing errors are 502s
}

var errChunkCRLF = errors.New("chunk data not followed by CRLF")

func (b *body) reset(kind bodyKind, remain int64) {
	b.kind, b.remain, b.cs, b.extBytes = kind, remain, csSize, 0
	b.done = kind == bodyNone
	b.err, b.trailers = nil, nil
}

// Trailers returns the trailer fields of a chunked body once Read has
// returned io.EOF; nil when there were none.
func (b *body) Trailers() message.Headers { return b.trailers }

// Read returns body bytes. The final bytes may come with io.EOF.
func (b *body) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.done {
		return 0, io.EOF
	}
	if b.sc != nil && b.sc.cont.Load() == contPending {
		if err := b.sc.sendContinue(); err != nil {
			b.err = err
			return 0, err
		}
	}
	if len(p) == 0 {
		return 0, nil
	}
	switch b.kind {
	case bodyFixed:
		if int64(len(p)) > b.remain {
			p = p[:b.remain]
		}
		n, err := b.br.Read(p)
		b.remain -= int64(n)
		if b.remain == 0 {
			b.done = true
			return n, io.EOF
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			b.err = err
		}
		return n, err
	case bodyClose:
		n, err := b.br.Read(p)
		if err == io.EOF {
			b.done = true
		} else if err != nil {
			b.err = err
		}
		return n, err
	}
	n, err := b.readChunked(p)
	if err != nil && err != io.EOF {
		if pe, ok := err.(*ProtocolError); ok && b.upstream {
			// An upstream's malformed body is the proxy's 502, like a
			// malformed response header (ClientConn.ReadResponse).
			pe.Status = 502
		}
		b.err = err
	}
	return n, err
}

// readChunked decodes as much as it can without blocking once it has data
// in hand, so a streaming peer is never delayed by our framing.
func (b *body) readChunked(p []byte) (int, error) {
	n := 0
	for {
		switch b.cs {
		case csSize:
			if n > 0 && b.br.Buffered() == 0 {
				return n, nil
			}
			size, err := b.readChunkSize()
			if err != nil {
				return n, err
			}
			if size == 0 {
				b.cs = csTrailer
			} else {
				b.remain, b.cs = size, csData
			}
		case csData:
			if n == len(p) {
				return n, nil
			}
			want := p[n:]
			if int64(len(want)) > b.remain {
				want = want[:b.remain]
			}
			m, err := b.br.Read(want)
			n += m
			b.remain -= int64(m)
			if err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return n, err
			}
			if b.remain > 0 {
				return n, nil
			}
			b.cs = csCRLF
		case csCRLF:
			if n > 0 && b.br.Buffered() < 2 {
				return n, nil
			}
			c1, err := b.br.ReadByte()
			if err == nil {
				var c2 byte
				if c2, err = b.br.ReadByte(); err == nil && (c1 != '\r' || c2 != '\n') {
					return n, &ProtocolError{Status: 400, Details: detailCodecError, Err: errChunkCRLF}
				}
			}
			if err != nil {
				return n, eofUnexpected(err)
			}
			b.cs = csSize
		case csTrailer:
			if n > 0 && b.br.Buffered() == 0 {
				return n, nil
			}
			block, err := readBlock(b.br, b.bufs.block, b.lim.MaxHeaderBytes, false)
			b.bufs.block = block
			if err != nil {
				return n, blockErr(err)
			}
			h, fields, err := parseTrailers(block, b.lim, b.bufs.fields)
			b.bufs.fields = fields
			if err != nil {
				return n, err
			}
			b.trailers, b.done = h, true
			return n, io.EOF
		}
	}
}

func eofUnexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

var hexVal = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = int8(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = int8(c - 'a' + 10)
		t[c-'a'+'A'] = int8(c - 'a' + 10)
	}
	return t
}()

func chunkErr(msg string) error { return badRequest(detailCodecError, msg) }

// readChunkSize reads "1*HEXDIG *(;name[=value]) CRLF". Whitespace is not
// accepted anywhere on the line: lenient parsing of it is a classic
// request-smuggling vector.
func (b *body) readChunkSize() (int64, error) {
	line, err := b.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull || len(line) > maxChunkLine {
		return 0, chunkErr("chunk-size line too long")
	}
	if err != nil {
		return 0, eofUnexpected(err)
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return 0, chunkErr("chunk-size line not terminated by CRLF")
	}
	line = line[:len(line)-2]
	var size int64
	i := 0
	for ; i < len(line); i++ {
		v := hexVal[line[i]]
		if v < 0 {
			break
		}
		if i >= 15 {
			return 0, chunkErr("chunk size too large")
		}
		size = size<<4 | int64(v)
	}
	if i == 0 {
		return 0, chunkErr("invalid chunk size")
	}
	if i < len(line) {
		b.extBytes += len(line) - i
		if b.extBytes > maxChunkExtBytes {
			return 0, chunkErr("too many chunk extension bytes")
		}
		if !validChunkExt(line[i:]) {
			return 0, chunkErr("invalid chunk extension")
		}
	}
	return size, nil
}

func validChunkExt(e []byte) bool {
	i := 0
	for i < len(e) {
		if e[i] != ';' {
			return false
		}
		i++
		s := i
		for i < len(e) && tcharTab[e[i]] {
			i++
		}
		if i == s {
			return false
		}
		if i == len(e) || e[i] == ';' {
			continue
		}
		if e[i] != '=' {
			return false
		}
		i++
		if i < len(e) && e[i] == '"' {
			i++
			for {
				if i >= len(e) {
					return false
				}
				c := e[i]
				if c == '"' {
					i++
					break
				}
				if c == '\\' {
					i++
					if i >= len(e) || !valueTab[e[i]] {
						return false
					}
				} else if !valueTab[c] {
					return false
				}
				i++
			}
		} else {
			s := i
			for i < len(e) && tcharTab[e[i]] {
				i++
			}
			if i == s {
				return false
			}
		}
	}
	return true
}

// CheckBufferedBody validates the chunked framing of request body bytes
// that arrived together with the headers, without consuming them. The
// connection manager calls it before contacting an upstream, so a request
// whose malformed framing is already in hand is refused with 400 and never
// forwarded (Envoy likewise parses its whole read buffer before the
// upstream request goes out). Bytes still on the wire are checked as they
// are read.
func (c *ServerConn) CheckBufferedBody() error {
	b := &c.body
	if b.kind != bodyChunked || b.done || b.err != nil || b.cs != csSize {
		return nil
	}
	n := b.br.Buffered()
	if n == 0 {
		return nil
	}
	peek, _ := b.br.Peek(n)
	probe := body{
		br:   bufio.NewReaderSize(bytes.NewReader(peek), n+16),
		kind: bodyChunked,
		lim:  b.lim,
		bufs: &connBufs{},
	}
	var scratch [2048]byte
	for {
		_, err := probe.readChunked(scratch[:])
		var pe *ProtocolError
		switch {
		case err == nil:
		case errors.As(err, &pe):
			return pe
		default: // the buffered bytes ran out: fine so far
			return nil
		}
	}
}
