// Package limit holds the building blocks of weir's overload protection:
// a per-client request rate ([RateLimiter], a token bucket per client
// address or network), a per-client count of concurrent connections
// ([ConnLimiter]) and a global concurrency gate ([Gate]) that lets an
// accept loop stop accepting at a limit and resume below it.
//
// All three are safe for concurrent use and allocate nothing on their hot
// paths once a client is known. Clients are identified by IP address,
// optionally aggregated into networks by a [Key] (an IPv6 client often
// owns a whole /64). Memory is bounded: a RateLimiter tracks at most a
// configured number of clients and evicts the ones whose state is worth
// least; a ConnLimiter holds an entry only while a client has a
// connection open.
package limit
