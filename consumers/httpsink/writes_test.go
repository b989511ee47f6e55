package httpsink_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/consumers/httpsink"
)

// countingConn counts the writes made on a connection.
type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

// TestRequestIsOneWrite checks that a request goes out with one write of
// the connection: request line, headers and body together. net/http flushes
// the headers on their own, and copies the body through a buffer of its own,
// when it does not know the body to be in memory.
func TestRequestIsOneWrite(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	var writes atomic.Int64
	dialer := &net.Dialer{}
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return countingConn{Conn: c, writes: &writes}, nil
		},
	}}
	t.Cleanup(client.CloseIdleConnections)
	ev := newEvent()
	stored := []byte(`{"specversion":"1.0","id":"42","source":"/vcenter/vc01","type":"com.vmware.vsphere.VmPoweredOnEvent.v0","datacontenttype":"application/json","data":{"Key":42}}`)
	for _, tt := range []struct {
		mode string
		ctx  context.Context
	}{
		{httpsink.ModeBinary, t.Context()},
		{httpsink.ModeStructured, t.Context()},
		{httpsink.ModeStructured + " (stored body)", consumers.ContextWithEncoded(t.Context(), stored)},
	} {
		mode := tt.mode
		if mode != httpsink.ModeBinary {
			mode = httpsink.ModeStructured
		}
		s := newSink(t, httpsink.Config{URL: srv.URL, Mode: mode}, httpsink.WithHTTPClient(client))
		for i := range 3 {
			before := writes.Load()
			if err := s.Send(tt.ctx, ev); err != nil {
				t.Fatalf("%s: Send(): got error %v, want nil", tt.mode, err)
			}
			if got := writes.Load() - before; got != 1 {
				t.Errorf("%s, request %d: got %d writes on the connection, want 1", tt.mode, i+1, got)
			}
		}
	}
}

// TestNoAcceptEncoding checks that requests ask for no compressed answer:
// the sink reads at most an error's snippet of it.
func TestNoAcceptEncoding(t *testing.T) {
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("Accept-Encoding")
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	s := newSink(t, httpsink.Config{URL: srv.URL})
	if err := s.Send(t.Context(), newEvent()); err != nil {
		t.Fatalf("Send(): got error %v, want nil", err)
	}
	if ae := <-got; ae != "" {
		t.Errorf("Accept-Encoding: got %q, want none", ae)
	}
}
