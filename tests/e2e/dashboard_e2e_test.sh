#!/usr/bin/env bash
# The web dashboard in a real browser: Debian's Chromium, headless, driven by npm's
# puppeteer-core (tests/e2e/dashboard_browser.js), against a real server with a token
# (read-only calls open) while a Fashion-MNIST job trains. It checks the rendered DOM: the job's
# row with its epoch count rising, the job page's curve points growing while the job runs and
# ending with one point per epoch whose values are the job's epoch_end events, a cancel refused
# without the token and done with it, a model page with its confusion matrix and predicted
# samples, a deploy, a late tab replaying the whole log; and that the page fetched nothing
# from anywhere else. Screenshots are kept in $CLASSIFIER_BINARY_DIR/tests/e2e/dashboard/.
# Then the JSON API with curl: error shapes and statuses, the token, the browser rules, and a
# server-sent event stream resumed with Last-Event-ID.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

chromium_bin=$(command -v chromium || true)
if [[ -z $chromium_bin ]]; then
  echo "SKIP: chromium is not installed (scripts/install-deps.sh installs it with the test packages)"
  exit 77
fi
ensure_puppeteer || { echo "cannot install puppeteer-core from npm"; exit 1; }

fetch_mnist "$work/data"
printf 'dashboard-token-%s\n' "$RANDOM$RANDOM" >"$work/token"
token=$(cat "$work/token")
start_server "$work/data" "$work/state" --auth_token_file "$work/token" --auth_allow_read_only
http_port=$(sed -n 's/.*serving the web dashboard on .* (port \([0-9]*\)).*/\1/p' "$server_log" | head -1)
check "the server logs its dashboard port" test -n "$http_port"
base=http://127.0.0.1:$http_port
authcli() { cli --token_file "$work/token" "$@"; }

# The job the browser watches: long enough that the page sees it run (Fashion-MNIST's 60,000
# images, 8 epochs), with a validation split; and a second one to cancel from the page.
authcli train --dataset fashion-mnist --epochs 8 --validation_fraction 0.1 --seed 4 >"$work/train.txt" 2>&1 &
jobs_list() { curl -fsS "$base/api/v1/jobs?page_size=10" >"$work/jobs.json"; }
job_count() { jobs_list && python3 -c 'import json,sys; sys.exit(len(json.load(open(sys.argv[1])).get("jobs", [])) < int(sys.argv[2]))' "$work/jobs.json" "$1"; }
wait_until 120 "the first job is listed by GET /api/v1/jobs" job_count 1
job=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["jobs"][0]["jobId"])' "$work/jobs.json")
authcli train --dataset fashion-mnist --epochs 50 --seed 5 >"$work/train2.txt" 2>&1 &
wait_until 120 "the second job is listed" job_count 2
second=$(python3 -c 'import json,sys; print([j["jobId"] for j in json.load(open(sys.argv[1]))["jobs"] if j["jobId"] != sys.argv[2]][0])' "$work/jobs.json" "$job")
echo "jobs: watched $job, cancelled $second"

shots=$CLASSIFIER_BINARY_DIR/tests/e2e/dashboard
mkdir -p "$shots"
node "$CLASSIFIER_SOURCE_DIR/tests/e2e/dashboard_browser.js" "$puppeteer_modules" "$chromium_bin" \
  "$base" "$job" "$second" "$token" "$shots" >"$work/browser.json" 2>"$work/browser.log" || true
tail -20 "$work/browser.log"

# The job's own epoch_end events, from the API's event stream with curl.
curl -fsS -N --max-time 60 "$base/api/v1/jobs/$job/events" >"$work/events.txt" || true
check "the browser's view of the job is the job's event log" \
  python3 - "$work/browser.json" "$work/events.txt" "$job" "$second" <<'PY'
import json, sys
out = json.load(open(sys.argv[1]))
assert "error" not in out, out.get("error")
events = []
for block in open(sys.argv[2]).read().split("\n\n"):
    data = [line[6:] for line in block.split("\n") if line.startswith("data: ")]
    if "event: job_event" in block and data:
        events.append(json.loads(data[0]))
epoch_ends = [e["epochEnd"] for e in events if "epochEnd" in e]
epochs = len(epoch_ends)
assert epochs == 8, f"{epochs} epoch_end events"
print(f"overview epoch {out['overview_first_epoch']} -> {out['overview_later_epoch']} "
      f"(ETA cell {out['overview_eta_cell']!r}); job page train points {out['job_page_first_epochs']} "
      f"then {out['job_page_live_epochs']}, mid-job state {out['job_page_state_mid_job']}")
assert out["overview_later_epoch"] > out["overview_first_epoch"], "the row's epoch did not rise"
assert out["job_page_state_mid_job"] == "RUNNING", out["job_page_state_mid_job"]
assert len(out["job_page_live_epochs"]) > len(out["job_page_first_epochs"]), "no point appeared live"
assert out["job_page_final_state"] == "SUCCEEDED", out["job_page_final_state"]
assert out["job_page_epoch_text"] == f"{epochs}/{epochs}", out["job_page_epoch_text"]
def series(points, name):
    return {p["epoch"]: p["value"] for p in points if p["series"] == name}
want = {
    ("loss_points", "train"): [e["trainLoss"] for e in epoch_ends],
    ("loss_points", "validation"): [e["validationLoss"] for e in epoch_ends],
    ("accuracy_points", "train"): [e["trainAccuracy"] for e in epoch_ends],
    ("accuracy_points", "validation"): [e["validationAccuracy"] for e in epoch_ends],
}
for (chart, name), values in want.items():
    drawn = series(out[chart], name)
    assert sorted(drawn) == list(range(1, epochs + 1)), (chart, name, sorted(drawn))
    for epoch, value in enumerate(values, 1):
        assert abs(drawn[epoch] - value) <= 1e-12 * max(1, abs(value)), (chart, name, epoch, drawn[epoch], value)
assert out["late_page_points"] == 2 * epochs, out["late_page_points"]
finished = [e["finished"] for e in events if "finished" in e][0]
assert out["job_page_model_link"] == finished["modelId"], (out["job_page_model_link"], finished)
print(f"model {finished['modelId']}: {out['model_accuracy_text']}; cancel without token: "
      f"{out['cancel_without_token_message']!r}")
assert "UNAUTHENTICATED" in out["cancel_without_token_message"] or "token" in out["cancel_without_token_message"]
assert out["cancelled_state"] == "CANCELLED"
matrix = out["confusion"]
assert len(matrix) == 10 and all(len(r) == 10 for r in matrix), matrix
total = sum(map(sum, matrix))
shown = float(out["model_accuracy_text"].rstrip("%")) / 100
assert total == 10000 and abs(sum(matrix[i][i] for i in range(10)) / total - shown) < 1e-4, (total, shown)
samples = out["samples"]
assert len(samples) == 24 and all(s["inked"] > 20 for s in samples), samples
right = sum(s["label"] == s["predicted"] for s in samples)
assert right >= 12, f"only {right} of 24 samples predicted right"
assert "is deployed" in out["deploy_message"] and out["deployed_marked"]
# The browser logs each refused call; the only one expected is the cancel without a token.
unexpected = [e for e in out["console_errors"] if "status of 401" not in e]
assert unexpected == [], out["console_errors"]
assert out["failed_requests"] == [], out["failed_requests"]
print(f"samples right {right}/24; screenshots saved")
PY
deployed=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("job_page_model_link", "none"))' "$work/browser.json")
check "the deploy from the page reached the registry (the CLI marks $deployed deployed: *)" \
  bash -c "[[ \$('$cli_bin' --server '$server_addr' models 2>/dev/null | grep '$deployed' | awk '{print \$NF}') == '*' ]]"
check "the second job was cancelled from the page" \
  bash -c "curl -fsS '$base/api/v1/jobs/$second' | grep -q JOB_STATE_CANCELLED"
for shot in job-running job-done model overview; do
  check "screenshot dashboard-$shot.png saved" test -s "$shots/dashboard-$shot.png"
done

# The JSON API with curl.
status_of() { curl -s -o "$work/body.json" -w '%{http_code}' "$@"; }
error_is() {  # error_is HTTP STATUS WORDS: the body is Google's error shape with those values
  python3 - "$work/body.json" "$@" <<'PY'
import json, sys
body, http, status, words = json.load(open(sys.argv[1])), int(sys.argv[2]), sys.argv[3], sys.argv[4]
error = body["error"]
assert error["code"] == http and error["status"] == status and words in error["message"], error
PY
}
code=$(status_of "$base/api/v1/jobs/job-none")
check "GET an unknown job: 404 NOT_FOUND naming it" error_is 404 NOT_FOUND job-none
code=$(status_of "$base/api/v1/jobs?page_size=many")
check "a malformed query parameter: 400 naming it ($code)" error_is 400 INVALID_ARGUMENT page_size
code=$(status_of -X POST -H 'Content-Type: application/json' -d '{}' "$base/api/v1/jobs/$job:cancel")
check "POST :cancel without the token: 401 UNAUTHENTICATED ($code)" error_is 401 UNAUTHENTICATED token
code=$(status_of -X POST -H "Authorization: Bearer wrong" -H 'Content-Type: application/json' -d '{}' "$base/api/v1/models/none:deploy")
check "a wrong token: 401 ($code)" error_is 401 UNAUTHENTICATED token
code=$(status_of -X POST -H "Authorization: Bearer $token" -d 'model=x' "$base/api/v1/models/none:deploy")
check "a form POST (not JSON): 400 naming Content-Type ($code)" error_is 400 INVALID_ARGUMENT Content-Type
code=$(status_of -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  -H 'Origin: http://elsewhere.example' -d '{}' "$base/api/v1/models/none:deploy")
check "a POST from another origin: 403 ($code)" error_is 403 PERMISSION_DENIED elsewhere.example
code=$(status_of -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d '{}' "$base/api/v1/models/model-none:deploy")
check "deploy an unknown model with the token: 404 naming it ($code)" error_is 404 NOT_FOUND model-none
code=$(status_of -X POST -H 'Content-Type: application/json' -d '{"images": [{"rawPixels": "AAA="}]}' "$base/api/v1/predict")
check "Predict with 2 raw bytes: 400 naming the image's size ($code)" error_is 400 INVALID_ARGUMENT 784
code=$(status_of "$base/api/v1/models/model-none/evaluation")
check "evaluate an unknown model: 404 naming it ($code)" error_is 404 NOT_FOUND model-none
for path in /../../../etc/passwd /%2e%2e/%2e%2e/etc/passwd /..%2f..%2fetc%2fpasswd /dashboard.js/../../etc/passwd \
    /api/v1/datasets/..%2f..%2f..%2fetc/samples; do
  code=$(curl -s --path-as-is -o "$work/traversal.txt" -w '%{http_code}' "$base$path")
  check "no file outside the binary is served: $path is $code, not a file" \
    bash -c "[[ $code == 4* ]] && ! grep -q 'root:' '$work/traversal.txt'"
done
code=$(status_of "$base/api/v1/nowhere")
check "an unknown API route: 404 in the same shape ($code)" error_is 404 NOT_FOUND nowhere
curl -fsS -N --max-time 60 -H 'Last-Event-ID: 5' "$base/api/v1/jobs/$job/events" >"$work/resumed.txt" || true
check "an event stream resumed with Last-Event-ID: 5 starts at event 6 and ends with 'end'" \
  bash -c "[[ \$(grep -m1 '^id: ' '$work/resumed.txt') == 'id: 6' ]] && grep -q '^event: end' '$work/resumed.txt'"
check "every asset comes from the binary, the page with a same-origin Content-Security-Policy" \
  bash -c "curl -fsSI '$base/' | grep -qi \"content-security-policy: default-src 'self'\" &&
           curl -fsS '$base/dashboard.js' | grep -q readEventStream &&
           curl -fsS '$base/dashboard.css' | grep -q confusion &&
           ! curl -fsS '$base/' | grep -Eq '(src|href)=\"(https?:)?//'"
finish
