#!/usr/bin/python3
"""WatchJob clients for bench/soak.sh that drop their stream and come back.

Each watcher follows every job listed in JOBS_FILE, in order, through the real CLI
(`classifier-cli watch JOB --from N --json --reattach_seconds 0`). It kills its CLI with
SIGKILL after a random 0.3-3 s (an abrupt disconnect, mid-event or not), keeps the events
whose lines arrived whole, and reconnects from the sequence after the last one. It moves to
the next job once it has the job's `finished` event, and stops once STOP_FILE exists and it has
finished every listed job.

  soak_watchers.py watch CLI SERVER JOBS_FILE STOP_FILE OUT_DIR WATCHERS SEED
  soak_watchers.py check CLI SERVER JOBS_FILE OUT_DIR WATCHERS

`watch` writes OUT_DIR/watcher-K.json: per job, every sequence received, in order, and the
number of connections. `check` reads each job's whole log once more (the job has ended) and
checks that every watcher received exactly its sequences 1..N, each once; it prints one line
per job and exits 1 on any difference.
"""
import json
import os
import random
import selectors
import signal
import subprocess
import sys
import threading
import time


def listed_jobs(jobs_file):
    try:
        with open(jobs_file) as f:
            return [line.strip() for line in f if line.strip()]
    except FileNotFoundError:
        return []


def one_connection(cli, server, job, first, seconds):
    """Watches `job` from sequence `first` for up to `seconds`; returns (events, finished)."""
    process = subprocess.Popen(
        [cli, "--server", server, "watch", job, "--from", str(first), "--json",
         "--reattach_seconds", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + seconds
    data = b""
    ended = False
    while not ended:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        for _ in selector.select(timeout=left):
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:
                ended = True
            data += chunk
    if not ended:
        process.send_signal(signal.SIGKILL)
    # What reached the pipe before the kill was received; a line cut short was not.
    data += process.stdout.read()
    process.wait()
    selector.close()
    process.stdout.close()
    events, finished = [], False
    for line in data.split(b"\n")[:-1]:
        event = json.loads(line)
        events.append(int(event["sequence"]))
        finished = finished or "finished" in event
    return events, finished


def watch(cli, server, jobs_file, stop_file, out_path, seed):
    rng = random.Random(seed)
    received = {}  # job -> every sequence received, in order
    connections = {}
    done = 0  # Jobs of jobs_file finished.
    while True:
        jobs = listed_jobs(jobs_file)
        if done == len(jobs):
            if os.path.exists(stop_file) and len(listed_jobs(jobs_file)) == done:
                break
            time.sleep(0.2)
            continue
        job = jobs[done]
        seen = received.setdefault(job, [])
        events, finished = one_connection(cli, server, job, (seen[-1] + 1) if seen else 1,
                                          rng.uniform(0.3, 3.0))
        seen.extend(events)
        connections[job] = connections.get(job, 0) + 1
        if finished:
            done += 1
    with open(out_path, "w") as f:
        json.dump({"received": received, "connections": connections}, f)


def check(cli, server, jobs_file, out_dir, watchers):
    records = []
    for k in range(watchers):
        with open(os.path.join(out_dir, f"watcher-{k}.json")) as f:
            records.append(json.load(f))
    failures = 0
    for job in listed_jobs(jobs_file):
        log = subprocess.run([cli, "--server", server, "watch", job, "--json"],
                             capture_output=True, check=True, timeout=120).stdout
        sequences = [int(json.loads(line)["sequence"]) for line in log.splitlines()]
        expected = list(range(1, len(sequences) + 1))
        if sequences != expected:
            print(f"FAIL job {job}: its own log is not 1..N: {sequences}")
            failures += 1
            continue
        for k, record in enumerate(records):
            got = record["received"].get(job)
            connections = record["connections"].get(job, 0)
            if got != expected:
                print(f"FAIL job {job}, watcher {k}: received {got}, expected 1..{len(expected)}")
                failures += 1
        total = sum(r["connections"].get(job, 0) for r in records)
        print(f"job {job}: {len(expected)} events, each received once by each of {watchers} "
              f"watchers over {total} connections")
    return failures


def main():
    mode = sys.argv[1]
    if mode == "watch":
        cli, server, jobs_file, stop_file, out_dir, watchers, seed = sys.argv[2:9]
        threads = [threading.Thread(target=watch, args=(
            cli, server, jobs_file, stop_file, os.path.join(out_dir, f"watcher-{k}.json"),
            int(seed) * 1000 + k)) for k in range(int(watchers))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return 0
    if mode == "check":
        cli, server, jobs_file, out_dir, watchers = sys.argv[2:7]
        return 1 if check(cli, server, jobs_file, out_dir, int(watchers)) else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
