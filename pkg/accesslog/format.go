package accesslog

import (
	"fmt"
	"strings"

	"github.com/weir-lb/weir/internal/suggest"
)

// MaxLine is the most bytes a line may take, newline included. ParseFormat
// refuses a template whose line could be longer, and every text field is
// cut to its bound, so no request can make a line grow past it.
const MaxLine = 16 << 10

// The names of the two built-in formats.
const (
	// Combined is NGINX's and Apache's combined log format.
	Combined = "combined"
	// JSON is one JSON object per line with every field.
	JSON = "json"
)

// combinedTemplate is the combined log format in template form. Its two
// "-" are the RFC 1413 identity and the authenticated user, which weir
// never has; they stay so that tools reading combined logs line up.
const combinedTemplate = `$client_ip - - [$time_local] "$request" $status $bytes_sent "$referer" "$user_agent"`

// jsonKeys lists the keys of a JSON line and the field each holds, in
// order; quoted marks the string values.
var jsonKeys = [...]struct {
	key    string
	f      field
	quoted bool
}{
	{"time", fieldTimeISO, true},
	{"service", fieldService, true},
	{"route", fieldRoute, true},
	{"client_ip", fieldClientIP, true},
	{"client_port", fieldClientPort, false},
	{"method", fieldMethod, true},
	{"host", fieldHost, true},
	{"path", fieldPath, true},
	{"protocol", fieldProtocol, true},
	{"status", fieldStatus, false},
	{"bytes_received", fieldBytesReceived, false},
	{"bytes_sent", fieldBytesSent, false},
	{"duration", fieldDuration, false},
	{"upstream", fieldUpstream, true},
	{"upstream_connect", fieldUpstreamConnect, false},
	{"upstream_first_byte", fieldUpstreamFirstByte, false},
	{"attempts", fieldAttempts, false},
	{"tls_version", fieldTLSVersion, true},
	{"sni", fieldSNI, true},
	{"request_id", fieldRequestID, true},
	{"user_agent", fieldUserAgent, true},
	{"referer", fieldReferer, true},
	{"reason", fieldReason, true},
}

// Format is a parsed access log format: combined, json or a template.
// It is immutable, so one Format may serve any number of goroutines.
type Format struct {
	src  string
	json bool
	segs []segment
}

// segment is literal text followed by one field (or none, at the end).
type segment struct {
	lit string
	f   field
}

// ParseFormat parses an access log format: "combined" (the NGINX/Apache
// combined log format), "json" (one JSON object per line), or a template
// of fields written $name or ${name} among literal text, for example
// `$time_iso $client $method $host$path $status $duration`. Write $$ for
// a literal dollar. The README lists the fields.
//
// Errors wrap ErrBadFormat and say what to change: an unknown field is
// named, with the closest valid one.
func ParseFormat(s string) (*Format, error) {
	switch s {
	case Combined:
		f, err := parseTemplate(combinedTemplate)
		if err != nil {
			panic("accesslog: the combined template does not parse: " + err.Error())
		}
		f.src = Combined
		return f, nil
	case JSON:
		return jsonFormat(), nil
	case "":
		return nil, fmt.Errorf("%w: empty; want %q, %q or a template of $fields", ErrBadFormat, Combined, JSON)
	}
	return parseTemplate(s)
}

// String returns the format as it was given to ParseFormat.
func (f *Format) String() string { return f.src }

// Append appends the line r makes in format f, newline included, to dst
// and returns the extended slice. It allocates nothing once dst has room
// (MaxLine is always enough).
func (f *Format) Append(dst []byte, r *Record) []byte {
	for i := range f.segs {
		s := &f.segs[i]
		dst = append(dst, s.lit...)
		if s.f != fieldNone {
			dst = appendField(dst, s.f, r, f.json)
		}
	}
	return append(dst, '\n')
}

// jsonFormat builds the json format: a template whose literals are the
// keys and quotes, and whose fields are written JSON-escaped.
func jsonFormat() *Format {
	f := &Format{src: JSON, json: true, segs: make([]segment, 0, len(jsonKeys)+1)}
	var lit strings.Builder
	lit.WriteByte('{')
	for i, k := range jsonKeys {
		if i > 0 {
			lit.WriteByte(',')
		}
		lit.WriteString(`"` + k.key + `":`)
		if k.quoted {
			lit.WriteByte('"')
		}
		f.segs = append(f.segs, segment{lit: lit.String(), f: k.f})
		lit.Reset()
		if k.quoted {
			lit.WriteByte('"')
		}
	}
	lit.WriteByte('}')
	f.segs = append(f.segs, segment{lit: lit.String()})
	return f
}

// parseTemplate parses a template of $name and ${name} fields.
func parseTemplate(s string) (*Format, error) {
	f := &Format{src: s}
	var lit strings.Builder
	maxLen := 1 // the newline
	for i := 0; i < len(s); {
		c := s[i]
		if c != '$' {
			if (c < 0x20 && c != '\t') || c == 0x7f {
				return nil, fmt.Errorf("%w: control character %#02x at byte %d; a line may hold text, tabs and $fields only", ErrBadFormat, c, i)
			}
			lit.WriteByte(c)
			i++
			continue
		}
		name, next, err := fieldName(s, i)
		if err != nil {
			return nil, err
		}
		if name == "$" {
			lit.WriteByte('$')
			i = next
			continue
		}
		fl, ok := lookupField(name)
		if !ok {
			return nil, unknownField(s, i, name)
		}
		maxLen += lit.Len() + fields[fl].maxLen
		f.segs = append(f.segs, segment{lit: lit.String(), f: fl})
		lit.Reset()
		i = next
	}
	if len(f.segs) == 0 {
		return nil, noField(s)
	}
	if lit.Len() > 0 {
		maxLen += lit.Len()
		f.segs = append(f.segs, segment{lit: lit.String()})
	}
	if maxLen > MaxLine {
		return nil, fmt.Errorf("%w: a line could take %d bytes, over the %d a line may have: name fewer long fields (path, request, referer, user_agent)", ErrBadFormat, maxLen, MaxLine)
	}
	return f, nil
}

// fieldName reads the field whose '$' is at s[i] and returns its name
// ("$" for "$$") and the index after it.
func fieldName(s string, i int) (name string, next int, err error) {
	j := i + 1
	switch {
	case j == len(s):
		return "", 0, fmt.Errorf("%w: the template ends with a lone $; write $$ for a dollar sign", ErrBadFormat)
	case s[j] == '$':
		return "$", j + 1, nil
	case s[j] == '{':
		end := strings.IndexByte(s[j:], '}')
		if end < 0 {
			return "", 0, fmt.Errorf("%w: ${ at byte %d has no closing }", ErrBadFormat, i)
		}
		name = s[j+1 : j+end]
		if name == "" {
			return "", 0, fmt.Errorf("%w: empty ${} at byte %d", ErrBadFormat, i)
		}
		return name, j + end + 1, nil
	}
	k := j
	for k < len(s) && isNameByte(s[k]) {
		k++
	}
	if k == j {
		return "", 0, fmt.Errorf("%w: $ at byte %d is not followed by a field name; write $$ for a dollar sign", ErrBadFormat, i)
	}
	return s[j:k], k, nil
}

// isNameByte reports whether c may appear in a bare $name.
func isNameByte(c byte) bool {
	return c == '_' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9')
}

// unknownField words the error for a name that is not a field: the
// closest field, or the field an nginx variable corresponds to, or a
// field the name starts with, then every valid name.
func unknownField(s string, at int, name string) error {
	var hint string
	if nf, ok := nginxNames[name]; ok {
		hint = fmt.Sprintf("; nginx's $%s is $%s here", name, fields[nf].name)
	} else if best, ok := suggest.Closest(name, fieldNames()); ok {
		hint = fmt.Sprintf("; did you mean %q?", best)
	} else if p := fieldPrefix(name); p != "" {
		hint = fmt.Sprintf("; write ${%s} to end the name before %q", p, name[len(p):])
	}
	return fmt.Errorf("%w: unknown field %q at byte %d%s (fields: %s)",
		ErrBadFormat, name, at, hint, strings.Join(fieldNames(), ", "))
}

// fieldPrefix returns the longest field name that name starts with and
// that a bare $name would have ended on, or "".
func fieldPrefix(name string) string {
	best := ""
	for _, n := range fieldNames() {
		if len(n) > len(best) && strings.HasPrefix(name, n) {
			best = n
		}
	}
	return best
}

// noField words the error for a format that is neither built in nor a
// template: most likely a misspelt "combined" or "json".
func noField(s string) error {
	if best, ok := suggest.Closest(s, []string{Combined, JSON}); ok {
		return fmt.Errorf("%w: %q is not a format; did you mean %q?", ErrBadFormat, s, best)
	}
	return fmt.Errorf("%w: %q names no $field; want %q, %q or a template such as %q",
		ErrBadFormat, s, Combined, JSON, "$time_iso $client $request $status")
}
