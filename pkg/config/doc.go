// Package config reads weir's YAML configuration file.
//
// Load and Parse turn a file into a Config with every default filled in
// and every value validated: addresses normalised, certificates loaded
// once to prove they work, relative paths resolved against the file's
// directory. README.md in this directory documents each key and its
// default, man-page style.
//
// The parser walks the yaml.v3 node tree rather than decoding into
// structs, so that every problem carries the line and column it comes
// from, and so that it can keep going after one: a failed parse returns
// an *Errors holding all of them, sorted by position, each printing as
// FILE:LINE:COL: message. Unknown keys are errors, with a suggestion when
// a known key is close, and values of the wrong type are refused rather
// than converted.
//
// A value is parsed once, into the type the package that uses it takes:
// a route into a route.Route, a route's compress into a
// compress.Policy, a listener's proxy_protocol into a proxyproto.Policy,
// a hash key into an l7.HashKey, a health check's expected statuses into
// an lb.StatusSet, header templates with route.ParseTemplate and paths
// with route.CheckPath; so each value has one grammar, and its errors
// carry their position.
//
// What is valid but almost certainly a mistake (a route an earlier route
// leaves nothing to, a pool nothing uses) is not an error but a Warning,
// in Config.Warnings.
//
// The structs that later stages report errors against (Service, Listener,
// Cert, Upstream, BackendSpec, Discovery, HealthCheck, TLSClient, L4,
// Route) carry the Position of their source.
package config
