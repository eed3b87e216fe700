package hcm

import "math/rand/v2"

const hexDigits = "0123456789abcdef"

// newRequestID returns a random (version 4) UUID. math/rand/v2's global
// generator is a per-thread ChaCha8: unpredictable enough for request ids,
// lock-free, and far cheaper than crypto/rand per request.
func newRequestID() string {
	var b [16]byte
	hi, lo := rand.Uint64(), rand.Uint64()
	for i := range 8 {
		b[i] = byte(hi >> (56 - 8*i))
		b[8+i] = byte(lo >> (56 - 8*i))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	j := 0
	for i, v := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out[j] = '-'
			j++
		}
		out[j], out[j+1] = hexDigits[v>>4], hexDigits[v&0xf]
		j += 2
	}
	return string(out[:])
}
