#!/usr/bin/env python3
"""Renders what each pod of deploy/k8s receives: for every Deployment of the kustomization
and for the migration Job, its arguments and the environment Kubernetes would give it (the
ConfigMaps and Secrets of its `envFrom`, then its `env`), the Secrets taken from
secrets.example.yaml with each placeholder filled. Prints JSON; the test
bin/polyclinic/tests/api/deploy.rs runs the binary's configuration check on each pod.

A reference to a ConfigMap or Secret that does not exist is an error, as it would keep the
pod from starting.
"""
import json
import pathlib
import sys

import yaml

K8S = pathlib.Path(__file__).resolve().parent / "k8s"
# Long enough for production's 16-character minimum, and visibly not a real secret.
FILLED = "rendered-placeholder-secret"
# A key (`sessions.keys`) is 32 bytes in base64: b"rendered-placeholder-session-key".
FILLED_KEY = "cmVuZGVyZWQtcGxhY2Vob2xkZXItc2Vzc2lvbi1rZXk="


def filled(key, value):
    return str(value).replace("REPLACE", FILLED_KEY if key.endswith("_KEYS") else FILLED)


def documents(name):
    with open(K8S / name) as file:
        return [doc for doc in yaml.safe_load_all(file) if doc]


def main():
    kustomization = documents("kustomization.yaml")[0]
    resources = [doc for name in kustomization["resources"] for doc in documents(name)]
    workloads = [doc for doc in resources if doc["kind"] == "Deployment"]
    workloads += documents("migrate-job.yaml")
    config_maps = {d["metadata"]["name"]: d.get("data", {}) for d in resources if d["kind"] == "ConfigMap"}
    secrets = {
        d["metadata"]["name"]: {k: filled(k, v) for k, v in d.get("stringData", {}).items()}
        for d in documents("secrets.example.yaml")
        if d["kind"] == "Secret"
    }
    if any(d["kind"] == "Secret" for d in resources):
        sys.exit("the kustomization holds a Secret: `kubectl apply -k` would overwrite the real one")

    pods = []
    for workload in workloads:
        name = workload["metadata"].get("name") or workload["metadata"]["generateName"].rstrip("-")
        containers = workload["spec"]["template"]["spec"]["containers"]
        for container in containers:
            env, secret_names = {}, []
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    ref = source["configMapRef"]["name"]
                    if ref not in config_maps:
                        sys.exit(f"{name}: no ConfigMap {ref}")
                    env.update(config_maps[ref])
                if "secretRef" in source:
                    ref = source["secretRef"]["name"]
                    if ref not in secrets:
                        sys.exit(f"{name}: no Secret {ref} in secrets.example.yaml")
                    secret_names.append(ref)
                    env.update(secrets[ref])
            for variable in container.get("env", []):
                if "value" in variable:
                    env[variable["name"]] = str(variable["value"])
                else:
                    env[variable["name"]] = f"{name}-pod"
            pods.append({
                "workload": f"{workload['kind']}/{name}",
                "args": container.get("args", []),
                "secrets": secret_names,
                "secret_keys": sorted(k for ref in secret_names for k in secrets[ref]),
                "env": env,
            })
    json.dump(pods, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
