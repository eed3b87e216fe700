// Package http1 is Legate's strict HTTP/1.1 codec: request parsing and
// response writing for downstream connections, request writing and response
// parsing for upstream ones. It never buffers a whole body.
package http1
