package tlsfiles

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSigned returns a CA certificate and its PEM encoding.
func selfSigned(t *testing.T) (*x509.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "vrelay test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestLoadCAPool(t *testing.T) {
	cert, certPEM := selfSigned(t)
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		file    string
		wantErr string // substring; "" for success
		wantIs  error
	}{
		{name: "one certificate", file: write("ca.pem", certPEM)},
		{name: "certificate after other text", file: write("bundle.pem", append([]byte("# our CA\n"), certPEM...))},
		{name: "missing file", file: filepath.Join(dir, "missing.pem"), wantErr: "read CA file: open ", wantIs: fs.ErrNotExist},
		{name: "not PEM", file: write("ca.der", cert.Raw), wantErr: "no PEM certificate in "},
		{name: "PEM without a certificate", file: write("key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}})), wantErr: "no PEM certificate in "},
		{name: "empty file", file: write("empty.pem", nil), wantErr: "no PEM certificate in "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool, err := LoadCAPool(tt.file)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), tt.file) {
					t.Errorf("LoadCAPool(%s): got %v, want an error containing %q and the file name", tt.name, err, tt.wantErr)
				}
				if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
					t.Errorf("LoadCAPool(%s): got %v, want it to wrap %v", tt.name, err, tt.wantIs)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadCAPool(%s): got %v, want nil", tt.name, err)
			}
			if _, err := cert.Verify(x509.VerifyOptions{Roots: pool}); err != nil {
				t.Errorf("the certificate does not verify against the loaded pool: %v", err)
			}
		})
	}
}
