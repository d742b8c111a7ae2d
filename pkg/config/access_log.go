package config

import (
	"strings"

	"github.com/weir-lb/weir/pkg/accesslog"
	"gopkg.in/yaml.v3"
)

// The access_log paths that name a standard stream rather than a file.
const (
	accessLogStderr = "stderr"
	accessLogStdout = "stdout"
)

// httpLogging reads the keys of the services that serve HTTP requests
// (http_proxy and respond) about logging them: request_id, which is true
// unless set, and access_log.
func (p *parser) httpLogging(m *mapping, s *Service) {
	s.RequestID = true
	m.boolean("request_id", &s.RequestID)
	if n := m.get("access_log"); n != nil {
		s.AccessLog = p.accessLog(n, m.keys["access_log"], m.at("access_log"))
	}
}

// accessLog reads access_log: a path, or a mapping of path and format.
// key is the access_log key, where the log is said to be configured.
// The format is parsed here, once, so that a bad one is reported at its
// value, and the server gets it ready to use.
func (p *parser) accessLog(n, key *yaml.Node, path string) *AccessLog {
	a := &AccessLog{Pos: p.pos(key)}
	switch {
	case n.Kind == yaml.ScalarNode && n.ShortTag() != tagNull:
		s, ok := p.str(n, path)
		if !ok {
			return nil
		}
		if !p.accessLogPath(n, path, s, &a.Path) {
			return nil
		}
		a.Format = defaultAccessLogFormat()
		return a
	case n.Kind != yaml.MappingNode:
		p.wrongType(n, path, "a path, or a mapping with path and format")
		return nil
	}
	m := p.mapping(n, path, []string{"path", "format"})
	if m == nil {
		return nil
	}
	var file string
	switch {
	case m.str("path", &file):
		p.accessLogPath(m.get("path"), m.at("path"), file, &a.Path)
	case !m.has("path"):
		m.missing("path", "say where to write the lines: a file, as in path: /var/log/weir/access.log, or stdout or stderr")
	}
	a.Format = defaultAccessLogFormat()
	var format string
	if m.str("format", &format) {
		f, err := accesslog.ParseFormat(format)
		if err != nil {
			// The key path already says what the value is.
			msg := strings.TrimPrefix(err.Error(), accesslog.ErrBadFormat.Error()+": ")
			p.errorf(m.get("format"), m.at("format"), "%s", msg)
		} else {
			a.Format = f
		}
	}
	return a
}

// accessLogPath reads an access log's path into dst: stderr and stdout
// as they are, any other path resolved against the configuration file's
// directory.
func (p *parser) accessLogPath(n *yaml.Node, path, s string, dst *string) bool {
	switch s {
	case "":
		p.errorf(n, path, "must not be empty; give a file, stdout or stderr, or remove access_log to log no requests")
		return false
	case accessLogStderr, accessLogStdout:
		*dst = s
	default:
		*dst = p.resolvePath(s)
	}
	return true
}

// defaultAccessLogFormat is the format of an access log that names none.
func defaultAccessLogFormat() *accesslog.Format {
	f, err := accesslog.ParseFormat(accesslog.Combined)
	if err != nil {
		panic("config: the combined access log format does not parse: " + err.Error())
	}
	return f
}
