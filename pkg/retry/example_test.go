package retry_test

import (
	"fmt"
	"time"

	"github.com/weir-lb/weir/pkg/retry"
)

// A proxy's use of a policy: count the request in the budget, and after a
// failed try ask the policy, then the budget, before trying again.
func Example() {
	on := retry.Of(retry.Connect, retry.Status503)
	pol := &retry.Policy{
		On:            on,
		Attempts:      3, // the first try and at most two retries
		PerTryTimeout: 2 * time.Second,
		Budget:        &retry.Budget{Percent: retry.DefaultBudgetPercent, MinConcurrency: 1},
	}
	if err := pol.Validate(); err != nil {
		panic(err)
	}

	pol.Budget.Start() // a request begins
	tries := 1         // its first try answered 503
	reason := retry.ForStatus(503)
	if pol.Retries(reason, tries) && pol.Budget.Acquire() {
		pol.Counted(reason)
		fmt.Println("retry after", reason)
		// ... the second try ...
		pol.Budget.Release()
	}
	pol.Budget.Done()

	// With one request under way and a floor of one, a second retry at
	// once is refused.
	pol.Budget.Start()
	fmt.Println(pol.Budget.Acquire(), pol.Budget.Acquire())
	pol.Budget.Release()
	pol.Budget.Done()

	fmt.Printf("%s: %+v\n", pol.On, pol.Stats().Total)
	// Output:
	// retry after 503
	// true false
	// connect,503: 1
}
