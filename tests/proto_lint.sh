#!/usr/bin/env bash
# `buf lint` of proto/ with proto/buf.yaml (the rules kept off are listed there with why): the
# API's .proto follows the protobuf style guide. buf comes from npm (@bufbuild/buf), installed
# once into a cache folder as the e2e tests do.
source "$(dirname "${BASH_SOURCE[0]}")/e2e/lib.sh"
check "buf installs from npm" ensure_buf
if [[ -x ${buf:-} ]]; then
  status=0
  (cd "$CLASSIFIER_SOURCE_DIR/proto" && "$buf" lint) >"$work/lint.txt" 2>&1 || status=$?
  cat "$work/lint.txt"
  check "buf lint finds nothing (exit $status)" test "$status" -eq 0
fi
finish
