package logging

import "syscall"

// threadID is the OS thread running the caller (%t; Go moves goroutines
// between threads, so it says where a record was written, nothing more).
func threadID() int { return syscall.Gettid() }
