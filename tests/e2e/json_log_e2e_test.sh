#!/usr/bin/env bash
# --log_format=json on the real binary: every line the server writes (stdout and stderr, gRPC's
# own messages included) is one JSON object with time, level, logger and message; the start,
# the configuration and the shutdown are there; a job id full of quotes, backslashes and control
# characters comes back byte for byte after escaping.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mkdir -p "$work/data"
# The format and a keepalive setting from the environment, as a container would set them.
CLASSIFIER_LOG_FORMAT=json CLASSIFIER_KEEPALIVE_TIME=5m start_server "$work/data" "$work/state"
check "the server answers health" cli health
nasty=$'job-"quoted"\\back\tslash\nnext line \x01 caf\xc3\xa9'
status=0
cli watch "$nasty" >"$work/watch.txt" 2>&1 || status=$?
check "WatchJob of an unknown id fails (exit $status)" test "$status" -ne 0
printf '%s' "$nasty" >"$work/nasty.txt"
check "the server exits 0 on SIGTERM" stop_server

if python3 - "$server_log" "$work/nasty.txt" <<'PY'; then
import json, re, sys
lines = open(sys.argv[1], "rb").read().decode("utf-8").splitlines()
nasty = open(sys.argv[2], "rb").read().decode("utf-8")
records, failures = [], []
for number, line in enumerate(lines, 1):
    try:
        record = json.loads(line)
    except ValueError as error:
        failures.append(f"line {number} is not JSON ({error}): {line[:200]}")
        continue
    if not isinstance(record, dict) or set(record) != {"time", "level", "logger", "message"}:
        failures.append(f"line {number} lacks exactly time/level/logger/message: {line[:200]}")
        continue
    if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", record["time"]):
        failures.append(f"line {number}: time {record['time']!r} is not UTC ISO 8601")
    if record["level"] not in {"trace", "debug", "info", "warning", "error", "critical"}:
        failures.append(f"line {number}: level {record['level']!r}")
    records.append(record)
print(f"{len(lines)} log lines, {len(records)} JSON records")
def has(predicate, what):
    if any(predicate(r) for r in records):
        print(f"ok   {what}")
    else:
        failures.append(f"no record {what}")
has(lambda r: r["logger"] == "classifier-server" and "listening on" in r["message"]
    and re.search(r"\(port \d+\)", r["message"]), "with 'listening on ... (port N)'")
has(lambda r: r["message"].startswith("configuration: ") and "log_format=json" in r["message"]
    and "keepalive_time=5m" in r["message"], "with the effective configuration (from CLASSIFIER_*)")
has(lambda r: "shutdown complete" in r["message"], "with 'shutdown complete'")
has(lambda r: "rpc WatchJob" in r["message"] and nasty in r["message"],
    "quoting the job id with quotes, backslash, tab, newline, \\x01 and UTF-8 intact")
for failure in failures:
    print("FAIL", failure)
sys.exit(1 if failures or not records else 0)
PY
  ok "every log line is one JSON object"
else
  bad "every log line is one JSON object"
fi
finish
