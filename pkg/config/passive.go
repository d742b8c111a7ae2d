package config

import (
	"math"

	"github.com/weir-lb/weir/pkg/lb"
	"gopkg.in/yaml.v3"
)

// outlierKeys are the keys of an outlier_detection mapping.
var outlierKeys = []string{
	"consecutive_gateway_failures", "consecutive_5xx", "base_ejection", "max_ejection", "max_ejection_percent",
}

// passiveHealth reads the keys of an HTTP pool about failing and
// returning backends: outlier_detection and slow_start. Selection must
// have been read: slow start is refused with a hashing one.
func (p *parser) passiveHealth(m *mapping, u *Upstream) {
	if n := m.get("outlier_detection"); n != nil {
		u.Outlier = p.outlierDetection(n, m.at("outlier_detection"))
	}
	if !m.duration("slow_start", &u.SlowStart, false) || u.SlowStart == 0 || !u.Selection.Hashed() {
		return
	}
	// lb ramps weighted selections only: ramping a hashing one would
	// move keys between backends at every step, worse for a cache or a
	// session tier than a cold backend taking its share at once. A key
	// that does nothing is an error here, as hash_key is with round_robin.
	p.errorf(m.keys["slow_start"], m.at("slow_start"),
		"slow start does not ramp a hashing selection (%s): every weight change would move keys between backends; remove slow_start, or choose round_robin, random or least_loaded", u.Selection)
	u.SlowStart = 0
}

// outlierDetection reads an outlier_detection mapping into the type
// pkg/lb takes, with lb's defaults for the keys not written.
func (p *parser) outlierDetection(n *yaml.Node, path string) *lb.OutlierDetection {
	m := p.mapping(n, path, outlierKeys)
	if m == nil {
		return nil
	}
	o := &lb.OutlierDetection{
		ConsecutiveGatewayFailures: lb.DefaultConsecutiveGatewayFailures,
		BaseEjection:               lb.DefaultBaseEjection,
		MaxEjectionPercent:         lb.DefaultMaxEjectionPercent,
	}
	m.integer("consecutive_gateway_failures", &o.ConsecutiveGatewayFailures, 1, math.MaxInt32)
	m.integer("consecutive_5xx", &o.Consecutive5xx, 0, math.MaxInt32)
	m.duration("base_ejection", &o.BaseEjection, true)
	// As in lb, the default cap never cuts a longer base short.
	o.MaxEjection = max(lb.DefaultMaxEjection, o.BaseEjection)
	if m.duration("max_ejection", &o.MaxEjection, true) && o.MaxEjection < o.BaseEjection {
		p.errorf(m.get("max_ejection"), m.at("max_ejection"),
			"max_ejection %v is shorter than base_ejection %v, the length of a first ejection; raise max_ejection or lower base_ejection",
			o.MaxEjection, o.BaseEjection)
	}
	m.integer("max_ejection_percent", &o.MaxEjectionPercent, 1, 100)
	return o
}

// checkPrimaries refuses a backend list of backups only: a backup serves
// when no primary can, so without a primary nothing would ever be tried
// first.
func (p *parser) checkPrimaries(m *mapping, backends []BackendSpec) {
	if len(backends) == 0 {
		return
	}
	for _, b := range backends {
		if !b.Backup {
			return
		}
	}
	p.errorf(m.get("backends"), m.at("backends"),
		"every backend is a backup; a backup serves only when no primary backend can, so leave backup: true off at least one of them")
}
