package streams

import (
	"testing"

	"github.com/nats-io/nats-server/v2/server"
)

// TestHealthErrors checks which Healthz answers count as a storage
// failure: a stream's write error does; the server's 1 ms check that it
// is ready for connections, failing alone, is only reported as such, so
// that StorageErr asks again instead of failing the storage.
func TestHealthErrors(t *testing.T) {
	for _, tt := range []struct {
		name     string
		hs       server.HealthStatus
		wantMsgs int
		wantConn bool
	}{
		{"ok", server.HealthStatus{Status: "ok"}, 0, false},
		{"not ready for connections", server.HealthStatus{Status: "error", Errors: []server.HealthzError{
			{Type: server.HealthzErrorConn, Error: "failed to be ready for connections after 1ms: startup did not complete"},
		}}, 1, true},
		{"a stream write error", server.HealthStatus{Status: "error", Errors: []server.HealthzError{
			{Type: server.HealthzErrorJetStream, Error: "JetStream stream '$G > VMWARE_EVENTS' write error"},
		}}, 1, false},
		{"both", server.HealthStatus{Status: "error", Errors: []server.HealthzError{
			{Type: server.HealthzErrorConn, Error: "not ready"},
			{Type: server.HealthzErrorJetStream, Error: "write error"},
		}}, 2, false},
		{"an error without details", server.HealthStatus{Status: "unavailable", Error: "JetStream is not current with the meta leader"}, 1, false},
	} {
		msgs, conn := healthErrors(&tt.hs)
		if len(msgs) != tt.wantMsgs || conn != tt.wantConn {
			t.Errorf("%s: got (%q, %v), want %d messages and conn %v", tt.name, msgs, conn, tt.wantMsgs, tt.wantConn)
		}
	}
}
