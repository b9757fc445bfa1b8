#!/usr/bin/env bash
# Checks the lock annotations of server/ (ABSL_GUARDED_BY, ABSL_EXCLUSIVE_LOCKS_REQUIRED on
# server/mutex.h's Mutex) with clang's -Wthread-safety: GCC, which builds the project, ignores
# them. Syntax only (no code generated), with the include paths and defines of the real build,
# read from its compile_commands.json, so it costs seconds rather than a second build.
#
#   CLASSIFIER_BINARY_DIR=build bash tests/thread_safety_check.sh   (ctest sets the variable)
#
# CLANGXX overrides the compiler (default /usr/bin/clang++); THREAD_SAFETY_JOBS the files
# checked at once (default 2).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

clangxx="${CLANGXX:-/usr/bin/clang++}"
if ! [[ -x "$clangxx" ]]; then
  echo "thread_safety_check: $clangxx not found; scripts/install-deps.sh installs it (Debian" \
    "package clang)" >&2
  exit 1
fi
build_dir="${CLASSIFIER_BINARY_DIR:-build}"
commands="$build_dir/compile_commands.json"
if ! [[ -f "$commands" ]]; then
  echo "thread_safety_check: $commands not found; configure the build first (cmake -S . -B" \
    "$build_dir) and set CLASSIFIER_BINARY_DIR to its folder" >&2
  exit 1
fi

mapfile -t checked < <(git ls-files 'server/*.cc' 'web/*.cc' 2>/dev/null || ls server/*.cc web/*.cc)

# One line per source: the flags of its first entry in compile_commands.json that decide how it
# parses (-I, -isystem, -D, -U, -std, -include, -pthread), NUL-separated. GCC's warning and
# code-generation flags are left out: clang's own warnings are not this check's business.
flags_dir="$(mktemp -d)"
trap 'rm -rf "$flags_dir"' EXIT
python3 - "$commands" "$flags_dir" "$PWD" "${checked[@]}" <<'EOF'
import json, os, shlex, sys

commands, out_dir, root, sources = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
entries = {}
for entry in json.load(open(commands)):
    path = os.path.realpath(os.path.join(entry["directory"], entry["file"]))
    entries.setdefault(path, entry)
missing = []
for source in sources:
    entry = entries.get(os.path.realpath(os.path.join(root, source)))
    if entry is None:
        missing.append(source)
        continue
    args = entry.get("arguments") or shlex.split(entry["command"])
    kept = []
    i = 1
    while i < len(args):
        arg = args[i]
        if arg in ("-I", "-isystem", "-D", "-U", "-include"):
            kept += [arg, args[i + 1]]
            i += 2
            continue
        if arg.startswith(("-I", "-isystem", "-D", "-U", "-std=")) or arg == "-pthread":
            kept.append(arg)
        i += 1
    with open(os.path.join(out_dir, source.replace("/", "_") + ".flags"), "w") as f:
        f.write("\0".join(kept))
if missing:
    sys.exit("thread_safety_check: not in %s (a stale build folder? re-run cmake): %s"
             % (commands, " ".join(missing)))
EOF

check_one() {
  local source="$1"
  local -a flags
  mapfile -d '' -t flags < "$flags_dir/${source//\//_}.flags"
  "$clangxx" -fsyntax-only -Wthread-safety -Werror=thread-safety "${flags[@]}" "$source"
}
export -f check_one
export clangxx flags_dir

start=$SECONDS
# shellcheck disable=SC2016  # $1 is check_one's argument, expanded by the inner bash.
if printf '%s\0' "${checked[@]}" |
  xargs -0 -n 1 -P "${THREAD_SAFETY_JOBS:-2}" bash -c 'check_one "$1"' _; then
  echo "thread_safety_check: ${#checked[@]} files of server/ and web/ clean under -Wthread-safety" \
    "($((SECONDS - start)) s)"
else
  echo "thread_safety_check: clang's -Wthread-safety found the errors above: a guarded member" \
    "used without its lock, or a function called without the lock it requires" >&2
  exit 1
fi
