#!/bin/sh
# Throwaway test certificates for tests/aio (never use them for anything else).
# Regenerate with: sh tests/aio/certs/gen.sh (from the repository root or this directory).
set -e
cd "$(dirname "$0")"
for ca in ca rogue-ca; do
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 36500 \
    -subj "/CN=dynamo-core test $ca" -keyout "$ca.key" -out "$ca.pem" 2>/dev/null
done
sign() {  # name ca
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj "/CN=$1" -keyout "$1.key" -out "$1.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -days 36500 \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
sign node ca
sign rogue rogue-ca
rm -f ca.key rogue-ca.key ./*.srl
