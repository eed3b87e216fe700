//go:build !unix

package connpool

// peekSocket cannot peek here; only the TLS and Stray checks apply.
func (c *h1conn) peekSocket() idleState { return idleQuiet }

func (c *h1conn) peek(uintptr) bool { return true }
