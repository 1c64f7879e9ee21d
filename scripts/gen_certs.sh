#!/bin/bash
# Make a private CA, a server certificate (router listener) and client certificates for mutual TLS
# (cloud/trainer CN=laecips-cloud, edge CN=EDGE_CN) with openssl, all local, for config/tls/*.json5.
#
# usage: scripts/gen_certs.sh [OUT_DIR] [EDGE_CN] [DAYS]
#   OUT_DIR  where ca.pem, {server,cloud,edge}.{pem,key} go (default: runs/certs, git-ignored;
#            config/tls/*.json5 point there)
#   EDGE_CN  common name of the edge client certificate (default: edge-robot1); ACL subjects match it
#   DAYS     validity in days (default: 365)
# Keys are written mode 0600. Existing files are replaced.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$root/runs/certs}
edge_cn=${2:-edge-robot1}
days=${3:-365}
command -v openssl >/dev/null || { echo "gen_certs.sh: openssl is not installed" >&2; exit 1; }
mkdir -p "$out"
cd "$out"
umask 077
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days "$days" \
  -subj "/CN=laecips-local-ca" 2>/dev/null
make_cert() {  # name common-name subjectAltName
  openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "/CN=$2" 2>/dev/null
  printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n' \
    "$3" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -out "$1.pem" -days "$days" \
    -extfile "$1.ext" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
make_cert server localhost "DNS:localhost,IP:127.0.0.1"
make_cert cloud laecips-cloud "DNS:laecips-cloud"
make_cert edge "$edge_cn" "DNS:$edge_cn"
chmod 0644 ca.pem server.pem cloud.pem edge.pem
rm -f ca.srl
openssl verify -CAfile ca.pem server.pem cloud.pem edge.pem >/dev/null
echo "certificates in $out: ca.pem, server.pem (CN=localhost), cloud.pem (CN=laecips-cloud), edge.pem (CN=$edge_cn)"
