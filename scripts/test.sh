#!/usr/bin/env bash
# The README's second command: everything needed to run the whole test suite on a fresh
# Debian 12 machine. Installs the dependencies (Debian packages; buf from npm on first use),
# builds with tests, then runs every test with ctest: unit, integration (a real server on
# loopback), end to end (the built binaries), interop (Python's torch) and packaging checks.
#
#   scripts/test.sh            # everything
#   scripts/test.sh -R Service # extra arguments go to ctest
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/install-deps.sh
scripts/build.sh
# Two cores: two tests at a time; the heavier end-to-end tests hold a resource lock.
ctest --test-dir "${CLASSIFIER_BUILD_DIR:-build}" --output-on-failure -j2 --timeout 900 "$@"
