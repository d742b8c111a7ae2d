package accesslog

import (
	"strconv"
	"time"
)

// Time layouts: nginx's $time_local, and RFC 3339 with milliseconds.
const (
	layoutLocal = "02/Jan/2006:15:04:05 -0700"
	layoutISO   = "2006-01-02T15:04:05.000Z07:00"
)

// appendField appends one field of r: escaped for a JSON string when
// json is set, else for a text line, where a missing value is "-".
func appendField(dst []byte, f field, r *Record, json bool) []byte {
	limit := fields[f].maxLen
	switch f {
	case fieldTimeLocal:
		return appendTimeLocal(dst, r.Start)
	case fieldTimeISO:
		return appendTimeISO(dst, r.Start)
	case fieldClient:
		return appendClient(dst, r, json)
	case fieldClientIP:
		return appendClientIP(dst, r, json)
	case fieldClientPort:
		if !r.Client.IsValid() && !json {
			return append(dst, '-')
		}
		return strconv.AppendUint(dst, uint64(r.Client.Port()), 10)
	case fieldMethod:
		return appendString(dst, r.Method, limit, json)
	case fieldHost:
		return appendString(dst, r.Host, limit, json)
	case fieldPath:
		return appendString(dst, r.Target, limit, json)
	case fieldProtocol:
		return appendString(dst, r.Proto, limit, json)
	case fieldRequest:
		return appendRequest(dst, r, json)
	case fieldStatus:
		if r.Status == 0 && !json {
			return append(dst, "000"...) // nginx's $status before any response
		}
		return strconv.AppendInt(dst, int64(r.Status), 10)
	case fieldBytesReceived:
		return strconv.AppendInt(dst, r.BytesReceived, 10)
	case fieldBytesSent:
		return strconv.AppendInt(dst, r.BytesSent, 10)
	case fieldDuration:
		return appendSeconds(dst, r.Duration)
	case fieldUpstream:
		return appendString(dst, r.Upstream, limit, json)
	case fieldUpstreamConnect:
		return appendSeconds(dst, r.Connect)
	case fieldUpstreamFirstByte:
		return appendSeconds(dst, r.FirstByte)
	case fieldAttempts:
		return strconv.AppendInt(dst, int64(r.Attempts), 10)
	case fieldTLSVersion:
		return appendString(dst, r.TLSVersion, limit, json)
	case fieldSNI:
		return appendString(dst, r.SNI, limit, json)
	case fieldRequestID:
		return appendString(dst, r.RequestID, limit, json)
	case fieldUserAgent:
		return appendString(dst, r.UserAgent, limit, json)
	case fieldReferer:
		return appendString(dst, r.Referer, limit, json)
	case fieldReason:
		return appendString(dst, r.Reason, limit, json)
	case fieldService:
		return appendString(dst, r.Service, limit, json)
	case fieldRoute:
		return appendString(dst, r.Route, limit, json)
	}
	return dst
}

// appendString appends a text value escaped for the line's kind.
func appendString[T bytesOrString](dst []byte, s T, limit int, json bool) []byte {
	if json {
		return appendJSON(dst, s, limit)
	}
	return appendText(dst, s, limit)
}

// appendRequest appends the request line, "GET /path HTTP/1.1", as
// nginx's $request: "-" when nothing of it is known, and "-" for each
// part missing.
func appendRequest(dst []byte, r *Record, json bool) []byte {
	if len(r.Method) == 0 && len(r.Target) == 0 && r.Proto == "" {
		if json {
			return dst
		}
		return append(dst, '-')
	}
	dst = appendPart(dst, r.Method, maxMethod, json)
	dst = append(dst, ' ')
	dst = appendPart(dst, r.Target, fields[fieldPath].maxLen, json)
	dst = append(dst, ' ')
	return appendPart(dst, r.Proto, maxProtocol, json)
}

// appendPart appends one part of the request line, "-" when missing.
func appendPart[T bytesOrString](dst []byte, s T, limit int, json bool) []byte {
	if len(s) == 0 {
		return append(dst, '-')
	}
	return appendString(dst, s, limit, json)
}

// appendClient appends the client as ip:port, [ipv6]:port for IPv6.
func appendClient(dst []byte, r *Record, json bool) []byte {
	if !r.Client.IsValid() {
		if json {
			return dst
		}
		return append(dst, '-')
	}
	ip := r.Client.Addr().Unmap()
	if ip.Is6() {
		dst = append(dst, '[')
		dst = appendIP(dst, r, json)
		dst = append(dst, ']')
	} else {
		dst = appendIP(dst, r, json)
	}
	dst = append(dst, ':')
	return strconv.AppendUint(dst, uint64(r.Client.Port()), 10)
}

// appendClientIP appends the client's address alone, as nginx's
// $remote_addr.
func appendClientIP(dst []byte, r *Record, json bool) []byte {
	if !r.Client.IsValid() {
		if json {
			return dst
		}
		return append(dst, '-')
	}
	return appendIP(dst, r, json)
}

// appendIP appends the client's address, IPv4-mapped IPv6 as IPv4 (a
// dual-stack listener's view of an IPv4 client). A zone is escaped like
// any text, since netip accepts any string as one.
func appendIP(dst []byte, r *Record, json bool) []byte {
	ip := r.Client.Addr().Unmap()
	zone := ip.Zone()
	dst = ip.WithZone("").AppendTo(dst)
	if zone == "" {
		return dst
	}
	dst = append(dst, '%')
	return appendString(dst, zone, maxZone, json)
}

// appendSeconds appends d in seconds with microseconds, "0.001250":
// exact integer arithmetic, where a float64 would print 0.30000000000000004.
// A negative duration, which only a clock step can make, is written 0.
func appendSeconds(dst []byte, d time.Duration) []byte {
	d = max(d, 0)
	dst = strconv.AppendInt(dst, int64(d/time.Second), 10)
	us := int64(d % time.Second / time.Microsecond)
	dst = append(dst, '.')
	for div := int64(100000); div > 0; div /= 10 {
		dst = append(dst, byte('0'+us/div%10))
	}
	return dst
}
