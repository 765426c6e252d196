-- wrk script: POST one real review to /v1/predict and count answers by status (200, 503, other).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"text": "I have been on this for three months. At first the nausea was bad, but it went away and my blood pressure is finally under control. Would recommend, though it is pricey.", "return_probabilities": false}'

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  ok, shed, other = 0, 0, 0
end

function response(status, headers, body)
  if status == 200 then ok = ok + 1
  elseif status == 503 then shed = shed + 1
  else other = other + 1 end
end

function done(summary, latency, requests)
  local a, s, o = 0, 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("ok"); s = s + t:get("shed"); o = o + t:get("other")
  end
  local seconds = summary.duration / 1e6
  io.write(string.format("STATUS ok=%d shed=%d other=%d socket_errors=%d timeouts=%d seconds=%.1f accepted_per_s=%.1f\n",
    a, s, o, summary.errors.connect + summary.errors.read + summary.errors.write, summary.errors.timeout,
    seconds, a / seconds))
  io.write(string.format("ALL_LATENCY_MS p50=%.1f p99=%.1f max=%.1f\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
