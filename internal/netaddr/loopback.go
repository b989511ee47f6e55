package netaddr

import "net"

// IsLoopback reports whether the listen address addr accepts connections
// from this host only: its host is "localhost" or a loopback IP. An empty
// host, a wildcard or any other address is reachable from elsewhere, and
// so is a name other than localhost (it may resolve to anything).
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
