-- wrk script for tests/bench/run.sh: print one machine-readable line at the
-- end (latencies in microseconds, duration in microseconds, bytes = all
-- response bytes read, heads included).
done = function(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "BENCHRESULT requests=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d " ..
      "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d bytes=%d\n",
      summary.requests, summary.duration,
      latency:percentile(50.0), latency:percentile(99.0), latency.max,
      e.connect, e.read, e.write, e.status, e.timeout, summary.bytes))
end
