package listener

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"unsafe"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"golang.org/x/sys/unix"
)

// soReusePort is SO_REUSEPORT, which package syscall does not name.
const soReusePort = unix.SO_REUSEPORT

// sockopt is one socket_options entry.
type sockopt struct {
	level, name int
	intValue    int
	buf         []byte // buf_value; nil: intValue
	state       corev3.SocketOption_SocketState
}

func (l *Listener) compileSocketOptions(opts []*corev3.SocketOption) error {
	for i, o := range opts {
		path := fmt.Sprintf("socket_options[%d]", i)
		so := sockopt{level: int(o.GetLevel()), name: int(o.GetName()), state: o.GetState()}
		switch v := o.GetValue().(type) {
		case *corev3.SocketOption_IntValue:
			so.intValue = int(v.IntValue)
		case *corev3.SocketOption_BufValue:
			so.buf = v.BufValue
			if so.buf == nil {
				so.buf = []byte{}
			}
		default:
			return fmt.Errorf("%s: int_value or buf_value is required", path)
		}
		if o.GetType() != nil && o.GetType().GetDatagram() != nil {
			continue // applies to UDP sockets only
		}
		l.sockopts = append(l.sockopts, so)
	}
	return nil
}

// applySockopts sets the options for one socket state.
func applySockopts(fd int, opts []sockopt, state corev3.SocketOption_SocketState) error {
	for _, o := range opts {
		if o.state != state {
			continue
		}
		var err error
		if o.buf != nil {
			var p unsafe.Pointer
			if len(o.buf) > 0 {
				p = unsafe.Pointer(&o.buf[0])
			}
			_, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(o.level), uintptr(o.name), uintptr(p), uintptr(len(o.buf)), 0)
			if e != 0 {
				err = e
			}
		} else {
			err = syscall.SetsockoptInt(fd, o.level, o.name, o.intValue)
		}
		if err != nil {
			return fmt.Errorf("socket option level %d name %d: %w", o.level, o.name, err)
		}
	}
	return nil
}

// bindUnix binds a unix domain socket: a path (a stale socket file left
// by a previous process is removed first, as Envoy does), or an abstract
// name ("@name").
func bindUnix(l *Listener) (int, net.Addr, error) {
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		return -1, nil, os.NewSyscallError("socket", err)
	}
	syscall.CloseOnExec(fd)
	fail := func(call string, err error) (int, net.Addr, error) {
		syscall.Close(fd)
		return -1, nil, os.NewSyscallError(call, err)
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		return fail("setnonblock", err)
	}
	if err := applySockopts(fd, l.sockopts, corev3.SocketOption_STATE_PREBIND); err != nil {
		return fail("setsockopt", err)
	}
	name := l.Address
	abstract := strings.HasPrefix(name, "@")
	if abstract {
		name = "\x00" + name[1:]
	} else if fi, err := os.Lstat(name); err == nil && fi.Mode()&os.ModeSocket != 0 {
		os.Remove(name)
	} else if err == nil {
		return fail("bind", errors.New("the path exists and is not a socket"))
	}
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: name}); err != nil {
		return fail("bind", err)
	}
	if !abstract && l.pipeMode != 0 {
		if err := os.Chmod(name, l.pipeMode); err != nil {
			syscall.Close(fd)
			return -1, nil, err
		}
	}
	if err := applySockopts(fd, l.sockopts, corev3.SocketOption_STATE_BOUND); err != nil {
		return fail("setsockopt", err)
	}
	return fd, &net.UnixAddr{Net: "unix", Name: l.Address}, nil
}
