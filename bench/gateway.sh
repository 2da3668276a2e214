#!/usr/bin/env bash
# The gateway against a bare proxy: authenticated `GET /api/users/me` driven by wrk at 32
# connections straight at the identity service, through nginx (`proxy_pass` with upstream
# keepalive and no checks at all) and through the Polyclinic gateway (token verification,
# rate limits, header rules), each proxy and the identity service its own process so their
# CPU can be read from /proc. The rounds (three unless ROUNDS says), each target in turn,
# run in one go, release build; prints a markdown table with each proxy's CPU per request
# and the gateway's share of nginx's throughput.
# wrk and nginx come from Debian (installed here when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
DB=polyclinic_bench_gateway
CONNECTIONS="${CONNECTIONS:-32}"
SECONDS_PER_TARGET="${SECONDS_PER_TARGET:-10}"
ROUNDS="${ROUNDS:-3}"
NGINX_PORT=18070

need=(wrk:wrk nginx:nginx-light)
cleanup_more() {
  [ -f "$work/nginx.pid" ] && kill -QUIT "$(cat "$work/nginx.pid")" 2>/dev/null || true
}
source bench/gateway-platform.sh

# nginx as a bare reverse proxy: as many workers as cores, keepalive to the upstream, no
# access log (nor has the gateway one at this log level), nothing checked.
mkdir -p "$work/nginx"
cat >"$work/nginx.conf" <<EOF
worker_processes auto;
pid $work/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  upstream identity {
    server 127.0.0.1:18081;
    keepalive 64;
  }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass http://identity;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
/usr/sbin/nginx -c "$work/nginx.conf" -p "$work/nginx" 2>"$work/nginx/start.log" ||
  { cat "$work/nginx/start.log" >&2; exit 1; }
until curl -s -o /dev/null "http://127.0.0.1:$NGINX_PORT/health/live"; do sleep 0.05; done
nginx_pids() { echo "$(cat "$work/nginx.pid") $(pgrep -P "$(cat "$work/nginx.pid")" | tr '\n' ' ')"; }

# CPU time (user + system, in clock ticks) of the processes given, from /proc.
ticks() {
  local total=0 pid
  for pid in "$@"; do
    # Fields 14 and 15 of stat, counted after the command name's closing parenthesis.
    total=$((total + $(sed 's/.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}')))
  done
  echo "$total"
}

# One target: wrk's summary and the CPU its proxy used, as one tab-separated line.
measure() {
  local label=$1 url=$2; shift 2
  local before after
  before=$(ticks "$@")
  wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_PER_TARGET}s" --latency \
    -H "Authorization: Bearer $token" "$url" >"$work/wrk.out"
  after=$(ticks "$@")
  printf '%s\t%s\t%s\t%s\n' "$label" "$((after - before))" "$#" "$(base64 -w0 "$work/wrk.out")"
}

# A short warm-up of every path (connections, caches), then the rounds, each target in turn.
for url in "http://127.0.0.1:18081" "http://127.0.0.1:$NGINX_PORT" "http://127.0.0.1:18080"; do
  wrk -t2 -c"$CONNECTIONS" -d2s -H "Authorization: Bearer $token" "$url/api/users/me" >/dev/null
done
{
  for _ in $(seq "$ROUNDS"); do
    measure "identity, direct" "http://127.0.0.1:18081/api/users/me"
    # shellcheck disable=SC2046
    measure "nginx, proxy_pass with keepalive" "http://127.0.0.1:$NGINX_PORT/api/users/me" $(nginx_pids)
    measure "the Polyclinic gateway" "http://127.0.0.1:18080/api/users/me" "$gateway"
  done
} >"$work/rows"

python3 - "$work/rows" "$(getconf CLK_TCK)" "$CONNECTIONS" "$SECONDS_PER_TARGET" "$ROUNDS" <<'PY'
import base64, re, sys
rows_path, hz, connections, seconds, rounds = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]

def ms(text):
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

rows = []
for line in open(rows_path):
    label, ticks, processes, output = line.rstrip("\n").split("\t")
    out = base64.b64decode(output).decode()
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    p50 = ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    cpu_us = int(ticks) * 1e6 / hz / requests if int(processes) else None
    rows.append((label, rate, p50, p99, cpu_us, int(errors.group(1)) if errors else 0, socket_errors))

print("| target | requests/s | p50 (ms) | p99 (ms) | proxy CPU per request (µs) | errors |")
print("|---|---:|---:|---:|---:|---:|")
for label, rate, p50, p99, cpu_us, errors, socket_errors in rows:
    cpu = f"{cpu_us:.1f}" if cpu_us is not None else ""
    print(f"| {label} | {rate:.0f} | {p50:.2f} | {p99:.2f} | {cpu} | {errors} |")
    if socket_errors:
        print(f"wrk reported socket errors for {label}: {socket_errors.group(1)}", file=sys.stderr)

def total(label):
    chosen = [row for row in rows if row[0] == label]
    return sum(row[1] for row in chosen) / len(chosen), sum(row[4] or 0 for row in chosen) / len(chosen)

direct, _ = total("identity, direct")
nginx, nginx_cpu = total("nginx, proxy_pass with keepalive")
gateway, gateway_cpu = total("the Polyclinic gateway")
print(
    f"\nwrk, 2 threads, {connections} connections, {seconds} s per target, {rounds} rounds; CPU from /proc "
    f"(user + system) of the proxy's processes over each run, divided by its requests. "
    f"Means of the rounds: nginx {100 * nginx / direct:.0f}% of direct, the gateway "
    f"{100 * gateway / direct:.0f}% of direct and **{100 * gateway / nginx:.0f}% of nginx**; CPU per "
    f"request {gateway_cpu:.1f} µs (gateway) against {nginx_cpu:.1f} µs (nginx)."
)
PY
