-- wrk script: an alert storm for one load balancer (LB, default web-elb), alternating an authenticated manual
-- POST /remediate and an Alertmanager webhook (a new group notification each time, so none is a redelivery).
local n = 0
local lb = os.getenv("LB") or "web-elb"
local manual = "Bearer " .. (os.getenv("TOKEN") or "")
local alertmanager = "Bearer " .. (os.getenv("AM_TOKEN") or "")

function request()
  n = n + 1
  if n % 2 == 0 then
    return wrk.format("POST", "/remediate",
      { ["Content-Type"] = "application/json", ["Authorization"] = manual },
      '{"load_balancer": "' .. lb .. '", "reason": "storm"}')
  end
  local body = string.format(
    '{"version":"4","groupKey":"storm-%d-%d","status":"firing","receiver":"reflex","groupLabels":{},' ..
    '"commonLabels":{},"commonAnnotations":{},"externalURL":"http://am","truncatedAlerts":0,' ..
    '"alerts":[{"status":"firing","labels":{"alertname":"Unhealthy","load_balancer":"%s"},' ..
    '"annotations":{},"startsAt":"2026-01-01T00:00:00Z","endsAt":"0001-01-01T00:00:00Z",' ..
    '"generatorURL":"http://p","fingerprint":"f%d"}]}', math.random(1, 1000000000), n, lb, n)
  return wrk.format("POST", "/alertmanager",
    { ["Content-Type"] = "application/json", ["Authorization"] = alertmanager }, body)
end

function response(status, headers, body)
  if status ~= 200 then
    failed = (failed or 0) + 1
  end
end
