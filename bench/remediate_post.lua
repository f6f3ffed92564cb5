-- wrk script: authenticated POST /remediate with dry_run for the load balancer in LB (default web-elb).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("TOKEN") or "")
wrk.body = '{"load_balancer": "' .. (os.getenv("LB") or "web-elb") .. '", "dry_run": true, "reason": "bench"}'
