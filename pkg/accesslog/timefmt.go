package accesslog

import "time"

// appendTimeLocal appends t as nginx's $time_local writes it,
// "02/Jan/2006:15:04:05 -0700". It is time.Time.AppendFormat for that one
// layout, without interpreting the layout on every line: a third of a
// combined line's cost was the generic formatter.
func appendTimeLocal(dst []byte, t time.Time) []byte {
	year, month, day := t.Date()
	hour, min, sec := t.Clock()
	dst = append2(dst, day)
	dst = append(dst, '/')
	dst = append(dst, month.String()[:3]...)
	dst = append(dst, '/')
	dst = append4(dst, year)
	dst = append(dst, ':')
	dst = appendClock(dst, hour, min, sec)
	dst = append(dst, ' ')
	_, offset := t.Zone()
	return appendOffset(dst, offset, false)
}

// appendTimeISO appends t in RFC 3339 with milliseconds,
// "2006-01-02T15:04:05.000Z07:00".
func appendTimeISO(dst []byte, t time.Time) []byte {
	year, month, day := t.Date()
	hour, min, sec := t.Clock()
	dst = append4(dst, year)
	dst = append(dst, '-')
	dst = append2(dst, int(month))
	dst = append(dst, '-')
	dst = append2(dst, day)
	dst = append(dst, 'T')
	dst = appendClock(dst, hour, min, sec)
	ms := t.Nanosecond() / 1e6
	dst = append(dst, '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10))
	_, offset := t.Zone()
	if offset == 0 {
		return append(dst, 'Z')
	}
	return appendOffset(dst, offset, true)
}

func appendClock(dst []byte, hour, min, sec int) []byte {
	dst = append2(dst, hour)
	dst = append(dst, ':')
	dst = append2(dst, min)
	dst = append(dst, ':')
	return append2(dst, sec)
}

// appendOffset appends a zone offset as -0700, or -07:00 with colon.
func appendOffset(dst []byte, offset int, colon bool) []byte {
	sign := byte('+')
	if offset < 0 {
		sign, offset = '-', -offset
	}
	dst = append(dst, sign)
	dst = append2(dst, offset/3600)
	if colon {
		dst = append(dst, ':')
	}
	return append2(dst, offset/60%60)
}

// append2 appends n, 0 to 99, in two digits.
func append2(dst []byte, n int) []byte {
	return append(dst, byte('0'+n/10), byte('0'+n%10))
}

// append4 appends a year of 0 to 9999 in four digits, as time's layouts
// do; other years go out in full.
func append4(dst []byte, n int) []byte {
	if n < 0 || n > 9999 {
		return append(dst, time.Date(n, 1, 1, 0, 0, 0, 0, time.UTC).Format("2006")...)
	}
	return append(dst, byte('0'+n/1000), byte('0'+n/100%10), byte('0'+n/10%10), byte('0'+n%10))
}
