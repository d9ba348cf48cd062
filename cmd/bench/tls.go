package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// newTLS makes a CA for this run and a certificate for 127.0.0.1 signed by it, as
// AWS and Azure present theirs: the doubles serve it, and the functions trust the CA
// through SSL_CERT_FILE (Go's roots) and AWS_CA_BUNDLE (the SDK's), which the
// returned env sets. Nothing else trusts it; it lives as long as dir.
//
// Go also reads every file of its certificate directories, whatever SSL_CERT_FILE
// says. The env points them (SSL_CERT_DIR) at a directory holding one copy of this
// machine's CA bundle, as Lambda's al2023 holds a bundle or two there, rather than
// at this machine's /etc/ssl/certs (hundreds of files on Debian): every function
// pays the same, a bundle's worth of parsing, once per process.
func newTLS(dir string) (server *tls.Config, env []string, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "relay bench CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	if ca, err = x509.ParseCertificate(caDER); err != nil {
		return nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644); err != nil {
		return nil, nil, err
	}
	roots := filepath.Join(dir, "certs")
	if err := os.Mkdir(roots, 0o755); err != nil {
		return nil, nil, err
	}
	for _, bundle := range systemBundles {
		if pem, err := os.ReadFile(bundle); err == nil {
			if err := os.WriteFile(filepath.Join(roots, "ca-bundle.crt"), pem, 0o644); err != nil {
				return nil, nil, err
			}
			break
		}
	}
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: key}}}
	return server, []string{"SSL_CERT_FILE=" + caFile, "SSL_CERT_DIR=" + roots, "AWS_CA_BUNDLE=" + caFile}, nil
}

// systemBundles are where Linux distributions keep their CA bundle (the first of Go's
// own list, crypto/x509/root_linux.go); the first found is copied.
var systemBundles = []string{
	"/etc/ssl/certs/ca-certificates.crt", // Debian, Ubuntu
	"/etc/pki/tls/certs/ca-bundle.crt",   // Fedora, RHEL, Amazon Linux
	"/etc/ssl/ca-bundle.pem",             // openSUSE
	"/etc/ssl/cert.pem",                  // Alpine
}
