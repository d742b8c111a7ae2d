package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"slices"

	"gopkg.in/yaml.v3"
)

// Parse reads a configuration from data. filename names the file in error
// messages, and its directory is the base of relative paths in the file.
//
// On failure the error is an *Errors listing every problem found, each
// with its position; a Config is returned only when there is none.
func Parse(filename string, data []byte) (*Config, error) {
	return parse(filename, filepath.Dir(filename), runtime.NumCPU(), data)
}

// Load reads and parses the configuration file at path. Relative paths in
// the file are resolved against the file's directory and made absolute,
// so that the server may change its working directory (as a daemon does)
// without losing its certificates.
//
// A file that cannot be read yields the *fs.PathError, wrapped; a file
// that is not a regular file (a directory, a device, a FIFO, a socket)
// or is larger than MaxFileSize is refused at once, without blocking,
// with an error wrapping ErrNotRegularFile or ErrFileTooLarge. A file
// with problems yields an *Errors, as from Parse.
func Load(path string) (*Config, error) {
	data, err := ReadFile(path, "configuration")
	if err != nil {
		return nil, fmt.Errorf("load configuration: %w", err)
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		// Only a vanished working directory makes Abs fail; keeping the
		// relative directory still resolves paths correctly for now.
		dir = filepath.Dir(path)
	}
	return parse(path, dir, runtime.NumCPU(), data)
}

// parse is Parse with the environment made explicit: dir is the base of
// relative paths and numCPU the default thread count, so that tests get
// the same output on every machine.
func parse(file, dir string, numCPU int, data []byte) (*Config, error) {
	p := &parser{file: file, dir: dir, numCPU: numCPU, claims: make(map[string]claim), pools: make(map[string]*pool)}
	var cfg *Config
	if root := p.document(data); root != nil {
		cfg = p.config(root)
	}
	if len(p.errs) > 0 {
		errs := sortedUnique(p.errs)
		return nil, &errs
	}
	slices.SortStableFunc(p.warnings, func(a, b Warning) int {
		return cmp.Or(cmp.Compare(a.Pos.Line, b.Pos.Line), cmp.Compare(a.Pos.Col, b.Pos.Col))
	})
	cfg.Warnings = slices.CompactFunc(p.warnings, func(a, b Warning) bool { return a == b })
	return cfg, nil
}

// maxMerges bounds the YAML merge keys ("<<") followed in one file. Merges
// of merges grow exponentially, so without a bound a small file could make
// the parser walk billions of nodes.
const maxMerges = 10000

// parser walks one file's YAML tree, filling a Config and collecting every
// problem instead of stopping at the first.
type parser struct {
	file   string
	dir    string
	numCPU int
	errs   []Error
	// claims maps "tcp ip:port" and "udp ip:port" to the first service
	// that listens there, to report a second use of the address.
	claims map[string]claim
	merges int
	// pools are the named upstreams, by name; upstreamsBad says the
	// upstreams key is not a mapping, so no pool is known.
	pools        map[string]*pool
	upstreamsBad bool
	// warnings are the valid but doubtful things found.
	warnings []Warning
}

// claim records which service uses an address, where, and as what
// ("listen 127.0.0.1:80", "vip 192.0.2.10:80").
type claim struct {
	service string
	pos     Position
	what    string
}

// pos returns the position of n in the file.
func (p *parser) pos(n *yaml.Node) Position {
	return Position{File: p.file, Line: n.Line, Col: n.Column}
}

// errorf records a problem at n. path is the key path of the offending
// value; it prefixes the message unless empty.
func (p *parser) errorf(n *yaml.Node, path, format string, args ...any) {
	p.errorAt(p.pos(n), path, format, args...)
}

// errorAt records a problem at pos.
func (p *parser) errorAt(pos Position, path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	p.errs = append(p.errs, Error{File: pos.File, Line: pos.Line, Col: pos.Col, Msg: bound(msg)})
}

// warnAt records a warning at pos.
func (p *parser) warnAt(pos Position, format string, args ...any) {
	p.warnings = append(p.warnings, Warning{Pos: pos, Message: bound(fmt.Sprintf(format, args...))})
}

// document parses data and returns its root node, or nil after recording
// why there is none. A file holds exactly one YAML document.
func (p *parser) document(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.errorAt(Position{File: p.file, Line: 1, Col: 1}, "",
				"the file is empty; a configuration needs at least \"version: 1\" and one service (see examples/quickstart.yaml)")
		} else {
			p.syntaxError(data, err)
		}
		return nil
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		p.errorf(&next, "", "a second YAML document starts here; weir reads one document per file, so remove the \"---\" separator or split the file")
	case !errors.Is(err, io.EOF):
		p.syntaxError(data, err)
	}
	if len(doc.Content) == 0 {
		p.errorf(&doc, "", "the file holds no configuration; it needs at least \"version: 1\" and one service")
		return nil
	}
	return doc.Content[0]
}

// syntaxError records a YAML syntax error, at the position of the
// offending character where it can be found (see syntaxPosition).
func (p *parser) syntaxError(data []byte, err error) {
	line, col, msg, hint := syntaxPosition(newSource(data), err)
	p.errorAt(Position{File: p.file, Line: line, Col: col}, "", "YAML syntax error: %s (%s)", msg, hint)
}
