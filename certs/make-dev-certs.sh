#!/usr/bin/env bash
# Makes a development CA and a server certificate for localhost, 127.0.0.1 and ::1.
# Usage: certs/make-dev-certs.sh [output-dir]   (default: certs/dev/, which git ignores)
# Writes ca.crt, server.crt and server.key (mode 0600). The CA key is deleted once it
# has signed the server certificate, so nothing else can be signed with it.
set -euo pipefail

out=${1:-"$(dirname "$0")/dev"}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
umask 077

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$work/ca.key" -out "$work/ca.crt" -days 3650 \
    -subj "/CN=redveil development CA" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$work/server.key" -out "$work/server.csr" -subj "/CN=localhost" 2>/dev/null

cat >"$work/server.ext" <<'EXT'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
EXT

openssl x509 -req -in "$work/server.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" \
    -CAcreateserial -days 825 -extfile "$work/server.ext" -out "$work/server.crt" 2>/dev/null

# The server reads the key as PKCS#8.
openssl pkcs8 -topk8 -nocrypt -in "$work/server.key" -out "$out/server.key"
chmod 600 "$out/server.key"
install -m 644 "$work/ca.crt" "$out/ca.crt"
install -m 644 "$work/server.crt" "$out/server.crt"
echo "wrote $out/ca.crt $out/server.crt $out/server.key"
