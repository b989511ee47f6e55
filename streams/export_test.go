package streams

import "github.com/nats-io/nats-server/v2/server"

// SetTestServerOptions makes every embedded server started until the test
// ends use f on its options.
func SetTestServerOptions(t interface{ Cleanup(func()) }, f func(*server.Options)) {
	testServerOptions = f
	t.Cleanup(func() { testServerOptions = nil })
}
