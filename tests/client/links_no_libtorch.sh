#!/usr/bin/env bash
# links_no_libtorch.sh SERVER CLI...: every CLI binary's dynamic dependencies (ldd) hold no
# LibTorch library (libtorch*, libc10*), while SERVER's do: the control that shows the check
# sees LibTorch where it is linked. The CLI is a thin gRPC client; LibTorch is the server's.
set -u
server=$1
shift
fails=0
torch_libraries() { ldd "$1" | grep -oE '\<lib(torch[a-z_]*|c10[a-z_]*)\.so[^ ]*' | sort -u; }
if [[ -z $(torch_libraries "$server") ]]; then
  echo "FAIL the control: ldd finds no LibTorch in $server, so this check cannot see it"
  fails=1
fi
for binary in "$@"; do
  found=$(torch_libraries "$binary")
  if [[ -n $found ]]; then
    echo "FAIL $binary links LibTorch: $(echo "$found" | tr '\n' ' ')"
    fails=1
  else
    echo "ok   $binary links no LibTorch"
  fi
done
exit "$fails"
