#!/usr/bin/env bash
# Checks the deployment files offline: the Kubernetes manifests against the API schemas of
# Kubernetes 1.30 (kubernetes-validate, from PyPI, bundles them), and the compose file with
# `docker compose config` when the compose plugin is installed, otherwise structurally
# (every dependency and healthcheck names something that exists, no host port twice).
set -euo pipefail
cd "$(dirname "$0")"

# Python tools live in a virtual environment of their own, never in the system Python.
VENV="${POLYCLINIC_CACHE:-$HOME/.cache/polyclinic}/venv"
if [ ! -x "$VENV/bin/kubernetes-validate" ]; then
  [ -x "$VENV/bin/python3" ] || python3 -m venv "$VENV"
  "$VENV/bin/python3" -m pip install --quiet --disable-pip-version-check "kubernetes-validate==1.37.0" "PyYAML==6.0.3"
fi
export PATH="$VENV/bin:$PATH"
kubernetes-validate --strict --quiet -k 1.30.0 k8s/namespace.yaml k8s/config.yaml k8s/secrets.example.yaml \
  k8s/migrate-job.yaml k8s/services.yaml
echo "deploy/k8s: every manifest matches the Kubernetes 1.30 schemas"

if docker compose version >/dev/null 2>&1; then
  docker compose -f docker-compose.yml config --quiet
  echo "deploy/docker-compose.yml: docker compose config accepts it"
else
  python3 - <<'PY'
import sys, yaml
compose = yaml.safe_load(open("docker-compose.yml"))
services = compose["services"]
problems, ports = [], {}
for name, service in services.items():
    if "image" not in service and "build" not in service:
        problems.append(f"{name}: no image and no build")
    for dependency in (service.get("depends_on") or {}):
        if dependency not in services:
            problems.append(f"{name}: depends on unknown service {dependency}")
        elif "healthcheck" not in services[dependency] and service["depends_on"][dependency].get("condition") == "service_healthy":
            problems.append(f"{name}: waits for {dependency} to be healthy, which has no healthcheck")
    for port in service.get("ports", []):
        host = str(port).split(":")[0]
        if host in ports:
            problems.append(f"{name}: host port {host} also used by {ports[host]}")
        ports[host] = name
for volume in compose.get("volumes", {}):
    if not any(str(v).startswith(volume + ":") for s in services.values() for v in s.get("volumes", [])):
        problems.append(f"volume {volume} is used by no service")
if problems:
    sys.exit("deploy/docker-compose.yml:\n  " + "\n  ".join(problems))
print(f"deploy/docker-compose.yml: {len(services)} services, dependencies and ports consistent (no compose plugin here)")
PY
fi
