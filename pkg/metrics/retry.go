package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/weir-lb/weir/pkg/l7"
	"github.com/weir-lb/weir/pkg/retry"
)

// retryCounters are a service's retry counters, one per reason, resolved
// once: counting a request's retries looks nothing up.
type retryCounters struct {
	byReason [retry.NumReasons]prometheus.Counter // [retry.None] is nil
	denied   prometheus.Counter
}

func newRetryCounters(f *httpFamilies, service string) retryCounters {
	var c retryCounters
	for _, r := range retry.Reasons() {
		c.byReason[r] = f.retries.WithLabelValues(service, r.String())
	}
	c.denied = f.budgetExceeded.WithLabelValues(service)
	return c
}

// done counts the retries of the request sess, and whether its budget
// refused one.
func (c *retryCounters) done(sess *l7.Session) {
	if sess.Attempts > 1 {
		for _, r := range retry.Reasons() {
			if n := sess.Retries[r]; n > 0 {
				c.byReason[r].Add(float64(n))
			}
		}
	}
	if sess.RetryDenied {
		c.denied.Inc()
	}
}
