-- wrk script: POST one AdmissionReview body over and over, optionally paced, and print a JSON
-- summary line (requests/s, latency percentiles in microseconds, errors) for bench/run.
--   BODY_FILE  file holding the request body (required)
--   DELAY_MS   pause each connection takes between its requests (0: as fast as possible)
--   MAX_REQUESTS  end the run once a thread has had this many answers (0: run for all of -d)
local body_file = os.getenv("BODY_FILE")
local delay_ms = tonumber(os.getenv("DELAY_MS") or "0")
local max_requests = tonumber(os.getenv("MAX_REQUESTS") or "0")

local f = assert(io.open(body_file, "rb"), "cannot read " .. tostring(body_file))
local body = f:read("*a")
f:close()

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"

local non_200 = 0
local answered = 0
function response(status, headers, response_body)
  if status ~= 200 then non_200 = non_200 + 1 end
  answered = answered + 1
  if max_requests > 0 and answered == max_requests then
    -- wrk's main thread sleeps for all of -d unless interrupted: end the run as Ctrl-C does
    -- (wrk then stops every thread and reports as usual). The shell's parent is wrk; popen,
    -- unlike os.execute, leaves wrk's SIGINT handler in place meanwhile.
    wrk.thread:stop()
    io.popen("kill -INT $PPID"):close()
  end
end

if delay_ms > 0 then
  function delay() return delay_ms end
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout + summary.errors.status
  io.write(string.format(
    '{"rps":%.0f,"requests":%d,"p50_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"errors":%d}\n',
    summary.requests / seconds, summary.requests, latency:percentile(50),
    latency:percentile(99), latency:percentile(99.9), latency.max, errors))
end
