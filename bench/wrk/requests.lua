-- wrk script for bench/service_bench.py: cycle through prepared requests, then print the
-- results as one JSON line (exact counts and percentiles, no parsing of wrk's text report).
--
--   wrk -t1 -c16 -d20s --latency -s requests.lua http://127.0.0.1:PORT -- get LIST
--       each line of LIST is a path with its query string, sent as GET
--   wrk ... -s requests.lua http://127.0.0.1:PORT -- post LIST CONTENT-TYPE PATH
--       each line of LIST names a file whose bytes are one request body, POSTed to PATH
--
-- Requests are formatted once, in init: the load generator then spends its time on the
-- sockets, not on building requests. The API key comes from the environment (LK_BENCH_KEY),
-- which keeps it out of process listings.

local prepared = {}
local next_index = 0

function init(args)
  local mode, list = args[1], args[2]
  local key = os.getenv("LK_BENCH_KEY")
  if key == nil or key == "" then
    error("LK_BENCH_KEY is not set")
  end
  for line in io.lines(list) do
    local headers = { ["Authorization"] = "Bearer " .. key }
    if mode == "get" then
      prepared[#prepared + 1] = wrk.format("GET", line, headers)
    elseif mode == "post" then
      local file = assert(io.open(line, "rb"))
      local body = file:read("*a")
      file:close()
      headers["Content-Type"] = args[3]
      prepared[#prepared + 1] = wrk.format("POST", args[4], headers, body)
    else
      error("mode must be get or post, not " .. tostring(mode))
    end
  end
  if #prepared == 0 then
    error("no requests in " .. list)
  end
end

function request()
  next_index = next_index % #prepared + 1
  return prepared[next_index]
end

function done(summary, latency, _)
  local errors = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect_errors": %d, '
      .. '"read_errors": %d, "write_errors": %d, "timeouts": %d, "non_2xx_3xx": %d, '
      .. '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, summary.bytes, errors.connect, errors.read,
    errors.write, errors.timeout, errors.status, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency.max, latency.mean
  ))
end
