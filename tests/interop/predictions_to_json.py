#!/usr/bin/env python3
"""Pairs test images with the service's probabilities for them, for check_export.py and
check_onnx.py.

usage: predictions_to_json.py T10K_IMAGES_GZ PREDICT_JSON OUT_JSON

PREDICT_JSON is `classifier-cli predict --top_k 10 --json` output for the first N images of
T10K_IMAGES_GZ (in order); OUT_JSON gets {"images": [[784 floats]], "probabilities": [[10]]}.
"""
import gzip
import json
import sys

raw = gzip.open(sys.argv[1]).read()[16:]
response = json.loads(open(sys.argv[2]).read())
images, probabilities = [], []
for i, prediction in enumerate(response["predictions"]):
    images.append([b / 255.0 for b in raw[i * 784:(i + 1) * 784]])
    row = [0.0] * 10
    for entry in prediction["top_k"]:
        row[entry["label"]] = entry["probability"]
    probabilities.append(row)
json.dump({"images": images, "probabilities": probabilities}, open(sys.argv[3], "w"))
