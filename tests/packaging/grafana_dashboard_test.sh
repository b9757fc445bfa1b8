#!/usr/bin/env bash
# docker/grafana/dashboards/classifier.json against the real server: the JSON parses; every
# metric its PromQL names is in the /metrics output of a real classifier-server (after a short
# training job and a Predict, so histograms and labelled families have samples); every metric
# family the server exports is on some panel; and every query runs in Debian's real Prometheus
# scraping that server. `up` is the one name allowed without being exported: Prometheus itself
# records it for every scrape target. prometheus-cpp's exposer_* metrics (about serving /metrics)
# need no panel.
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"
readonly dashboard=$CLASSIFIER_SOURCE_DIR/docker/grafana/dashboards/classifier.json

check "the dashboard is valid JSON" python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$dashboard"
if ! command -v prometheus >/dev/null; then
  bad "Debian's prometheus package is needed (scripts/install-deps.sh installs it)"
  finish
fi

fetch_mnist "$work/data"
start_server "$work/data" "$work/state"
# Prometheus scrapes from the start, so that rate() has two samples of the activity below.
start_prometheus

check "a one-epoch job trains" bash -c "'$cli_bin' --server '$server_addr' train --epochs 1 --seed 3 >'$work/train.txt' 2>&1"
"$idx_to_png_bin" "$work/data/mnist/t10k-images-idx3-ubyte.gz" \
  "$work/data/mnist/t10k-labels-idx1-ubyte.gz" "$work/png" 3 >/dev/null
check "a Predict answers" bash -c "'$cli_bin' --server '$server_addr' predict '$work'/png/*.png >'$work/predict.txt'"
sleep 3  # A few scrapes after the activity.
curl -fsS "http://127.0.0.1:$metrics_port/metrics" >"$work/metrics.txt"
check "the server's /metrics answers" test -s "$work/metrics.txt"

if python3 - "$dashboard" "$work/metrics.txt" "$prom_port" <<'PY'; then
import json, re, sys, time, urllib.parse, urllib.request

dashboard = json.load(open(sys.argv[1]))
exposition = open(sys.argv[2]).read()
prom_port = sys.argv[3]
failures = []

# Series names in the exposition, and the metric families (# TYPE lines).
series = {m.group(0) for line in exposition.splitlines() if not line.startswith("#")
          for m in [re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line)] if m}
families = dict(re.findall(r"(?m)^# TYPE (\S+) (\S+)$", exposition))

# Every PromQL expression of the dashboard: panel targets (rows nest panels too) and the
# templating queries (label_values(METRIC..., label) is Grafana's, not PromQL).
def panels(items):
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))
exprs = [(p.get("title", ""), t["expr"]) for p in panels(dashboard["panels"])
         for t in p.get("targets", []) if t.get("expr")]
label_values = []
for variable in dashboard.get("templating", {}).get("list", []):
    query = variable.get("query", "")
    query = query.get("query", "") if isinstance(query, dict) else query
    m = re.match(r"\s*label_values\((.*),\s*\w+\)\s*$", query)
    if m:
        label_values.append((f"variable ${variable['name']}", m.group(1)))
    elif query:
        exprs.append((f"variable ${variable['name']}", query))
print(f"{len(exprs)} panel queries, {len(label_values)} label_values variables")

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
            "unless", "offset", "inf", "nan"}
def metric_names(expr):
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)      # label values
    expr = re.sub(r"\{[^}]*\}", "", expr)                # matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)               # ranges
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for m in re.finditer(r"(?<![\w$.])[A-Za-z_:][A-Za-z0-9_:]*", expr):
        if expr[m.end():].lstrip().startswith("(") or m.group(0).lower() in KEYWORDS:
            continue  # a function, an aggregation, a keyword
        names.add(m.group(0))
    return names

used = set()
for where, expr in exprs + label_values:
    names = metric_names(expr)
    if not names:
        failures.append(f"{where}: no metric in {expr!r}")
    for name in sorted(names):
        used.add(name)
        if name == "up":
            continue  # recorded by Prometheus for every target, never exported
        if name not in series:
            failures.append(f"{where}: {name} is not in the server's /metrics output")
print("metrics on the dashboard:", " ".join(sorted(used)))

# Every family the server exports is plotted (a histogram through _bucket, _sum or _count),
# except prometheus-cpp's exposer_* self-metrics about serving /metrics itself.
for family, kind in sorted(families.items()):
    if family.startswith("exposer_"):
        continue
    forms = {family} | ({f"{family}_bucket", f"{family}_sum", f"{family}_count"}
                        if kind in ("histogram", "summary") else set())
    if not forms & used:
        failures.append(f"the exported {kind} {family} is on no panel")

# Every query runs in the real Prometheus, with Grafana's variables as Grafana would fill them.
def query(expr):
    expr = expr.replace("$__rate_interval", "1m").replace("$instance", ".*")
    url = f"http://127.0.0.1:{prom_port}/api/v1/query?query=" + urllib.parse.quote(expr)
    try:
        return json.load(urllib.request.urlopen(url, timeout=10))
    except urllib.error.HTTPError as error:
        return json.load(error)
for _ in range(100):
    answer = query('up{job="classifier"}')
    if answer.get("data", {}).get("result"):
        break
    time.sleep(0.2)
with_data = 0
for where, expr in exprs + [(w, f"count({m})") for w, m in label_values]:
    answer = query(expr)
    if answer.get("status") != "success":
        failures.append(f"{where}: Prometheus rejects {expr!r}: {answer.get('error')}")
    elif answer["data"]["result"]:
        with_data += 1
print(f"{with_data} of {len(exprs) + len(label_values)} queries return data in Prometheus")

for failure in failures:
    print("FAIL", failure)
sys.exit(1 if failures else 0)
PY
  ok "every dashboard metric is exported, every exported metric is plotted, every query runs"
else
  bad "the dashboard matches the server's metrics"
fi
kill "$prom_pid" 2>/dev/null || true
check "the server exits 0 on SIGTERM" stop_server
finish
