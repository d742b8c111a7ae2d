package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"

	"gopkg.in/yaml.v3"
)

// MaxFileSize is the largest file weir reads: the configuration file and
// every file it names (certificates, private keys, CA bundles). Real ones
// are kilobytes; the cap is there so that a wrong path (a disk image, a
// log) fails at once instead of exhausting memory.
const MaxFileSize = 16 << 20

// ErrNotRegularFile and ErrFileTooLarge are wrapped by the errors of
// files weir refuses to read: a directory, a device, a FIFO or a socket
// (a device or a FIFO may never end, or block forever), and a file over
// MaxFileSize.
var (
	ErrNotRegularFile = errors.New("not a regular file")
	ErrFileTooLarge   = errors.New("file too large")
)

// fileError is a refusal to read a file: a message saying what the file
// is and what to do, wrapping ErrNotRegularFile or ErrFileTooLarge.
type fileError struct {
	msg string
	err error
}

func (e *fileError) Error() string { return e.msg }
func (e *fileError) Unwrap() error { return e.err }

// ReadFile reads the file at path, following symlinks: the one way weir
// reads a file it is given (pkg/server reads certificates through it
// again at start, as they may have changed since the check). It refuses anything but a regular file, and a
// file over MaxFileSize, and it never blocks: the file is checked before
// it is opened (so that no device is even opened), opened with
// O_NONBLOCK (so that opening a FIFO does not wait for a writer), checked
// again through the open descriptor (so that a file swapped in between is
// caught), and read to one byte past the cap at most (so that a file
// growing while it is read is caught). what names the file's role in
// messages ("configuration", "certificate").
//
// A file that is missing or unreadable yields the *fs.PathError.
func ReadFile(path, what string) ([]byte, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if err := checkFileInfo(path, what, info); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if info, err = f.Stat(); err != nil {
		return nil, err
	}
	if err := checkFileInfo(path, what, info); err != nil {
		return nil, err
	}
	return readCapped(f, path, what)
}

// checkFileInfo refuses a file that is not regular or is over the cap.
func checkFileInfo(path, what string, info fs.FileInfo) error {
	mode := info.Mode()
	switch {
	case mode.IsDir():
		return &fileError{fmt.Sprintf("%s is a directory, not a regular file; give the path of the %s file, not of its directory",
			quote(path), what), ErrNotRegularFile}
	case !mode.IsRegular():
		return &fileError{fmt.Sprintf("%s is %s, not a regular file; give the path of a regular file holding the %s (weir does not read devices, FIFOs or sockets, which may never end or may block)",
			quote(path), fileKind(mode), what), ErrNotRegularFile}
	case info.Size() > MaxFileSize:
		return &fileError{fmt.Sprintf("%s is %d bytes, more than the %s weir reads from a %s file; check that it is the right file",
			quote(path), info.Size(), capText, what), ErrFileTooLarge}
	}
	return nil
}

// capText words MaxFileSize for messages.
var capText = fmt.Sprintf("%d bytes (%d MiB)", MaxFileSize, MaxFileSize>>20)

// fileKind names the type of a file that is neither regular nor a
// directory.
func fileKind(mode fs.FileMode) string {
	switch {
	case mode&fs.ModeNamedPipe != 0:
		return "a FIFO (named pipe)"
	case mode&fs.ModeSocket != 0:
		return "a Unix socket"
	case mode&fs.ModeCharDevice != 0:
		return "a character device"
	case mode&fs.ModeDevice != 0:
		return "a block device"
	}
	return "a special file (" + mode.Type().String() + ")"
}

// readCapped reads r to the end, or to one byte past MaxFileSize, which
// it refuses: the file grew past the cap after its size was checked.
func readCapped(r io.Reader, path, what string) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileSize {
		return nil, &fileError{fmt.Sprintf("%s holds more than %s, the most weir reads from a %s file (it grew while being read); check that it is the right file",
			quote(path), capText, what), ErrFileTooLarge}
	}
	return data, nil
}

// relativeHint reminds where relative paths start, the usual cause of a
// file that "does not exist".
const relativeHint = "relative paths start at the configuration file's directory"

// readNamed reads a file the configuration names, reporting at n why it
// cannot. what names the file's role ("certificate").
func (p *parser) readNamed(n *yaml.Node, path, file, what string) ([]byte, bool) {
	data, err := ReadFile(file, what)
	var fe *fileError
	switch {
	case err == nil:
		return data, true
	case errors.As(err, &fe):
		p.errorf(n, path, "%s", fe.msg)
	case errors.Is(err, fs.ErrNotExist):
		p.errorf(n, path, "%s file %s does not exist (%s)", what, quote(file), relativeHint)
	default:
		p.errorf(n, path, "cannot read %s file %s: %v", what, quote(file), unwrapPath(err))
	}
	return nil, false
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
	certPEM, okCert := p.readNamed(m.get("cert"), m.at("cert"), c.CertFile, "certificate")
	keyPEM, okKey := p.readNamed(m.get("key"), m.at("key"), c.KeyFile, "private key")
	if !okCert || !okKey {
		return false
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		p.errorf(m.get("cert"), m.at("cert"), "cannot use certificate %s with key %s: %v", quote(c.CertFile), quote(c.KeyFile), err)
		return false
	}
	return true
}

// checkCAFile checks that a CA bundle holds at least one PEM certificate.
func (p *parser) checkCAFile(n *yaml.Node, path, file string) bool {
	pem, ok := p.readNamed(n, path, file, "CA bundle")
	if !ok {
		return false
	}
	if !x509.NewCertPool().AppendCertsFromPEM(pem) {
		p.errorf(n, path, "%s holds no PEM certificate; give a file of \"-----BEGIN CERTIFICATE-----\" blocks", quote(file))
		return false
	}
	return true
}
