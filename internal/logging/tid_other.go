//go:build !linux

package logging

import "os"

func threadID() int { return os.Getpid() }
