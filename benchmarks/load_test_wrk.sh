#!/usr/bin/env bash
# Server load test with wrk (not Python): 32, 128 and 512 concurrent clients against `medsent serve`,
# one fresh server per level. Prints accepted requests/s, the share shed with 503, errors, wrk's
# latency over all answers, and the server's own queue+model latency of the accepted requests.
# Usage: benchmarks/load_test_wrk.sh RUN_DIR [SECONDS] [MAX_QUEUE]   (needs `wrk`: apt install wrk)
set -u
RUN=$1; SECONDS_EACH=${2:-20}; QUEUE=${3:-512}
PY=${PYTHON:-python3}; PORT=18777
ulimit -n 4096
echo "machine: $(uname -m), $(nproc) cores; run $RUN; max queue $QUEUE; ${SECONDS_EACH}s per level; client and server on the same cores"
echo "| clients | accepted req/s | 503 share | other / socket errors | wrk p50 / p99 ms (all answers) | server p50 / p99 ms (accepted) |"
echo "|---:|---:|---:|---:|---:|---:|"
for clients in 32 128 512; do
  "$PY" -m medsent.interfaces.cli serve "$RUN" --port $PORT --max-queue "$QUEUE" > /tmp/medsent-load-server.log 2>&1 &
  server=$!
  for _ in $(seq 120); do curl -sf "http://127.0.0.1:$PORT/health" | grep -q '"ok"' && break; sleep 0.5; done
  out=$(wrk -t1 -c"$clients" -d"${SECONDS_EACH}s" --timeout 30s -s "$(dirname "$0")/wrk_predict.lua" "http://127.0.0.1:$PORT/v1/predict")
  stats=$(curl -s "http://127.0.0.1:$PORT/v1/stats")
  kill -TERM $server; wait $server 2>/dev/null
  "$PY" - "$clients" "$out" "$stats" <<'PYEOF'
import json, re, sys
clients, out, stats = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
s = dict(re.findall(r"(\w+)=([\d.]+)", out.split("STATUS", 1)[1].splitlines()[0]))
lat = dict(re.findall(r"(\w+)=([\d.]+)", out.split("ALL_LATENCY_MS", 1)[1].splitlines()[0]))
total = int(s["ok"]) + int(s["shed"]) + int(s["other"])
acc = stats.get("accepted_latency_ms", {})
print(f"| {clients} | {float(s['accepted_per_s']):.0f} | {int(s['shed']) / max(total, 1):.1%} | "
      f"{s['other']} / {s['socket_errors']} (timeouts {s['timeouts']}) | {lat['p50']} / {lat['p99']} | "
      f"{acc.get('p50', float('nan')):.1f} / {acc.get('p99', float('nan')):.1f} |")
PYEOF
done
