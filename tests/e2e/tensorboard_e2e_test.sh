#!/usr/bin/env bash
# Every job's curves as TensorBoard event files, read back by an independent reader
# (tfevents_reader.py: protobuf's Python runtime and Google's CRC-32C, no code of ours): each
# epoch's train and validation loss and accuracy, learning rate and images per second equal the
# job's epoch_end events; a job killed with SIGKILL and resumed shows each epoch once, its
# restart superseding what the crashed run wrote past its checkpoint; a record cut short ends
# its file quietly, as TensorBoard reads it, a damaged one is data loss; a sweep's trials are
# runs of their own; --tensorboard=false writes none.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
reader=$CLASSIFIER_SOURCE_DIR/tests/e2e/tfevents_reader.py

fetch_mnist "$work/data"
state=$work/state
start_server "$work/data" "$state"
job=$(cli train --epochs 3 --batch_size 10 --validation_fraction 0.1 --lr_schedule step \
  --lr_step_size 1 --lr_gamma 0.5 --detach)
cli watch "$job" --json >"$work/before.json" 2>/dev/null &
watcher=$!
wait_until 300 "job $job saved the checkpoint of epoch 1" \
  grep -q '"checkpoint_saved":{"epoch":1' "$work/before.json"
kill -KILL "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
wait "$watcher" 2>/dev/null || true
run=$state/runs/$job
check "the crashed run left an event file in $run" bash -c "ls '$run'/events.out.tfevents.* >/dev/null"

# As if the crash had come after the next epoch's record and before its checkpoint: a forged
# record of that epoch, with values no epoch has, at the end of the crashed run's file; and one
# at step 9, past the job's end, which no epoch of the resumed run overwrites: only the resumed
# run's SessionLog START (drop every step from the resume point on) removes it.
/usr/bin/python3 - "$reader" "$run" <<'PY'
import importlib.util, sys
spec = importlib.util.spec_from_file_location("reader", sys.argv[1])
reader = importlib.util.module_from_spec(spec); spec.loader.exec_module(reader)
path = reader.event_files(sys.argv[2])[-1]
steps = [e.step for e in reader.read_events(path) if e.HasField("summary")]
with open(path, "ab") as f:
    for step in (max(steps) + 1, 9):
        forged = reader.Event(wall_time=1.0, step=step)
        forged.summary.value.add(tag="train/loss", simple_value=12345.0)
        f.write(reader.record(forged.SerializeToString()))
print(f"forged steps {max(steps) + 1} and 9 after steps {steps} in {path}")
PY

start_server "$work/data" "$state"
status=0; cli watch "$job" --json >"$work/after.json" || status=$?
check "the job resumes and succeeds (watch exit $status)" test "$status" -eq 0
check "a second event file, the resumed run's" bash -c "(( \$(ls '$run'/events.out.tfevents.* | wc -l) == 2 ))"
/usr/bin/python3 "$reader" "$run" >"$work/run.json"
check "every epoch's values equal the job's epoch_end events (float32), the forged ones gone" \
  /usr/bin/python3 - "$work/after.json" "$work/run.json" <<'PY'
import json, struct, sys
events = [json.loads(line) for line in open(sys.argv[1])]
run = json.load(open(sys.argv[2]))
f32 = lambda x: struct.unpack("<f", struct.pack("<f", x))[0]
ends = {e["epoch_end"]["epoch"]: e["epoch_end"] for e in events if "epoch_end" in e}
assert sorted(ends) == [1, 2, 3], sorted(ends)
fields = {"train/loss": "train_loss", "train/accuracy": "train_accuracy",
          "validation/loss": "validation_loss", "validation/accuracy": "validation_accuracy",
          "learning_rate": "learning_rate", "images_per_second": "images_per_second"}
assert sorted(run) == sorted(fields), sorted(run)
for tag, field in fields.items():
    expected = {str(epoch): f32(end[field]) for epoch, end in ends.items()}
    assert run[tag] == expected, (tag, run[tag], expected)
assert [ends[e]["learning_rate"] for e in (1, 2, 3)] == [0.001, 0.0005, 0.00025], ends
print("3 epochs x 6 tags equal; learning rates", run["learning_rate"])
PY

# A record cut short at the end of a file (a crash mid-write) ends that file quietly: every
# complete record before it still reads; a byte flipped inside a record is data loss.
last=$(ls "$run"/events.out.tfevents.* | sort | tail -1)
mkdir -p "$work/cut" "$work/flipped"
cp "$last" "$work/cut/"; cp "$last" "$work/flipped/"
cut_file=$work/cut/$(basename "$last"); flipped_file=$work/flipped/$(basename "$last")
truncate -s $(($(stat -c %s "$last") - 7)) "$cut_file"
check "a file cut mid-record reads up to its last complete record" /usr/bin/python3 - "$reader" "$last" "$cut_file" <<'PY'
import importlib.util, sys
spec = importlib.util.spec_from_file_location("reader", sys.argv[1])
reader = importlib.util.module_from_spec(spec); spec.loader.exec_module(reader)
whole, cut = list(reader.read_events(sys.argv[2])), list(reader.read_events(sys.argv[3]))
assert len(cut) == len(whole) - 1 and cut == whole[:-1], (len(whole), len(cut))
PY
/usr/bin/python3 -c 'import sys; p = sys.argv[1]; b = bytearray(open(p, "rb").read()); b[40] ^= 0x10; open(p, "wb").write(b)' "$flipped_file"
check "a flipped byte is data loss, not a silent value" bash -c "! /usr/bin/python3 '$reader' '$work/flipped' 2>'$work/flipped.err' && grep -q 'checksum wrong' '$work/flipped.err'"

# A sweep: each trial is its own run, beside the others.
sweep=$(cli train --epochs 1 --batch_size 50 --validation_fraction 0.1 --sweep_learning_rates 0.001,0.01 --detach)
cli watch "$sweep" --json >"$work/sweep.json" || true
check "the sweep's trials each have a run" /usr/bin/python3 - "$reader" "$state/runs/$sweep" "$work/sweep.json" <<'PY'
import importlib.util, json, struct, sys
spec = importlib.util.spec_from_file_location("reader", sys.argv[1])
reader = importlib.util.module_from_spec(spec); spec.loader.exec_module(reader)
events = [json.loads(line) for line in open(sys.argv[3])]
assert events[-1]["finished"]["state"] == "JOB_STATE_SUCCEEDED", events[-1]
f32 = lambda x: struct.unpack("<f", struct.pack("<f", x))[0]
for trial in (1, 2):
    end = [e["epoch_end"] for e in events if "epoch_end" in e and e.get("trial") == trial]
    assert len(end) == 1, (trial, end)
    run = reader.read_run(f"{sys.argv[2]}/trial-{trial}")
    assert run["train/loss"] == {1: f32(end[0]["train_loss"])}, (trial, run)
    assert run["learning_rate"] == {1: f32(end[0]["learning_rate"])}, (trial, run)
PY
stop_server

start_server "$work/data" "$work/state-off" --tensorboard=false
cli train --epochs 1 --batch_size 100 >/dev/null
check "--tensorboard=false writes no event files" bash -c "[[ ! -e '$work/state-off/runs' ]]"
stop_server
finish
