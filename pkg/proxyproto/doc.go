// Package proxyproto reads and writes the PROXY protocol header, versions
// 1 (text) and 2 (binary), as HAProxy's proxy-protocol.txt defines them: the
// few bytes a load balancer sends first on a connection to tell the server
// behind it the client's address and the address the client connected to.
//
// Read consumes exactly the header and not a byte more, so that what
// follows (a TLS handshake, an HTTP request) is left on the connection
// for its reader. Header.Append and Header.WriteTo produce either version.
// Policy says whose headers a server believes.
package proxyproto
