#!/usr/bin/env bash
# Production settings of the real binaries: flags from CLASSIFIER_* environment variables (the
# command line wins), the effective configuration logged with no secret in it, bearer-token
# auth, TLS and mutual TLS with throwaway openssl certificates, the warning for a non-loopback
# plaintext port, and a clean SIGTERM (exit 0).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v openssl >/dev/null || { bad "openssl is needed (scripts/install-deps.sh)"; finish; }

fetch_mnist "$work/data"
"$idx_to_png_bin" "$work/data/mnist/t10k-images-idx3-ubyte.gz" "$work/data/mnist/t10k-labels-idx1-ubyte.gz" "$work/png" 2 >"$work/pngs.txt"
mapfile -t pngs < <(cut -d' ' -f1 "$work/pngs.txt")
# A random network of the tutorial's shape: enough to prove Predict runs.
/usr/bin/python3 - "$work/random.pth" <<'PY'
import sys, torch
from torch import nn
torch.manual_seed(0)
m = nn.Module()
m.conv1 = nn.Conv2d(1, 8, 3, padding=1); m.conv2 = nn.Conv2d(8, 16, 3, padding=1)
m.fc1 = nn.Linear(16 * 7 * 7, 10)
torch.save(m.state_dict(), sys.argv[1])
PY

# --- Configuration -------------------------------------------------------------------------
("$server_bin" --help 2>&1 || true) >"$work/help.txt"
check "--help names the environment variable of each flag" bash -c \
  "grep -q CLASSIFIER_MAX_PREDICT_IMAGES '$work/help.txt' && grep -q CLASSIFIER_AUTH_TOKEN_FILE '$work/help.txt' && grep -q 'command line wins' '$work/help.txt'"
status=0; CLASSIFIER_MAX_PREDICT_IMAGES=many "$server_bin" >"$work/bad-env.txt" 2>&1 || status=$?
check "a malformed CLASSIFIER_* value stops the start and names the variable" bash -c \
  "[[ $status != 0 ]] && grep -q CLASSIFIER_MAX_PREDICT_IMAGES '$work/bad-env.txt'"

# --- Token auth on a plaintext loopback port, flags from the environment ----------------------
token=tok-$RANDOM-$RANDOM-e2e
printf '%s\n' "$token" >"$work/token"
printf 'not-the-token\n' >"$work/wrong-token"
CLASSIFIER_MAX_PREDICT_IMAGES=1 CLASSIFIER_AUTH_TOKEN_FILE=$work/token \
  start_server "$work/data" "$work/state"
check "the effective configuration is logged once, with the env values" bash -c \
  "[[ \$(grep -c 'configuration: ' '$server_log') == 1 ]] && grep 'configuration: ' '$server_log' | grep -q 'max_predict_images=1 ' && grep 'configuration: ' '$server_log' | grep -q 'auth_token_file=$work/token'"
check "health needs no token" bash -c "[[ \$('$cli_bin' --server $server_addr health) == SERVING ]]"
status=0; cli models >"$work/no-token.txt" 2>&1 || status=$?
check "no token: refused UNAUTHENTICATED (exit $status)" bash -c "[[ $status == 1 ]] && grep -q UNAUTHENTICATED '$work/no-token.txt'"
status=0; cli --token_file "$work/wrong-token" models >"$work/wrong.txt" 2>&1 || status=$?
check "wrong token: refused UNAUTHENTICATED (exit $status)" bash -c "[[ $status == 1 ]] && grep -q UNAUTHENTICATED '$work/wrong.txt'"
status=0; CLASSIFIER_TOKEN=$token cli import "${work}/random.pth" >"$work/import.txt" 2>&1 || status=$?
check "right token from CLASSIFIER_TOKEN: import accepted" bash -c "[[ $status == 0 ]] && grep -q '^imported model-' '$work/import.txt'"
check "right token from --token_file: predict accepted" cli --token_file "$work/token" predict "${pngs[0]}"
status=0; cli --token_file "$work/token" predict "${pngs[@]}" >"$work/too-many.txt" 2>&1 || status=$?
check "CLASSIFIER_MAX_PREDICT_IMAGES=1 refuses two images (exit $status)" bash -c "[[ $status == 1 ]] && grep -q RESOURCE_EXHAUSTED '$work/too-many.txt'"
check "the token never appears in the server's log" bash -c "! grep -q '$token' '$server_log' && ! grep -q not-the-token '$server_log'"
check "refusals are logged" grep -q "code 16" "$server_log"
web=$(sed -n 's/.*serving the web dashboard on .* (port \([0-9]*\)).*/\1/p' "$server_log" | head -1)
check "the dashboard's API follows the token: 401 without, 200 with (port ${web:-none})" \
  bash -c "[[ \$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$web/api/v1/models) == 401 &&
             \$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer $token' http://127.0.0.1:$web/api/v1/models) == 200 ]]"
check "SIGTERM: exit 0" stop_server

CLASSIFIER_AUTH_TOKEN_FILE=$work/token start_server "$work/data" "$work/state" --auth_allow_read_only
check "--auth_allow_read_only: models and predict without a token" bash -c "'$cli_bin' --server $server_addr models >/dev/null && '$cli_bin' --server $server_addr predict '${pngs[0]}' >/dev/null"
status=0; cli delete model-x >"$work/ro-delete.txt" 2>&1 || status=$?
check "--auth_allow_read_only: delete without a token is refused" grep -q UNAUTHENTICATED "$work/ro-delete.txt"
check "SIGTERM: exit 0" stop_server

# --- TLS and mutual TLS -------------------------------------------------------------------
pki=$work/pki
mkdir -p "$pki"
(
  cd "$pki"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1 -subj /CN=test-ca
  openssl req -x509 -newkey rsa:2048 -nodes -keyout other-ca.key -out other-ca.pem -days 1 -subj /CN=other-ca
  openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 1 -extfile server.ext
  openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj /CN=test-client
  printf 'extendedKeyUsage=clientAuth\n' >client.ext
  openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 1 -extfile client.ext
  # A client certificate from a CA the server does not trust.
  openssl req -newkey rsa:2048 -nodes -keyout rogue.key -out rogue.csr -subj /CN=rogue
  openssl x509 -req -in rogue.csr -CA other-ca.pem -CAkey other-ca.key -CAcreateserial -out rogue.pem -days 1 -extfile client.ext
) >"$work/openssl.log" 2>&1 || { cat "$work/openssl.log"; bad "openssl could not make the certificates"; finish; }

CLASSIFIER_MAX_PREDICT_IMAGES=1 start_server "$work/data" "$work/state" \
  --tls_cert "$pki/server.pem" --tls_key "$pki/server.key" --max_predict_images 5
check "TLS: health over TLS" bash -c "[[ \$('$cli_bin' --server $server_addr --tls_ca '$pki/ca.pem' health) == SERVING ]]"
check "TLS: predict over TLS (--max_predict_images 5 beats CLASSIFIER_MAX_PREDICT_IMAGES=1)" \
  cli --tls_ca "$pki/ca.pem" predict "${pngs[@]}"
check "TLS: the name localhost checks too" \
  "$cli_bin" --server "localhost:$server_port" --tls_ca "$pki/ca.pem" models
web=$(sed -n 's/.*serving the web dashboard on \(https:[^ ]*\) (port \([0-9]*\)).*/\2/p' "$server_log" | head -1)
check "TLS: the web dashboard is served over HTTPS with the same certificate (port ${web:-none})" \
  bash -c "curl -fsS --cacert '$pki/ca.pem' https://127.0.0.1:$web/api/v1/models | grep -q models"
check "TLS: plain HTTP to the dashboard's port gets no answer" \
  bash -c "! curl -fsS --max-time 5 http://127.0.0.1:$web/api/v1/models >/dev/null 2>&1"
status=0; cli --timeout 5 health >"$work/plain-on-tls.txt" 2>&1 || status=$?
check "TLS: a plaintext client is refused (exit $status)" test "$status" -ne 0
status=0; cli --timeout 5 --tls_ca "$pki/other-ca.pem" health >"$work/wrong-ca.txt" 2>&1 || status=$?
check "TLS: a client trusting another CA refuses the server (exit $status)" test "$status" -ne 0
check "SIGTERM: exit 0" stop_server

start_server "$work/data" "$work/state" --tls_cert "$pki/server.pem" --tls_key "$pki/server.key" \
  --tls_client_ca "$pki/ca.pem"
check "mTLS: the log says mutual TLS" grep -q "mutual TLS" "$server_log"
check "mTLS: health and predict with a client certificate" bash -c \
  "'$cli_bin' --server $server_addr --tls_ca '$pki/ca.pem' --tls_cert '$pki/client.pem' --tls_key '$pki/client.key' health >/dev/null && '$cli_bin' --server $server_addr --tls_ca '$pki/ca.pem' --tls_cert '$pki/client.pem' --tls_key '$pki/client.key' predict '${pngs[0]}' >/dev/null"
web=$(sed -n 's/.*serving the web dashboard on .* (port \([0-9]*\)).*/\1/p' "$server_log" | head -1)
check "mTLS: the dashboard takes a client certificate from the client CA" \
  bash -c "curl -fsS --cacert '$pki/ca.pem' --cert '$pki/client.pem' --key '$pki/client.key' https://127.0.0.1:$web/api/v1/models | grep -q models"
check "mTLS: the dashboard refuses a client without a certificate, and a rogue one" \
  bash -c "! curl -fsS --max-time 5 --cacert '$pki/ca.pem' https://127.0.0.1:$web/api/v1/models >/dev/null 2>&1 &&
           ! curl -fsS --max-time 5 --cacert '$pki/ca.pem' --cert '$pki/rogue.pem' --key '$pki/rogue.key' https://127.0.0.1:$web/api/v1/models >/dev/null 2>&1"
status=0; cli --timeout 5 --tls_ca "$pki/ca.pem" health >"$work/no-cert.txt" 2>&1 || status=$?
check "mTLS: a client without a certificate is refused (exit $status)" test "$status" -ne 0
status=0; cli --timeout 5 --tls_ca "$pki/ca.pem" --tls_cert "$pki/rogue.pem" --tls_key "$pki/rogue.key" health >"$work/rogue.txt" 2>&1 || status=$?
check "mTLS: a certificate from an untrusted CA is refused (exit $status)" test "$status" -ne 0
status=0; cli --timeout 5 health >"$work/plain-on-mtls.txt" 2>&1 || status=$?
check "mTLS: a plaintext client is refused (exit $status)" test "$status" -ne 0
check "SIGTERM: exit 0" stop_server

# --- A plaintext port open to the network without a token: a warning ------------------------
start_server "$work/data" "$work/state" --listen 0.0.0.0:0
check "non-loopback plaintext without a token logs a warning" grep -q "without TLS or a token" "$server_log"
check "SIGTERM: exit 0" stop_server
start_server "$work/data" "$work/state"
check "loopback plaintext: no warning" bash -c "! grep -q 'without TLS or a token' '$server_log'"
check "SIGTERM: exit 0" stop_server

finish
