-- wrk script: POST /sns with bodies read from MESSAGES (one JSON body per line). Each wrk thread takes every
-- Nth line, so no body is sent twice unless REPEAT=1, which sends the first line over and over (redeliveries).
-- SLICE=i/n: this wrk takes only the i-th of n disjoint slices (several wrk processes, one per replica).
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

function init(args)
  local path = os.getenv("MESSAGES")
  local repeat_first = os.getenv("REPEAT") == "1"
  local nthreads = tonumber(os.getenv("THREADS") or "1")
  local slice, slices = string.match(os.getenv("SLICE") or "0/1", "(%d+)/(%d+)")
  slice, slices = tonumber(slice), tonumber(slices)
  bodies = {}
  local n = 0
  for line in io.lines(path) do
    if repeat_first then
      table.insert(bodies, line)
      break
    end
    if n % (nthreads * slices) == slice * nthreads + id - 1 then
      table.insert(bodies, line)
    end
    n = n + 1
  end
  index = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "text/plain; charset=UTF-8"
  wrk.headers["x-amz-sns-message-type"] = "Notification"
end

function request()
  index = index + 1
  if index > #bodies then
    if os.getenv("REPEAT") == "1" then
      index = 1
    else
      exhausted = 1
      return wrk.format("GET", "/healthz")
    end
  end
  return wrk.format(nil, "/sns", nil, bodies[index])
end

function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    if thread:get("exhausted") == 1 then
      io.write("WARNING: a thread ran out of messages; the figures include GET /healthz. Raise COUNT.\n")
    end
  end
  io.write(string.format("non-2xx %d, socket errors %d\n", summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
