package xds

import "sync"

// Init tracks what a resource waits for before it goes live, like Envoy's
// init manager: a listener waits for its route configuration and secrets,
// a cluster for its endpoints. Targets are added while the resource is
// built; Done is closed once Seal has been called and every target is
// ready.
type Init struct {
	mu      sync.Mutex
	pending int
	sealed  bool
	done    chan struct{}
	closed  bool
}

// NewInit returns an Init with no targets.
func NewInit() *Init { return &Init{done: make(chan struct{})} }

// Add registers one target; ready marks it done and may be called more
// than once. Adding after Seal is allowed while Done is still open.
func (i *Init) Add() (ready func()) {
	if i == nil {
		return func() {}
	}
	i.mu.Lock()
	i.pending++
	i.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			i.mu.Lock()
			i.pending--
			i.maybeDone()
			i.mu.Unlock()
		})
	}
}

// Seal says no more targets come from the build; Done can now close.
func (i *Init) Seal() {
	if i == nil {
		return
	}
	i.mu.Lock()
	i.sealed = true
	i.maybeDone()
	i.mu.Unlock()
}

// Done is closed when the resource is ready to go live.
func (i *Init) Done() <-chan struct{} {
	if i == nil {
		return closedChan
	}
	return i.done
}

// Pending is how many targets are not yet ready.
func (i *Init) Pending() int {
	if i == nil {
		return 0
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.pending
}

func (i *Init) maybeDone() {
	if i.sealed && i.pending == 0 && !i.closed {
		i.closed = true
		close(i.done)
	}
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()
