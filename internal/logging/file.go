package logging

import (
	"os"
	"sync"
)

// File is the --log-path file: appended to, and reopened by Reopen
// (SIGUSR1 and POST /reopen_logs, as in Envoy) so that logrotate can move
// it away and have a new one created.
type File struct {
	mu   sync.Mutex
	path string
	f    *os.File
}

// OpenFile opens path for appending, creating it if needed.
func OpenFile(path string) (*File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	return &File{path: path, f: f}, nil
}

func (f *File) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.f.Write(p)
}

// Reopen opens the path again and switches to it; on failure the old
// file is kept.
func (f *File) Reopen() error {
	nf, err := os.OpenFile(f.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	f.mu.Lock()
	old := f.f
	f.f = nf
	f.mu.Unlock()
	return old.Close()
}

// Close closes the file.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.f.Close()
}
