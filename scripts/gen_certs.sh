#!/bin/bash
# Make a private CA and one certificate bundle per Zenoh identity for mutual TLS, with openssl, all
# local, for config/tls/*.json5: the router's server certificate, the cloud node (CN laecips-cloud),
# the trainer (CN laecips-trainer, the only identity the router lets announce and serve weights) and
# one edge per robot (CN edge-<robot_id>; the router's ACL subjects match these names).
#
# usage: scripts/gen_certs.sh [OUT_DIR] [ROBOT_IDS] [DAYS]
#   OUT_DIR    default runs/certs (git-ignored; config/tls/*.json5 point there)
#   ROBOT_IDS  comma-separated robot ids (default: robot1)
#   DAYS       validity in days (default: 365)
#
# Layout: every node folder holds only what that node needs, never the CA's private key:
#   OUT_DIR/ca-private/ca.key          the CA's private key: keep it OFF the robots and the server
#   OUT_DIR/router/{ca.pem,cert.pem,key.pem}
#   OUT_DIR/cloud/{ca.pem,cert.pem,key.pem}
#   OUT_DIR/trainer/{ca.pem,cert.pem,key.pem}
#   OUT_DIR/<robot_id>/{ca.pem,cert.pem,key.pem}   copy this folder (only) to that robot
#   OUT_DIR/ca.pem                     the CA certificate (public)
# Keys are written mode 0600. Existing files are replaced. Re-running with the same OUT_DIR makes a
# NEW CA: copy the new bundles to every node.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$root/runs/certs}
robots=${2:-robot1}
days=${3:-365}
command -v openssl >/dev/null || { echo "gen_certs.sh: openssl is not installed" >&2; exit 1; }
IFS=',' read -r -a robot_ids <<<"$robots"
for robot in "${robot_ids[@]}"; do
  case $robot in
    ca-private|router|cloud|trainer|"") echo "gen_certs.sh: robot id '$robot' is reserved or empty" >&2; exit 2 ;;
  esac
  [[ $robot =~ ^[A-Za-z0-9_-]{1,64}$ ]] || { echo "gen_certs.sh: robot id '$robot' is not [A-Za-z0-9_-]{1,64}" >&2; exit 2; }
done
mkdir -p "$out"
cd "$out"
umask 077
mkdir -p ca-private
rm -f ca.key ca.srl  # an older layout kept the CA key here, beside the node certificates
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca-private/ca.key -out ca.pem -days "$days" \
  -subj "/CN=laecips-local-ca" 2>/dev/null
chmod 0644 ca.pem
make_bundle() {  # folder common-name subjectAltName
  local dir=$1
  mkdir -p "$dir"
  openssl req -newkey rsa:2048 -nodes -keyout "$dir/key.pem" -out "$dir/cert.csr" -subj "/CN=$2" 2>/dev/null
  printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n' \
    "$3" >"$dir/cert.ext"
  openssl x509 -req -in "$dir/cert.csr" -CA ca.pem -CAkey ca-private/ca.key -CAcreateserial \
    -CAserial ca-private/ca.srl -out "$dir/cert.pem" -days "$days" -extfile "$dir/cert.ext" 2>/dev/null
  rm -f "$dir/cert.csr" "$dir/cert.ext"
  cp ca.pem "$dir/ca.pem"
  chmod 0644 "$dir/cert.pem" "$dir/ca.pem"
  chmod 0600 "$dir/key.pem"
  openssl verify -CAfile ca.pem "$dir/cert.pem" >/dev/null
}
make_bundle router localhost "DNS:localhost,IP:127.0.0.1"
make_bundle cloud laecips-cloud "DNS:laecips-cloud"
make_bundle trainer laecips-trainer "DNS:laecips-trainer"
for robot in "${robot_ids[@]}"; do
  make_bundle "$robot" "edge-$robot" "DNS:edge-$robot"
done
rm -f ca-private/ca.srl
echo "certificates in $out: router/ (CN=localhost), cloud/ (CN=laecips-cloud), trainer/ (CN=laecips-trainer)," \
  "$(printf '%s/ ' "${robot_ids[@]}")(CN=edge-<robot_id>); the CA key is in ca-private/ only"
