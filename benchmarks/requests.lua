-- wrk script: replays the HTTP requests that benchmarks/bodies.py wrote, one file each, cycling
-- through them (mixed sequence lengths for ragged models). The files hold the exact bytes sent.
-- Usage: wrk ... -s benchmarks/requests.lua URL -- FILE [FILE ...]
-- done() prints one line "WRK_JSON {...}" that benchmarks/closedloop.py parses.

local payloads = {}
local next_index = 0

function init(args)
  for _, path in ipairs(args) do
    local file = assert(io.open(path, "rb"))
    payloads[#payloads + 1] = file:read("*a")
    file:close()
  end
  assert(#payloads > 0, "no request files given after --")
end

function request()
  next_index = next_index % #payloads + 1
  return payloads[next_index]
end

function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"mean":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9)))
end
