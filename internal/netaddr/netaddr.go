// Package netaddr checks the listen addresses of a configuration: the
// embedded NATS listener, the webhook listener, the metrics and health
// endpoint. An address is host:port with a port from 0 to 65535; port 0
// picks a free port, an empty host listens on every interface. [Off], which
// disables a listener, is accepted only where the caller asks for it with
// [CheckListenOrOff].
//
//	if err := netaddr.CheckListen(c.Listen); err != nil {
//		errs = append(errs, cfgerr.New("listen", err.Error()))
//	}
package netaddr

import (
	"fmt"
	"net"
	"strconv"
)

// Off is the listen address that disables a listener where that is allowed.
const Off = "off"

// SplitListen splits a listen address into host and port.
func SplitListen(addr string) (host string, port int, err error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%q is not host:port", addr)
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("%q: port must be a number from 0 to 65535", addr)
	}
	return host, int(n), nil
}

// CheckListen returns nil if addr is host:port with a valid port.
func CheckListen(addr string) error {
	_, _, err := SplitListen(addr)
	return err
}

// CheckListenOrOff is [CheckListen] that also accepts [Off].
func CheckListenOrOff(addr string) error {
	if addr == Off {
		return nil
	}
	if err := CheckListen(addr); err != nil {
		return fmt.Errorf("%w (or %q for no listener)", err, Off)
	}
	return nil
}
