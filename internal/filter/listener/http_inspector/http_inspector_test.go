package http_inspector

import "testing"

func TestDetect(t *testing.T) {
	for in, want := range map[string]string{
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n": "h2c",
		"PRI * HTTP/2.0\r\n":               "",
		"GET / HTTP/1.1\r\nHost: a\r\n":    "http/1.1",
		"POST /x HTTP/1.0\r\n":             "http/1.0",
		"GET /very/long":                   "",
		"GET / HTTP/2.0\r\n":               "-",
		"\x16\x03\x01":                     "-",
		"GE":                               "",
		"G(T / HTTP/1.1\r\n":               "-",
		"SSH-2.0-OpenSSH\r\n":              "-",
	} {
		if got := detect([]byte(in)); got != want {
			t.Errorf("detect(%q) = %q, want %q", in, got, want)
		}
	}
}
