package metrics

import (
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// namespace prefixes every weir metric.
const namespace = "weir"

// Build identifies the running binary in weir_build_info.
type Build struct {
	Version string
	Commit  string
}

// Metrics is one process's metrics: the registry /metrics serves and the
// families the services count into. Make one with New.
type Metrics struct {
	// Registry holds every family, plus the Go runtime and process
	// collectors.
	Registry *prometheus.Registry

	http    httpFamilies
	route   routeFamilies
	backend backendFamilies
	process processFamilies
	slots   slotFamilies

	mu sync.Mutex
	// services are the HTTP services, by name, for the status report.
	services map[string]*HTTPService
	// sources report backend state and L4 counters at scrape time.
	balancers []balancerSource
	l4        []L4Source
	bgp       []BGPSource
	// limits are the HTTP services' overload protection (limits.go),
	// whose collector registers with the first.
	limitsOnce sync.Once
	limits     []LimitSource
}

// New registers every family in a fresh registry.
func New(build Build) *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry(), services: map[string]*HTTPService{}}
	m.http = newHTTPFamilies()
	m.route = newRouteFamilies()
	m.backend = newBackendFamilies()
	m.process = newProcessFamilies()
	m.slots = newSlotFamilies()
	m.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.http.register(m.Registry)
	m.route.register(m.Registry)
	m.backend.register(m.Registry)
	m.process.register(m.Registry)
	m.Registry.MustRegister(&scrapeCollector{m: m})
	m.Registry.MustRegister(&slotCollector{m: m}, m.slots.wait)
	m.process.buildInfo.WithLabelValues(orUnknown(build.Version), orUnknown(build.Commit), runtime.Version()).Set(1)
	return m
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// processFamilies are the families of the process as a whole.
type processFamilies struct {
	buildInfo      *prometheus.GaugeVec
	upgrades       *prometheus.CounterVec
	reloads        *prometheus.CounterVec
	configLoad     prometheus.Gauge
	configLoadedAt prometheus.Gauge
}

func newProcessFamilies() processFamilies {
	return processFamilies{
		buildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "build_info",
			Help: "Always 1; its labels name the running weir's version, commit and Go version.",
		}, []string{"version", "commit", "goversion"}),
		upgrades: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "upgrades_total",
			Help: "Binary upgrades (SIGQUIT) this process took part in, by result: succeeded (this process took over from its predecessor) or failed (this process tried to hand over and stayed).",
		}, []string{"result"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "reloads_total",
			Help: "Configuration reloads (SIGHUP) this process took part in, by result, as for weir_upgrades_total.",
		}, []string{"result"}),
		configLoad: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "config_load_duration_seconds",
			Help: "How long loading and checking the configuration in service took.",
		}),
		configLoadedAt: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "config_last_load_timestamp_seconds",
			Help: "When the configuration in service was loaded, in seconds since the Unix epoch.",
		}),
	}
}

func (f *processFamilies) register(r *prometheus.Registry) {
	r.MustRegister(f.buildInfo, f.upgrades, f.reloads, f.configLoad, f.configLoadedAt)
}

// Upgrade results, for UpgradeDone and ReloadDone.
const (
	Succeeded = "succeeded"
	Failed    = "failed"
)

// UpgradeDone counts a binary upgrade with its result (Succeeded or
// Failed).
func (m *Metrics) UpgradeDone(result string) { m.process.upgrades.WithLabelValues(result).Inc() }

// ReloadDone counts a configuration reload with its result.
func (m *Metrics) ReloadDone(result string) { m.process.reloads.WithLabelValues(result).Inc() }

// ConfigLoaded records when the configuration in service was loaded and
// how long that took.
func (m *Metrics) ConfigLoaded(at time.Time, took time.Duration) {
	m.process.configLoadedAt.Set(float64(at.UnixNano()) / 1e9)
	m.process.configLoad.Set(took.Seconds())
}

// AccessLog exports the drop count of the access log written to path:
// dropped is read at every scrape.
func (m *Metrics) AccessLog(path string, dropped func() uint64) {
	m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace: namespace, Name: "access_log_dropped_total",
		Help:        "Access log lines dropped because the log's writer could not keep up (a slow disk, a full pipe).",
		ConstLabels: prometheus.Labels{"path": path},
	}, func() float64 { return float64(dropped()) }))
}
