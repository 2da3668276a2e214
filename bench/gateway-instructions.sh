#!/usr/bin/env bash
# The gateway's instructions per proxied request, counted by valgrind's callgrind: the same
# authenticated `GET /api/users/me` as bench/gateway.sh, at 8 connections for 20 s, with the
# gateway's process under callgrind (the identity service runs natively). Unlike CPU time,
# the count does not move with the machine's load, so two builds compare on any machine, one
# after the other. Prints the count a request and the functions that spend the most of it
# themselves. Not part of the suite (callgrind runs the gateway some 50 times slower).
# Release build; valgrind and wrk come from Debian (installed here when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
DB=polyclinic_bench_instructions
SECONDS_MEASURED="${SECONDS_MEASURED:-20}"
TOP="${TOP:-25}"

need=(wrk:wrk valgrind:valgrind callgrind_control:valgrind)
profiles="$(mktemp -d)"
cleanup_more() { rm -rf "$profiles"; }
GATEWAY_UNDER="valgrind --tool=callgrind --callgrind-out-file=$profiles/callgrind.out"
source bench/gateway-platform.sh

url=http://127.0.0.1:18080/api/users/me

# Warm up (connections, caches), zero the counts, measure, and dump what was counted since.
wrk -t1 -c8 -d5s -H "Authorization: Bearer $token" "$url" >/dev/null
callgrind_control -z "$gateway" >/dev/null 2>&1
wrk -t1 -c8 -d"${SECONDS_MEASURED}s" -H "Authorization: Bearer $token" "$url" >"$work/wrk.out"
callgrind_control -d "$gateway" >/dev/null 2>&1
until ls "$profiles"/callgrind.out.* >/dev/null 2>&1; do sleep 0.2; done
sleep 1

python3 - "$(ls "$profiles"/callgrind.out.* | head -1)" "$work/wrk.out" "$TOP" <<'PY'
import collections, re, sys
profile, wrk, top = sys.argv[1], sys.argv[2], int(sys.argv[3])
out = open(wrk).read()
requests = int(re.search(r"(\d+) requests in", out).group(1))
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
if errors:
    sys.exit(f"{errors.group(1)} requests failed: the count would not be of proxied requests")

# A function's own cost is the cost lines under its `fn=`, less those that follow a `calls=`
# (the cost of the call, counted again in the callee). Names are compressed as `(id) name`.
names, own, function, call = {}, collections.Counter(), None, False
def name(token):
    found = re.match(r"\((\d+)\)(?: (.*))?", token)
    if not found:
        return token
    if found.group(2):
        names[found.group(1)] = found.group(2)
    return names.get(found.group(1), token)
for line in open(profile):
    line = line.rstrip("\n")
    if line.startswith("fn="):
        function = name(line[3:])
    elif line.startswith("cfn="):
        name(line[4:])
    elif line.startswith("calls="):
        call = True
    elif line[:1].isdigit() or line[:1] in "+-*":
        fields = line.split()
        if call:
            call = False
        elif function is not None and len(fields) > 1:
            own[function] += int(fields[1])
total = sum(own.values())
print(f"{requests} proxied requests of `GET /api/users/me` under callgrind; "
      f"**{total / requests:,.0f} instructions a request** in the gateway's process (user space).")
print()
print("| instructions a request | share | function (its own, callees apart) |")
print("|---:|---:|---|")
for function, cost in own.most_common(top):
    print(f"| {cost / requests:,.0f} | {100 * cost / total:.1f}% | `{function[:100]}` |")
PY
