//go:build !linux

package stats

// readOS leaves the process_* figures out where there is no /proc.
func readOS(*ProcessSnapshot) {}
