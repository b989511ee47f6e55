package webhook_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vrelay/vrelay/producers/webhook"
)

// TestIdleConnectionClosed checks that the listener closes a keep-alive
// connection that sends nothing after its first request, once idleTimeout
// has passed: idle clients cannot hold connections for ever.
func TestIdleConnectionClosed(t *testing.T) {
	_, url, _, _ := start(t, webhook.Config{IdleTimeout: 100 * time.Millisecond}, &recorder{})
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"specversion":"1.0","id":"idle-1","source":"test","type":"t"}`
	if _, err := io.WriteString(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/cloudevents+json\r\n"+
		"Content-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.Close {
		t.Fatalf("got status %d with Connection: close, want a keep-alive answer", resp.StatusCode)
	}
	// The bound is the test's patience, far above the idle timeout; the
	// assertion is that the server closes, not how fast.
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	n, err := br.Read(make([]byte, 1))
	if !errors.Is(err, io.EOF) {
		t.Fatalf("read on the idle connection: got %d bytes, %v; want EOF (closed by the server)", n, err)
	}
}
