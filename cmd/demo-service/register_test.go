package main

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/legate-proxy/legate/internal/tooling/controlplane"
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
	// No interface with an address to advertise: 0.0.0.0 needs --advertise.
	defer setInterfaces([]iface{{flags: net.FlagUp | net.FlagLoopback, addrs: []net.Addr{cidr("127.0.0.1/8")}}})()
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

// setInterfaces makes advertise detection see ifaces; the returned func
// restores the real lookup.
func setInterfaces(ifaces []iface) func() {
	prev := interfaces
	interfaces = func() ([]iface, error) { return ifaces, nil }
	return func() { interfaces = prev }
}

func cidr(s string) net.Addr {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	n.IP = ip
	return n
}

func TestFirstIPv4(t *testing.T) {
	up := net.FlagUp | net.FlagBroadcast
	lo := iface{flags: net.FlagUp | net.FlagLoopback, addrs: []net.Addr{cidr("127.0.0.1/8"), cidr("::1/128")}}
	for _, tc := range []struct {
		name   string
		ifaces []iface
		want   string
	}{
		{"container", []iface{lo, {flags: up, addrs: []net.Addr{cidr("172.18.0.5/16")}}}, "172.18.0.5"},
		{"only loopback", []iface{lo}, ""},
		{"none", nil, ""},
		{"down interface skipped", []iface{lo, {flags: net.FlagBroadcast, addrs: []net.Addr{cidr("10.0.0.9/8")}}, {flags: up, addrs: []net.Addr{cidr("10.0.1.2/24")}}}, "10.0.1.2"},
		{"IPv6 and link-local skipped", []iface{lo, {flags: up, addrs: []net.Addr{cidr("fe80::1/64"), cidr("2001:db8::5/64"), cidr("169.254.3.4/16"), cidr("192.168.7.8/24")}}}, "192.168.7.8"},
		{"first interface wins", []iface{{flags: up, addrs: []net.Addr{cidr("10.1.0.3/16")}}, {flags: up, addrs: []net.Addr{cidr("10.2.0.3/16")}}}, "10.1.0.3"},
		{"IPAddr form", []iface{{flags: up, addrs: []net.Addr{&net.IPAddr{IP: net.ParseIP("198.51.100.4")}}}}, "198.51.100.4"},
		{"loopback address on a non-loopback interface", []iface{{flags: up, addrs: []net.Addr{cidr("127.0.0.2/8")}}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := firstIPv4(tc.ifaces)
			if (got == nil) != (tc.want == "") || (got != nil && got.String() != tc.want) {
				t.Errorf("firstIPv4 = %v, want %q", got, tc.want)
			}
		})
	}
}

// TestAdvertiseDetected runs a replica listening on 0.0.0.0 without
// --advertise, as in a container, against a real legate-cp: it registers
// its interface's address with the port it listens on.
func TestAdvertiseDetected(t *testing.T) {
	defer setInterfaces([]iface{
		{flags: net.FlagUp | net.FlagLoopback, addrs: []net.Addr{cidr("127.0.0.1/8")}},
		{flags: net.FlagUp | net.FlagBroadcast, addrs: []net.Addr{cidr("fe80::42/64"), cidr("192.0.2.7/24")}},
	})()
	cp, err := controlplane.Start(context.Background(), controlplane.Options{XDSAddress: "127.0.0.1:0", HTTPAddress: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()

	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--listen", "0.0.0.0:0", "--service-id", "2", "--name", "c0ffee",
			"--register", "http://" + cp.HTTPAddr().String(), "--ttl", "2s"}, io.Discard, ready)
	}()
	var addr *net.TCPAddr
	select {
	case a := <-ready:
		addr = a.(*net.TCPAddr)
	case err := <-done:
		t.Fatalf("run ended before serving: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		s, ok := cp.Registry().Service("service2")
		if ok && len(s.Instances) == 1 {
			in := s.Instances[0]
			if in.ID != "c0ffee" || in.Address != "192.0.2.7" || in.Port != addr.Port {
				t.Errorf("registered %s at %s:%d, want c0ffee at 192.0.2.7:%d", in.ID, in.Address, in.Port, addr.Port)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for the replica to register")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
