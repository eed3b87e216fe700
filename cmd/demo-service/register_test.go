package main

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/legate-proxy/legate/internal/controlplane"
)

// TestRegistersWithLegateCP runs a replica against a real legate-cp: it
// registers, registers again after legate-cp forgets it, and deregisters
// when stopped.
func TestRegistersWithLegateCP(t *testing.T) {
	cp, err := controlplane.Start(context.Background(), controlplane.Options{XDSAddress: "127.0.0.1:0", HTTPAddress: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	reg := cp.Registry()

	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--listen", "127.0.0.1:0", "--service-id", "1", "--name", "service1-a",
			"--register", cp.HTTPAddr().String(), "--ttl", "1s"}, io.Discard, ready)
	}()
	addr := (<-ready).(*net.TCPAddr)

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting until %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	registered := func() bool {
		s, ok := reg.Service("service1")
		return ok && len(s.Instances) == 1 && s.Instances[0].ID == "service1-a" &&
			s.Instances[0].Address == "127.0.0.1" && s.Instances[0].Port == addr.Port
	}
	waitFor("the replica registers", registered)

	// legate-cp forgets it (as after a restart): the next heartbeat gets a
	// 404 and the replica registers again.
	if err := reg.Delete("service1", "service1-a"); err != nil {
		t.Fatal(err)
	}
	waitFor("the replica registers again", registered)

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, ok := reg.Service("service1"); ok {
		t.Error("still registered after stopping")
	}
}

func TestRegisterFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--listen", "0.0.0.0:0", "--service-id", "1", "--register", "127.0.0.1:1"},                    // nothing to advertise
		{"--listen", "127.0.0.1:0", "--service-id", "1", "--register", "127.0.0.1:1", "--ttl", "10ms"}, // ttl too short
		{"--listen", "127.0.0.1:0", "--service-id", "1", "--register", "127.0.0.1:1", "--advertise", "nope"},
	} {
		if err := run(context.Background(), args, io.Discard, nil); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}
