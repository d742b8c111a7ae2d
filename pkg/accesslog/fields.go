package accesslog

// field names one value of a Record as a template writes it.
type field uint8

// The fields, in the order the README and error messages list them.
const (
	fieldNone field = iota
	fieldTimeLocal
	fieldTimeISO
	fieldClient
	fieldClientIP
	fieldClientPort
	fieldMethod
	fieldHost
	fieldPath
	fieldProtocol
	fieldRequest
	fieldStatus
	fieldBytesReceived
	fieldBytesSent
	fieldDuration
	fieldUpstream
	fieldUpstreamConnect
	fieldUpstreamFirstByte
	fieldAttempts
	fieldTLSVersion
	fieldSNI
	fieldRequestID
	fieldUserAgent
	fieldReferer
	fieldReason
	fieldService
	fieldRoute
	numFields
)

// Output bounds, in bytes, of the values a field can write. Text fields
// are cut to their bound (ending in "...") once escaped, so that a
// hostile request cannot make a line grow without limit: every line fits
// in MaxLine, which ParseFormat checks once per format.
const (
	maxNumber   = 20 // an int64, sign included
	maxSeconds  = 17 // 9223372036.854775: the longest time.Duration
	maxTime     = 40 // a year of up to 12 digits; time.Now() needs 26 to 29
	maxZone     = 32 // an IPv6 zone (an interface name in practice)
	maxClientIP = 39 + 1 + maxZone
	maxClient   = 1 + maxClientIP + 2 + 5 // [ip%zone]:port
	maxMethod   = 32
	maxProtocol = 32
)

// fieldInfo describes one field: its template name and the most bytes it
// writes.
type fieldInfo struct {
	name   string
	maxLen int
}

// fields is indexed by field. It is never written to.
var fields = [numFields]fieldInfo{
	fieldTimeLocal:         {"time_local", maxTime},
	fieldTimeISO:           {"time_iso", maxTime},
	fieldClient:            {"client", maxClient},
	fieldClientIP:          {"client_ip", maxClientIP},
	fieldClientPort:        {"client_port", 5},
	fieldMethod:            {"method", maxMethod},
	fieldHost:              {"host", 256},
	fieldPath:              {"path", 4096},
	fieldProtocol:          {"protocol", maxProtocol},
	fieldRequest:           {"request", maxMethod + 1 + 4096 + 1 + maxProtocol},
	fieldStatus:            {"status", maxNumber},
	fieldBytesReceived:     {"bytes_received", maxNumber},
	fieldBytesSent:         {"bytes_sent", maxNumber},
	fieldDuration:          {"duration", maxSeconds},
	fieldUpstream:          {"upstream", 256},
	fieldUpstreamConnect:   {"upstream_connect", maxSeconds},
	fieldUpstreamFirstByte: {"upstream_first_byte", maxSeconds},
	fieldAttempts:          {"attempts", maxNumber},
	fieldTLSVersion:        {"tls_version", 32},
	fieldSNI:               {"sni", 256},
	fieldRequestID:         {"request_id", 128},
	fieldUserAgent:         {"user_agent", 1024},
	fieldReferer:           {"referer", 2048},
	fieldReason:            {"reason", 128},
	fieldService:           {"service", 256},
	fieldRoute:             {"route", 256},
}

// lookupField returns the field a template name stands for.
func lookupField(name string) (field, bool) {
	for f := fieldNone + 1; f < numFields; f++ {
		if fields[f].name == name {
			return f, true
		}
	}
	return fieldNone, false
}

// fieldNames lists every template name, in order.
func fieldNames() []string {
	names := make([]string, 0, numFields-1)
	for f := fieldNone + 1; f < numFields; f++ {
		names = append(names, fields[f].name)
	}
	return names
}

// nginxNames maps the nginx variables people write by habit to the field
// that holds the same value, so that the error can say which to use.
var nginxNames = map[string]field{
	"remote_addr":           fieldClientIP,
	"remote_port":           fieldClientPort,
	"time_iso8601":          fieldTimeISO,
	"request_method":        fieldMethod,
	"request_uri":           fieldPath,
	"uri":                   fieldPath,
	"http_host":             fieldHost,
	"server_protocol":       fieldProtocol,
	"body_bytes_sent":       fieldBytesSent,
	"request_time":          fieldDuration,
	"upstream_addr":         fieldUpstream,
	"upstream_connect_time": fieldUpstreamConnect,
	"upstream_header_time":  fieldUpstreamFirstByte,
	"ssl_protocol":          fieldTLSVersion,
	"ssl_server_name":       fieldSNI,
	"http_x_request_id":     fieldRequestID,
	"http_user_agent":       fieldUserAgent,
	"http_referer":          fieldReferer,
}
