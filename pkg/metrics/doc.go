// Package metrics holds weir's Prometheus metrics: every family, its
// registry, and the hot-path handles that count requests without looking
// anything up by label.
//
// An HTTP service counts through an *HTTPService, an l7.Observer. Its
// per-backend counters are resolved once, when the backend joins the
// service's load balancer (lb.Options.Attach), and reached on every
// request through the backend itself (lb.Backend.Ext): counting a request
// is a few atomic adds and two histogram observations, with no
// allocation and no map lookup. Backend health, weights and the L4 data
// plane's counters are read when Prometheus scrapes, not kept up to date
// on the way.
//
// README.md lists every metric, its labels and its meaning.
package metrics
