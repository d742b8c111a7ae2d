// Package route puts many sites and APIs behind one HTTP listener: an
// ordered list of Routes, first match wins, each matching requests by
// host, path, method, header fields and query parameters, and sending
// them to an upstream pool, answering with a redirect, or answering with
// a fixed response, with path rewrites and header rules on the way.
//
// A Table is an l7.Proxy: the routing layer is one implementation of the
// proxy's hook interface, usable from Go as well as from configuration.
package route
