package route

import "strings"

// Shadow is a route that can never match: every request it would take,
// an earlier route takes first.
type Shadow struct {
	// Route is the index of the unreachable route.
	Route int
	// By is the index of the earlier route that takes its requests.
	By int
}

// Unreachable returns the routes of a list (first match wins) that can
// never match because one earlier route matches every request they
// would, each with the first such route. It is conservative: it reports
// a route only when that is certain from the conditions alone, so a
// route covered by several earlier routes together, or by a regular
// expression that differs in text, is not reported.
func Unreachable(routes []Route) []Shadow {
	var out []Shadow
	for i := range routes {
		for j := range i {
			if covers(routes[j].Match, routes[i].Match) {
				out = append(out, Shadow{Route: i, By: j})
				break
			}
		}
	}
	return out
}

// covers reports whether every request that b matches, a matches too.
// A false result means "not certain", not "certainly not".
func covers(a, b Match) bool {
	return coversHosts(a.Hosts, b.Hosts) &&
		coversPath(a.Path, b.Path) &&
		coversMethods(a.Methods, b.Methods) &&
		impliedFields(a.Headers, b.Headers, strings.EqualFold) &&
		impliedFields(a.Query, b.Query, func(x, y string) bool { return x == y })
}

// coversHosts reports whether host set a holds every name of b. No
// hosts means every host.
func coversHosts(a, b []string) bool {
	if len(a) == 0 {
		return true
	}
	if len(b) == 0 {
		return false
	}
	for _, hb := range b {
		covered := false
		for _, ha := range a {
			if coversHost(ha, hb) {
				covered = true
				break
			}
		}
		if !covered {
			return false
		}
	}
	return true
}

// coversHost reports whether pattern a matches every name pattern b
// does: an exact name covers itself; a wildcard "*.x" covers every name
// ending in ".x" and every wildcard "*.x" or "*.y.x".
func coversHost(a, b string) bool {
	a, b = strings.ToLower(a), strings.ToLower(b)
	if a == b {
		return true
	}
	suffix, wild := strings.CutPrefix(a, "*")
	if !wild {
		return false
	}
	// suffix is ".x". A wildcard b, "*.y.x", stands for names ending in
	// ".y.x", all of which end in ".x"; an exact b needs a label before.
	rest := strings.TrimPrefix(b, "*")
	return strings.HasSuffix(rest, suffix) && len(rest) > len(suffix)
}

// coversPath reports whether path condition a matches every path b does.
func coversPath(a, b PathMatch) bool {
	switch {
	case a.Kind == PathAny:
		return true
	case b.Kind == PathAny:
		return false
	case a.Kind == PathRegex && b.Kind == PathRegex:
		return a.Regexp != nil && b.Regexp != nil && a.Regexp.String() == b.Regexp.String()
	case a.Kind == PathRegex && b.Kind == PathExact:
		return a.Regexp != nil && a.Regexp.MatchString(b.Value)
	case a.Kind == PathExact:
		return b.Kind == PathExact && a.Value == b.Value
	case a.Kind == PathPrefix && (b.Kind == PathExact || b.Kind == PathPrefix):
		// A prefix a takes a prefix b's own value, it takes every path
		// below it too (see PathPrefix).
		return coversPrefixPath(a.Value, b.Value)
	}
	return false
}

// coversPrefixPath reports whether a PathPrefix condition with the given
// value matches path: on segment boundaries, so "/api" matches "/api"
// and "/api/v1" but not "/apis", and "/api/" matches paths below "/api/"
// only.
func coversPrefixPath(prefix, path string) bool {
	if strings.HasSuffix(prefix, "/") {
		return strings.HasPrefix(path, prefix)
	}
	return path == prefix || strings.HasPrefix(path, prefix) && path[len(prefix)] == '/'
}

// coversMethods reports whether method set a holds every method of b.
// No methods means every method.
func coversMethods(a, b []string) bool {
	if len(a) == 0 {
		return true
	}
	if len(b) == 0 {
		return false
	}
	for _, m := range b {
		found := false
		for _, n := range a {
			if n == m {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// impliedFields reports whether every condition of a holds for any
// request meeting all of b's: each is one of b's, or a presence test of
// a field b puts any condition on. sameName compares field names.
func impliedFields(a, b []FieldMatch, sameName func(x, y string) bool) bool {
	for _, fa := range a {
		implied := false
		for _, fb := range b {
			if sameName(fa.Name, fb.Name) && impliesField(fb, fa) {
				implied = true
				break
			}
		}
		if !implied {
			return false
		}
	}
	return true
}

// impliesField reports whether condition b on a field guarantees
// condition a on the same field.
func impliesField(b, a FieldMatch) bool {
	switch a.Kind {
	case ValuePresent:
		return true // any condition on a field needs it present
	case ValueExact:
		return b.Kind == ValueExact && b.Value == a.Value
	case ValueRegex:
		return b.Kind == ValueRegex && a.Regexp != nil && b.Regexp != nil && a.Regexp.String() == b.Regexp.String() ||
			b.Kind == ValueExact && a.Regexp != nil && a.Regexp.MatchString(b.Value)
	}
	return false
}
