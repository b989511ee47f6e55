// Package tlsfiles loads the TLS material a configuration names by file:
// the CA bundle that a client trusts instead of the system roots (a vCenter
// with its own VMCA, an HTTP receiver, a NATS cluster).
//
//	pool, err := tlsfiles.LoadCAPool(cfg.CAFile)
//	if err != nil {
//		return cfgerr.New("caFile", err.Error())
//	}
//	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
package tlsfiles

import (
	"crypto/x509"
	"fmt"
	"os"
)

// LoadCAPool reads the PEM certificates in file into a new pool. It fails
// when the file cannot be read, and when it holds no PEM certificate (a
// DER file, a key, the wrong path in a Secret mount), which would otherwise
// show up only later as "certificate signed by unknown authority".
func LoadCAPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no PEM certificate in %s", file)
	}
	return pool, nil
}
