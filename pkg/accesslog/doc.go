// Package accesslog writes weir's HTTP access log: one line per finished
// request, in the NGINX/Apache combined format, as JSON, or in a template
// of named fields.
//
// The server fills a Record, which refers to its own buffers, and hands
// it to Writer.Log with the service's Format. Log formats the line on
// the caller's goroutine straight into the Writer's current 64 KiB batch,
// and the Writer's one goroutine writes the batches, every 100 ms or as
// one fills. Log never waits for the disk and allocates nothing: when
// the disk cannot keep up every batch fills and lines are dropped and
// counted, so that a stalled disk costs log lines, not requests.
//
// Every byte a client controls is escaped (as nginx does in text lines,
// as JSON strings in JSON lines) and cut to a bound, so that no request
// can break a line, forge a field, or make a line longer than MaxLine.
//
// Reopen switches to a new file at the same path after logrotate renamed
// the old one, between two lines. Writers shares one Writer per path
// among services and reopens or closes them all.
package accesslog
