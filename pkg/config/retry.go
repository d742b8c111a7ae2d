package config

import (
	"fmt"
	"math"
	"strings"

	"github.com/weir-lb/weir/pkg/retry"
	"gopkg.in/yaml.v3"
)

// retryKeys are the keys of a retry mapping, and budgetKeys of its
// budget.
var (
	retryKeys  = []string{"on", "attempts", "per_try_timeout", "budget"}
	budgetKeys = []string{"percent", "min_concurrency"}
)

// defaultRetryAttempts is a retry policy's attempts when not written:
// the first try and one retry.
const defaultRetryAttempts = 2

// maxRetryAttempts bounds attempts: more tries than this only lengthen
// an outage's answers.
const maxRetryAttempts = 10

// retryExample is a retry block as the error messages show it.
const retryExample = `retry: {on: [connect, reset, 503], attempts: 3}`

// retryPolicy reads the retry key of an HTTP pool or a route into the
// policy pkg/retry applies, its budget's defaults filled in (Envoy's:
// 20 % of the requests under way, at least 3 retries at once).
func (p *parser) retryPolicy(m *mapping) *retry.Policy {
	n := m.get("retry")
	if n == nil {
		return nil
	}
	rm := p.mapping(n, m.at("retry"), retryKeys)
	if rm == nil {
		return nil
	}
	pol := &retry.Policy{
		Attempts: defaultRetryAttempts,
		Budget:   &retry.Budget{Percent: retry.DefaultBudgetPercent, MinConcurrency: retry.DefaultBudgetMinConcurrency},
	}
	if !rm.has("on") {
		rm.missing("on", "say which failures are retried, as in "+retryExample+"; the conditions are connect, reset, timeout, 502, 503 and 504")
	}
	pol.On = p.retryConditions(rm)
	if an := rm.get("attempts"); an != nil {
		if v, ok := p.integer(an, rm.at("attempts"), "a whole number of tries"); ok {
			if v < 1 || v > maxRetryAttempts {
				p.errorf(an, rm.at("attempts"), "must be 1 to %d, got %d; attempts counts every try, the first included (2: one retry)", maxRetryAttempts, v)
			} else {
				pol.Attempts = v
			}
		}
	}
	rm.duration("per_try_timeout", &pol.PerTryTimeout, true)
	if bn := rm.get("budget"); bn != nil {
		if bm := p.mapping(bn, rm.at("budget"), budgetKeys); bm != nil {
			bm.integer("percent", &pol.Budget.Percent, 0, 100)
			bm.integer("min_concurrency", &pol.Budget.MinConcurrency, 0, math.MaxInt)
		}
	}
	return pol
}

// retryConditions reads the on: list of a retry block: condition names
// and the statuses 502, 503 and 504, written as numbers or strings.
func (p *parser) retryConditions(m *mapping) retry.Conditions {
	items, ok := m.list("on", retryExample)
	if !ok {
		return 0
	}
	if len(items) == 0 {
		p.errorf(m.get("on"), m.at("on"), "the list is empty; name the failures to retry, as in %s", retryExample)
		return 0
	}
	names := make([]string, 0, retry.NumReasons)
	for _, r := range retry.Reasons() {
		names = append(names, r.String())
	}
	var c retry.Conditions
	for i, item := range items {
		path := fmt.Sprintf("%s[%d]", m.at("on"), i)
		if item.Kind != yaml.ScalarNode || (item.ShortTag() != tagStr && item.ShortTag() != tagInt) {
			p.wrongType(item, path, "a condition: connect, reset, timeout, 502, 503 or 504")
			continue
		}
		r, err := retry.ParseReason(item.Value)
		if err != nil {
			hint := didYouMean(item.Value, names, "conditions")
			if strings.HasPrefix(item.Value, "5") {
				hint = "only the gateway statuses 502, 503 and 504 are retried: another 5xx says the backend processed the request and failed, and may do so again"
			}
			p.errorf(item, path, "unknown retry condition %s; %s", quote(item.Value), hint)
			continue
		}
		if c.Has(r) {
			p.errorf(item, path, "%s is listed twice; remove one", quote(item.Value))
			continue
		}
		c |= retry.Of(r)
	}
	return c
}

// retryConflict refuses max_retries on a route that a retry policy
// governs, its own or its pool's: the policy's attempts and conditions
// decide its retries, connection failures included, and max_retries
// would be ignored.
func (p *parser) retryConflict(m *mapping, r *Route) {
	if !m.has("max_retries") {
		return
	}
	switch {
	case r.Retry != nil:
		p.errorf(m.keys["max_retries"], m.at("max_retries"),
			"a route with retry takes its retries from it, connection failures included (the connect condition); remove max_retries and set retry.attempts")
	case r.Route.Upstream != "" && p.pools[r.Route.Upstream] != nil && p.pools[r.Route.Upstream].up != nil && p.pools[r.Route.Upstream].up.Retry != nil:
		p.errorf(m.keys["max_retries"], m.at("max_retries"),
			"pool %s has a retry policy, which governs this route's retries, connection failures included; remove max_retries, or give the route its own retry block", quote(r.Route.Upstream))
	}
}
