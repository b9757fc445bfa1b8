#!/usr/bin/env bash
# Fails when a C++ source of ours differs from clang-format's output (.clang-format: Google
# style, 100 columns). Fix with: clang-format -i $(git ls-files '*.cc' '*.h')
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mapfile -t files < <(git ls-files '*.cc' '*.h' 2>/dev/null || find model server client tests -name '*.cc' -o -name '*.h')
clang-format --dry-run -Werror "${files[@]}"
echo "clang-format: ${#files[@]} files clean"
