// Package http1 is Legate's strict HTTP/1.1 codec: request parsing and
// response writing for downstream connections, request writing and response
// parsing for upstream ones. It never buffers a whole body.
//
// It replaces net/http on the data path. A header block is read into a
// pooled buffer, validated and lower-cased in place, then converted to a
// string once; every name, value, method and path slices that string, so a
// typical request costs one allocation. Both sides share the header-block
// parser, the hop-by-hop/framing classification and the chunked decoder.
//
// Downstream input is untrusted. Besides what net/http's ReadRequest
// rejects, ReadRequest deliberately rejects (400 unless noted):
//   - bare LF line ends anywhere in the start line, fields or chunk framing;
//   - obs-fold, whitespace between a field name and its colon;
//   - CTLs other than HTAB, and DEL, in field values; NUL anywhere;
//   - both Content-Length and Transfer-Encoding; Transfer-Encoding other
//     than a single "chunked"; Transfer-Encoding on HTTP/1.0;
//   - whitespace on chunk-size lines, malformed chunk extensions, chunk-size
//     lines over 1 KiB and more than 16 KiB of extensions in one body;
//   - a missing or repeated Host on HTTP/1.1; a Connection that is not a
//     token list; a repeated Upgrade;
//   - non-ASCII or malformed percent-encoded request paths, userinfo in
//     absolute-form, "*" on methods other than OPTIONS, CONNECT (for now);
//   - HTTP versions other than 1.0 and 1.1 (505);
//   - header blocks over Limits.MaxHeaderBytes or with more than
//     Limits.MaxHeaders fields (431); underscores per Limits.Underscores.
//
// Responses from upstreams are held to the same rules; a malformed one is a
// *ProtocolError with Status 502.
package http1
