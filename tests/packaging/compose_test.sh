#!/usr/bin/env bash
# Checks that docker/compose.yaml is valid (Debian's docker-compose renders it; no Docker
# engine is needed for `config`) and keeps what operators rely on: the service on port 50051,
# its healthcheck through classifier-cli, restart policy, named volumes, the one-shot
# fetch-data service, Prometheus (docker/prometheus.yml, checked by Debian's promtool) scraping
# the server's metrics port, Grafana with the datasource and the dashboard provisioned, and the
# commented GPU variant, which must still render once uncommented.
# Exits 0 on success, 1 on failure, 77 (skipped) without docker-compose or promtool.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

if ! command -v docker-compose >/dev/null 2>&1; then
  echo "SKIP: docker-compose not installed (scripts/install-deps.sh installs it)"
  exit 77
fi

if ! command -v promtool >/dev/null 2>&1; then
  echo "SKIP: promtool not installed (Debian's prometheus package; scripts/install-deps.sh)"
  exit 77
fi

compose_file=${CLASSIFIER_COMPOSE_FILE:-docker/compose.yaml}
compose=(docker-compose -f "$compose_file")
"${compose[@]}" config -q || { echo "FAIL: docker-compose config -q rejected $compose_file"; exit 1; }
# With the tools profile: Compose 2.x leaves a profile's services out of `config` otherwise.
out=$("${compose[@]}" --profile tools config) || {
  echo "FAIL: docker-compose config rejected ${compose[2]}"
  exit 1
}
services=$("${compose[@]}" --profile tools config --services) || {
  echo "FAIL: docker-compose --profile tools config --services failed"
  exit 1
}

failures=0
expect() {  # expect DESCRIPTION EXTENDED_REGEX [TEXT]
  if grep -Eq -- "$2" <<<"${3:-$out}"; then
    echo "ok: $1"
  else
    echo "FAIL: $1 (no line matching /$2/)"
    failures=$((failures + 1))
  fi
}
# The healthcheck's test, as rendered: one list item per line after `test:`.
health=$(awk '/^ *healthcheck:/{h=1} h&&/^ *test:/{t=1;next} t&&/^ *- /{print;next} t{exit}' <<<"$out" | tr -d ' -' | tr '\n' ' ')

expect "service classifier" '^  classifier:$'
# Compose 1.x (Debian 12) and 2.x (Debian 13) render ports and volumes differently: 2.x quotes
# the published port and writes every volume in the long syntax (checked in Python below).
expect "port 50051 published" '(published: "?50051"?$|50051:50051)'
expect "port 50051 targeted" '(target: 50051|:50051$)'
expect "healthcheck present" '^ *healthcheck:$'
expect "healthcheck runs classifier-cli --server 127.0.0.1:50051 health" \
  'classifiercli server 127\.0\.0\.1:50051 health' "$health"
expect "restart unless-stopped" 'restart: unless-stopped'
expect "built from the repository's Dockerfile" 'dockerfile: Dockerfile'
expect "fetch-data service" '^fetch-data$' "$services"
expect "fetch-data runs classifier-fetch-data" 'classifier-fetch-data'

expect "prometheus service" '^prometheus$' "$services"
expect "grafana service" '^grafana$' "$services"
expect "Prometheus image" 'image: prom/prometheus'
expect "Grafana image" 'image: grafana/grafana'

if promtool check config docker/prometheus.yml; then
  echo "ok: promtool check config docker/prometheus.yml"
else
  echo "FAIL: promtool rejected docker/prometheus.yml"
  failures=$((failures + 1))
fi

# The GPU variant: the block between the markers, uncommented, must render with an nvidia device
# reservation on the classifier service, and CLASSIFIER_VARIANT=gpu must build the Dockerfile's
# GPU stages.
gpu_file=$(mktemp docker/.compose-gpu-XXXXXX.yaml)
trap 'rm -f "$gpu_file"' EXIT
awk '/# --- GPU variant/{g=1;next} /# --- end GPU variant/{g=0;next} g{sub(/# /,""); print; next} {print}' \
  "$compose_file" >"$gpu_file"
if gpu_out=$(CLASSIFIER_VARIANT=gpu docker-compose -f "$gpu_file" --profile tools config 2>&1); then
  echo "ok: the GPU variant renders once uncommented"
else
  echo "FAIL: the uncommented GPU variant does not render: $gpu_out"
  failures=$((failures + 1))
fi

# The structure, on the rendered YAML: what Prometheus scrapes is what the image serves, and
# what Grafana is given is what the dashboard needs.
if ! python3 - "$out" "$gpu_out" <<'PY'; then
import json, os, re, sys
import yaml

config = yaml.safe_load(sys.argv[1])
gpu = yaml.safe_load(sys.argv[2])
failures = []
def check(what, ok):
    print(("ok: " if ok else "FAIL: ") + what)
    if not ok:
        failures.append(what)

services = config["services"]
volumes = set(config.get("volumes", {}))
check("named volumes for state, data, Prometheus and Grafana",
      {"classifier-state", "classifier-data", "prometheus-data", "grafana-data"} <= volumes)

# The image's command serves metrics on 0.0.0.0:9464; Prometheus scrapes classifier:9464.
dockerfile = open("Dockerfile").read()
check("the image serves metrics on 0.0.0.0:9464",
      re.search(r'"--metrics_listen", "0\.0\.0\.0:9464"', dockerfile) is not None)
prom_config = yaml.safe_load(open("docker/prometheus.yml"))
targets = [t for job in prom_config["scrape_configs"] for sc in job.get("static_configs", [])
           for t in sc["targets"]]
check("docker/prometheus.yml scrapes classifier:9464", "classifier:9464" in targets)
check("the server exposes 9464 to the stack", "9464" in [str(p) for p in services["classifier"].get("expose", [])])

def mounts(service):
    # Compose 1.x renders the short syntax (source:target[:mode]), 2.x the long one (a map).
    result = {}
    for volume in services[service].get("volumes", []):
        if isinstance(volume, dict):
            source, target = volume.get("source", ""), volume["target"]
        else:
            source, target = volume.split(":")[:2]
        result[target] = source
    return result

server = mounts("classifier")
check("state volume", server.get("/var/lib/classifier/state") == "classifier-state")
check("data volume", server.get("/var/lib/classifier/data") == "classifier-data")

prom = mounts("prometheus")
check("Prometheus is given docker/prometheus.yml",
      os.path.realpath(prom.get("/etc/prometheus/prometheus.yml", "")) ==
      os.path.realpath("docker/prometheus.yml"))
check("Prometheus keeps its data in a volume", prom.get("/prometheus") == "prometheus-data")
command = " ".join(services["prometheus"].get("command", []))
check("Prometheus reads that config", "--config.file=/etc/prometheus/prometheus.yml" in command)

graf = mounts("grafana")
datasources_dir = graf.get("/etc/grafana/provisioning/datasources", "")
dashboards_provider_dir = graf.get("/etc/grafana/provisioning/dashboards", "")
check("Grafana is given the datasource provisioning",
      os.path.realpath(datasources_dir) == os.path.realpath("docker/grafana/provisioning/datasources"))
check("Grafana is given the dashboard provider",
      os.path.realpath(dashboards_provider_dir) == os.path.realpath("docker/grafana/provisioning/dashboards"))
check("Grafana keeps its data in a volume", graf.get("/var/lib/grafana") == "grafana-data")

datasources = [d for f in sorted(os.listdir(datasources_dir))
               for d in yaml.safe_load(open(os.path.join(datasources_dir, f)))["datasources"]]
check("the datasource is the stack's Prometheus",
      any(d["type"] == "prometheus" and d["url"] == "http://prometheus:9090" for d in datasources))
providers = [p for f in sorted(os.listdir(dashboards_provider_dir))
             for p in yaml.safe_load(open(os.path.join(dashboards_provider_dir, f)))["providers"]]
paths = [p["options"]["path"] for p in providers if p.get("type") == "file"]
check("a file provider reads a folder Grafana is given", len(paths) == 1 and paths[0] in graf)
dashboards_dir = graf.get(paths[0], "") if paths else ""
check("that folder is docker/grafana/dashboards",
      os.path.realpath(dashboards_dir) == os.path.realpath("docker/grafana/dashboards"))
dashboard = json.load(open(os.path.join(dashboards_dir, "classifier.json")))
uids = {d.get("uid") for d in datasources}
used = {p["datasource"]["uid"] for p in dashboard["panels"] if "datasource" in p}
check(f"the dashboard's panels use the provisioned datasource uid ({sorted(used)})", used and used <= uids)

devices = (gpu["services"]["classifier"].get("deploy", {}).get("resources", {})
           .get("reservations", {}).get("devices", []))
check("the GPU variant reserves an nvidia GPU",
      any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices))
check("the default stack reserves no GPU", "deploy" not in services["classifier"])
for rendered, variant in ((config, "cpu"), (gpu, "gpu")):
    service = rendered["services"]["classifier"]
    check(f"classifier builds the {variant} image",
          service["build"].get("args", {}).get("CLASSIFIER_VARIANT") == variant
          and service["image"] == f"classifier:{variant}")
    fetcher = rendered["services"]["fetch-data"]
    check(f"fetch-data builds the fetcher's own image ({variant} stack)",
          fetcher["build"].get("target") == "fetch-data"
          and fetcher["image"] == "classifier-fetch-data:cpu")
stages = set(re.findall(r"^FROM \S+ AS (\S+)$", dockerfile, re.M))
check("the Dockerfile's final stage is built from runtime-cpu or runtime-gpu",
      {"runtime-cpu", "runtime-gpu", "gpu-build"} <= stages
      and re.search(r"^FROM runtime-\$\{CLASSIFIER_VARIANT\} AS runtime$", dockerfile, re.M) is not None)
check("the Dockerfile has the fetcher's own stage, and the runtime stage is the last",
      "fetch-data" in stages
      and re.findall(r"^FROM .*$", dockerfile, re.M)[-1].endswith(" AS runtime"))
sys.exit(1 if failures else 0)
PY
  failures=$((failures + 1))
fi

# The replicated stack (docker/replicas.compose.yaml): PostgreSQL, three replicas on it, each
# with a state volume of its own, and HAProxy in front, its config accepted by HAProxy itself
# and naming every replica with the agent port the replicas serve.
replicas_file=docker/replicas.compose.yaml
if replicas_out=$(docker-compose -f "$replicas_file" --profile tools config 2>&1); then
  echo "ok: $replicas_file renders"
else
  echo "FAIL: docker-compose rejected $replicas_file: $replicas_out"
  failures=$((failures + 1))
fi
if command -v haproxy >/dev/null 2>&1; then
  if haproxy -c -f docker/haproxy.cfg >/dev/null 2>&1; then
    echo "ok: haproxy -c accepts docker/haproxy.cfg"
  else
    echo "FAIL: haproxy -c rejects docker/haproxy.cfg: $(haproxy -c -f docker/haproxy.cfg 2>&1 | tail -3)"
    failures=$((failures + 1))
  fi
else
  echo "note: haproxy not installed, docker/haproxy.cfg not checked by it"
fi
if ! python3 - "$replicas_out" <<'PY'; then
import re, sys
import yaml

config = yaml.safe_load(sys.argv[1])
services = config["services"]
failures = []
def check(what, ok):
    print(("ok: " if ok else "FAIL: ") + what)
    if not ok:
        failures.append(what)

replicas = sorted(name for name in services if name.startswith("replica-"))
check("three replicas", replicas == ["replica-1", "replica-2", "replica-3"])
states = set()
for name in replicas:
    service = services[name]
    env = service.get("environment", {})
    check(f"{name} stores in the stack's PostgreSQL",
          str(env.get("CLASSIFIER_STORE", "")).startswith("postgresql://") and
          "@postgres:5432/" in str(env.get("CLASSIFIER_STORE", "")))
    command = " ".join(service.get("command", []))
    check(f"{name} serves the agent on 9465", "--lb_agent_listen=0.0.0.0:9465" in command)
    check(f"{name} has a drain notice", "CLASSIFIER_DRAIN_NOTICE" in env)
    for volume in service.get("volumes", []):
        source, target = ((volume.get("source", ""), volume["target"]) if isinstance(volume, dict)
                          else volume.split(":")[:2])
        if target == "/var/lib/classifier/state":
            states.add(source)
    check(f"{name} waits for a healthy PostgreSQL",
          "postgres" in service.get("depends_on", {}))
check("a state volume each", len(states) == 3)
check("PostgreSQL keeps its data in a volume",
      any("postgres-data" in str(v) for v in services["postgres"].get("volumes", [])))
ports = [str(p) for p in services["balancer"].get("ports", [])]
check("the balancer publishes 50051 on loopback",
      any("50051" in p for p in ports) or
      any(isinstance(p, dict) and str(p.get("published")) == "50051" for p in services["balancer"]["ports"]))
haproxy = open("docker/haproxy.cfg").read()
servers = re.findall(r"^\s*server (\S+) (\S+):50051", haproxy, re.M)
check("HAProxy balances over every replica", sorted(s[1] for s in servers) == replicas)
check("HAProxy asks each replica's agent on 9465", "agent-check agent-port 9465" in haproxy)
check("HAProxy speaks h2 to the replicas", "proto h2" in haproxy)
sys.exit(1 if failures else 0)
PY
  failures=$((failures + 1))
fi

# The local overrides (podman without a registry): each renders over its stack and replaces
# the registry image with one built from Debian's package.
for pair in "docker/compose.yaml docker/compose.local.yaml prometheus" \
  "docker/replicas.compose.yaml docker/replicas.compose.local.yaml postgres"; do
  read -r base override service <<<"$pair"
  if rendered=$(docker-compose -f "$base" -f "$override" --profile tools config 2>&1) &&
    grep -q "image: classifier-$service:local" <<<"$rendered" &&
    grep -q "dockerfile: $service.Dockerfile" <<<"$rendered"; then
    echo "ok: $override builds $service from docker/$service.Dockerfile"
  else
    echo "FAIL: $override over $base: $(tail -3 <<<"$rendered")"
    failures=$((failures + 1))
  fi
done

if ((failures)); then
  echo "compose_test: $failures check(s) failed"
  exit 1
fi
echo "compose_test: all checks passed"
