-- wrk hook for scripts/bench: after the run, print one machine-readable line
-- so the benchmark never has to parse wrk's human output (whose units change
-- with magnitude). Only done() is defined: defining request() or response()
-- would make wrk call into Lua per request and slow the client down.
--
-- Fields: requests, duration_us, bytes, latency p50/p99/max in µs, and the
-- error counters (connect/read/write/status/timeout). "status" counts
-- responses that were not 2xx or 3xx.
done = function(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "WEIR-BENCH requests=%d duration_us=%d bytes=%d p50_us=%d p99_us=%d max_us=%d " ..
      "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
      summary.requests, summary.duration, summary.bytes,
      latency:percentile(50.0), latency:percentile(99.0), latency.max,
      e.connect, e.read, e.write, e.status, e.timeout))
end
