// Package admin is weir's admin endpoint: Prometheus metrics, a JSON and
// an HTML view of every service and backend, and runtime control
// (drain, enable, reweight, add and remove backends), one HTTP request
// each.
//
// A [Handler] serves a [State], which the running server implements. It
// is safe to expose on loopback addresses and Unix sockets without a
// token: reads are open there, while browsers on other origins cannot
// change anything (CSRF) and pages reached through a rebound DNS name
// are refused (the Host must be a loopback IP or localhost). With a
// token, every change needs it, and on an address other hosts can
// reach, every request does. README.md documents the routes, the JSON
// and the security model.
package admin
