package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io/fs"
	"os"

	"gopkg.in/yaml.v3"
)

// relativeHint reminds where relative paths start, the usual cause of a
// file that "does not exist".
const relativeHint = "relative paths start at the configuration file's directory"

// checkReadable reports, at n, a file that is missing, unreadable or a
// directory. what names the file's role ("certificate").
func (p *parser) checkReadable(n *yaml.Node, path, file, what string) bool {
	info, err := os.Stat(file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		p.errorf(n, path, "%s file %q does not exist (%s)", what, file, relativeHint)
	case err != nil:
		p.errorf(n, path, "cannot read %s file %q: %v", what, file, unwrapPath(err))
	case info.IsDir():
		p.errorf(n, path, "%q is a directory; give the %s file", file, what)
	default:
		return true
	}
	return false
}

// unwrapPath drops the operation and path an *fs.PathError repeats, since
// the message already names the file.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// checkKeyPair checks that a certificate and its key exist and form a
// pair that crypto/tls can serve, so that a bad file fails the
// configuration check rather than the first TLS handshake. Problems with
// the pair are reported at the cert key.
func (p *parser) checkKeyPair(m *mapping, c Cert) bool {
	okCert := p.checkReadable(m.get("cert"), m.at("cert"), c.CertFile, "certificate")
	okKey := p.checkReadable(m.get("key"), m.at("key"), c.KeyFile, "private key")
	if !okCert || !okKey {
		return false
	}
	if _, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile); err != nil {
		p.errorf(m.get("cert"), m.at("cert"), "cannot use certificate %q with key %q: %v", c.CertFile, c.KeyFile, unwrapPath(err))
		return false
	}
	return true
}

// checkCAFile checks that a CA bundle holds at least one PEM certificate.
func (p *parser) checkCAFile(n *yaml.Node, path, file string) bool {
	if !p.checkReadable(n, path, file, "CA bundle") {
		return false
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		p.errorf(n, path, "cannot read CA bundle %q: %v", file, unwrapPath(err))
		return false
	}
	if !x509.NewCertPool().AppendCertsFromPEM(pem) {
		p.errorf(n, path, "%q holds no PEM certificate; give a file of \"-----BEGIN CERTIFICATE-----\" blocks", file)
		return false
	}
	return true
}
