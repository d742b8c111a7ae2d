package bgp

import (
	"fmt"
	"strconv"
	"strings"
)

// Community is a standard BGP community (RFC 1997): the high 16 bits are
// conventionally an AS number, the low 16 bits a value that AS defines.
type Community uint32

// Well-known communities (RFC 1997), which routers act on without any
// configuration.
const (
	NoExport          Community = 0xFFFFFF01
	NoAdvertise       Community = 0xFFFFFF02
	NoExportSubconfed Community = 0xFFFFFF03
)

// wellKnown names the communities ParseCommunity accepts by name, in the
// spelling BIRD and most router configurations use.
var wellKnown = map[string]Community{
	"no-export":           NoExport,
	"no-advertise":        NoAdvertise,
	"no-export-subconfed": NoExportSubconfed,
}

// ParseCommunity parses "ASN:VALUE" (each 0-65535, as in "64496:100") or
// one of the well-known names no-export, no-advertise and
// no-export-subconfed.
func ParseCommunity(s string) (Community, error) {
	if c, ok := wellKnown[strings.ToLower(s)]; ok {
		return c, nil
	}
	hi, lo, ok := strings.Cut(s, ":")
	if !ok {
		return 0, fmt.Errorf("community %q: want ASN:VALUE (such as 64496:100) or no-export, no-advertise, no-export-subconfed", s)
	}
	asn, err := strconv.ParseUint(hi, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("community %q: AS part is not a number from 0 to 65535", s)
	}
	val, err := strconv.ParseUint(lo, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("community %q: value part is not a number from 0 to 65535", s)
	}
	return Community(asn<<16 | val), nil
}

// ParseCommunities parses each of ss with ParseCommunity.
func ParseCommunities(ss []string) ([]Community, error) {
	out := make([]Community, 0, len(ss))
	for _, s := range ss {
		c, err := ParseCommunity(s)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// String formats c as ParseCommunity accepts it: a well-known name, or
// "ASN:VALUE".
func (c Community) String() string {
	for name, w := range wellKnown {
		if c == w {
			return name
		}
	}
	return strconv.FormatUint(uint64(c>>16), 10) + ":" + strconv.FormatUint(uint64(c&0xFFFF), 10)
}
