package webhook_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vrelay/vrelay/producers/webhook"
)

// start builds a Source, listens on 127.0.0.1:0 and runs it until the
// returned cancel is called. The channel gets Run's result.
func start(t *testing.T, cfg webhook.Config, pub *recorder) (src *webhook.Source, url string, cancel context.CancelFunc, done <-chan error) {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	src, err := webhook.New(cfg)
	if err != nil {
		t.Fatalf("New() error: %v", err)
	}
	if src.Addr() != nil {
		t.Fatalf("got Addr() %v before Listen, want nil", src.Addr())
	}
	if err := src.Listen(); err != nil {
		t.Fatalf("Listen() error: %v", err)
	}
	addr := src.Addr()
	if addr == nil || addr.(*net.TCPAddr).Port == 0 {
		t.Fatalf("got Addr() %v after Listen, want a real port", addr)
	}
	ctx, cancel := context.WithCancel(t.Context())
	errc, stopped := make(chan error, 1), make(chan struct{})
	go func() {
		errc <- src.Run(ctx, pub)
		close(stopped)
	}()
	t.Cleanup(func() {
		cancel()
		<-stopped
	})
	scheme := "http"
	if cfg.TLS.CertFile != "" {
		scheme = "https"
	}
	return src, scheme + "://" + addr.String(), cancel, errc
}

func TestRun(t *testing.T) {
	pub := &recorder{}
	src, url, cancel, done := start(t, webhook.Config{Path: "/events"}, pub)

	resp, body := request{path: "/events", header: binaryHeaders}.do(t, url)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("got status %d (%s), want 200", resp.StatusCode, body)
	}
	if got := len(pub.published()); got != 1 {
		t.Errorf("got %d events published, want 1", got)
	}

	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("got Run() error %v, want context.Canceled", err)
	}
	if got := src.Addr(); got != nil {
		t.Errorf("got Addr() %v after Run returned, want nil", got)
	}
	if _, err := http.Post(url+"/events", "text/plain", nil); err == nil {
		t.Error("got a response after Run returned, want the connection refused")
	}
}

// TestRunFinishesInFlight cancels Run while a request waits in Publish: the
// request must still complete with 200, and Run must return only after it.
func TestRunFinishesInFlight(t *testing.T) {
	pub := &recorder{entered: make(chan struct{}, 1), block: make(chan struct{})}
	_, url, cancel, done := start(t, webhook.Config{}, pub)

	type result struct {
		code int
		err  error
	}
	answered := make(chan result, 1)
	go func() {
		resp, err := http.Post(url, "application/cloudevents+json", strings.NewReader(ev("1")))
		if err != nil {
			answered <- result{err: err}
			return
		}
		resp.Body.Close()
		answered <- result{code: resp.StatusCode}
	}()

	<-pub.entered
	cancel()
	select {
	case err := <-done:
		t.Fatalf("Run returned %v while a request was in flight, want it to wait", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(pub.block)

	if r := <-answered; r.err != nil || r.code != http.StatusOK {
		t.Errorf("got in-flight answer (%d, %v), want (200, nil)", r.code, r.err)
	}
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("got Run() error %v, want context.Canceled", err)
	}
	if got := len(pub.published()); got != 1 {
		t.Errorf("got %d events published, want 1", got)
	}
}

// TestRunShutdownTimeout checks that a request stuck in Publish past
// shutdownTimeout is cancelled and Run returns, with the sender told of the
// failure rather than a success.
func TestRunShutdownTimeout(t *testing.T) {
	pub := &recorder{entered: make(chan struct{}, 1), block: make(chan struct{})}
	_, url, cancel, done := start(t, webhook.Config{ShutdownTimeout: 50 * time.Millisecond}, pub)

	answered := make(chan int, 1)
	go func() {
		resp, err := http.Post(url, "application/cloudevents+json", strings.NewReader(ev("1")))
		if err != nil {
			answered <- 0
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()

	<-pub.entered
	began := time.Now()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("got Run() error %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after shutdownTimeout")
	}
	if d := time.Since(began); d < 50*time.Millisecond {
		t.Errorf("Run returned after %s, want it to wait for shutdownTimeout first", d)
	}
	if code := <-answered; code == http.StatusOK {
		t.Error("got 200 for a request whose Publish was cancelled")
	}
	if got := len(pub.published()); got != 0 {
		t.Errorf("got %d events published, want 0", got)
	}
	if err := pub.contexts()[0].Err(); err == nil {
		t.Error("the stuck Publish call's context was not cancelled")
	}
}

func TestRunListenError(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() })
	src, err := webhook.New(webhook.Config{Listen: busy.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	err = src.Run(t.Context(), &recorder{})
	if err == nil || errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "listen on") {
		t.Errorf("got Run() error %v, want a listen error", err)
	}
}

func TestRunTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	pub := &recorder{}
	_, url, _, _ := start(t, webhook.Config{TLS: webhook.TLSConfig{CertFile: certFile, KeyFile: keyFile}}, pub)

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	t.Cleanup(client.CloseIdleConnections)
	resp, err := client.Post(url, "application/cloudevents+json", strings.NewReader(ev("1")))
	if err != nil {
		t.Fatalf("POST over TLS: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("got status %d, want 200", resp.StatusCode)
	}
	if resp.TLS == nil {
		t.Error("got a plain-text response, want TLS")
	}
	if got := len(pub.published()); got != 1 {
		t.Errorf("got %d events published, want 1", got)
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns
// their paths and a pool that trusts the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "vrelay test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
