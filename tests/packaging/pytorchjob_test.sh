#!/usr/bin/env bash
# docker/pytorchjob.yaml: parses as YAML, is a kubeflow.org/v1 PyTorchJob with one Master and
# Workers whose container (named `pytorch`, as the training operator requires) runs
# classifier-rank with the same arguments on every replica and the checkpoint on the shared
# volume; and classifier-rank accepts those arguments (it stops only at the missing torchrun
# environment, which the operator provides). Exits 77 (skipped) without Python's yaml module.
set -euo pipefail
: "${CLASSIFIER_SOURCE_DIR:?set by ctest}" "${CLASSIFIER_BINARY_DIR:?set by ctest}"
manifest=$CLASSIFIER_SOURCE_DIR/docker/pytorchjob.yaml
python=/usr/bin/python3
if ! "$python" -c 'import yaml' 2>/dev/null; then
  echo "SKIP: Python's yaml module is missing (python3-yaml, pulled in by docker-compose)"
  exit 77
fi
mapfile -t args < <("$python" - "$manifest" <<'PY'
import sys, yaml
job = yaml.safe_load(open(sys.argv[1]))
assert job["apiVersion"] == "kubeflow.org/v1" and job["kind"] == "PyTorchJob", job
specs = job["spec"]["pytorchReplicaSpecs"]
assert set(specs) == {"Master", "Worker"}, specs.keys()
assert specs["Master"]["replicas"] == 1, specs["Master"]
assert specs["Worker"]["replicas"] >= 1, specs["Worker"]
containers = {}
for role, spec in specs.items():
    assert spec["restartPolicy"] == "OnFailure", role
    (container,) = spec["template"]["spec"]["containers"]
    assert container["name"] == "pytorch", (role, container["name"])
    assert container["command"] == ["classifier-rank"], container["command"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    checkpoint = [a.split("=", 1)[1] for a in container["args"] if a.startswith("--checkpoint=")]
    assert checkpoint and any(checkpoint[0].startswith(m + "/") for m in mounts), (checkpoint, mounts)
    containers[role] = container
assert containers["Master"]["args"] == containers["Worker"]["args"], "every rank needs the same job"
print("\n".join(containers["Master"]["args"]))
PY
)
echo "ok: a PyTorchJob of one Master and Workers running classifier-rank with one set of arguments"
status=0
env -u MASTER_ADDR -u MASTER_PORT -u RANK -u WORLD_SIZE \
  "$CLASSIFIER_BINARY_DIR/distributed/classifier-rank" "${args[@]}" 2>"${TMPDIR:-/tmp}/pytorchjob-$$.err" || status=$?
if [[ $status -eq 1 ]] && grep -q "MASTER_ADDR is not set" "${TMPDIR:-/tmp}/pytorchjob-$$.err"; then
  echo "ok: classifier-rank accepts the manifest's arguments"
  rm -f "${TMPDIR:-/tmp}/pytorchjob-$$.err"
else
  echo "FAIL: classifier-rank with the manifest's arguments exited $status:"
  cat "${TMPDIR:-/tmp}/pytorchjob-$$.err"
  rm -f "${TMPDIR:-/tmp}/pytorchjob-$$.err"
  exit 1
fi
