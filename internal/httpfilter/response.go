package httpfilter

import "github.com/legate-proxy/legate/internal/http/message"

// ResponseWrapper forwards every call to the ResponseWriter it holds. A
// filter that acts on the response embeds it in a type of its own,
// overrides the calls it cares about (WriteHeader to change status or
// headers, Write to see or change the body), and puts that in
// Stream.Response before calling the next filter, restoring the old one
// after. Keep the wrapper in the filter's per-stream state (or a pool) so
// the request path does not allocate for it.
type ResponseWrapper struct {
	message.ResponseWriter
}

// Reset forwards to the wrapped writer when it can abort a response, so a
// wrapper does not hide message.Resetter from the router.
func (w *ResponseWrapper) Reset() {
	if r, ok := w.ResponseWriter.(message.Resetter); ok {
		r.Reset()
	}
}
