#!/bin/sh
# Issue the certificates of a dynamo-core cluster with openssl (P-256 keys, 825 days).
#
#   sh issue_certs.sh DIR ca                  # once: DIR/ca.pem, DIR/ca.key (keep ca.key offline)
#   sh issue_certs.sh DIR node ID [HOST...]   # DIR/node-ID.pem, DIR/node-ID.key
#   sh issue_certs.sh DIR client NAME         # DIR/client-NAME.pem, DIR/client-NAME.key
#   sh issue_certs.sh DIR admin NAME          # DIR/admin-NAME.pem: `dynamo-core admin` (membership)
#
# A node's certificate names it in subjectAltName as the URI dynamo-core://node/ID, a client's
# as dynamo-core://client/NAME, an operator's as dynamo-core://admin/NAME: nodes check that URI
# against the role and id a peer claims. HOST arguments add DNS or IP names for peers that
# check host names. IDs and NAMEs in certificates use letters, digits and "-._~" only.
set -eu
dir=$1
kind=$2
mkdir -p "$dir"
cd "$dir"
umask 077
days=${DAYS:-825}
if [ "$kind" = ca ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days "$days" \
    -subj "/CN=dynamo-core cluster CA" -keyout ca.key -out ca.pem 2>/dev/null
  exit 0
fi
name=$3
shift 3
case $kind in
  node|client|admin) ;;
  *) echo "usage: $0 DIR ca | node ID [HOST...] | client NAME | admin NAME" >&2; exit 2 ;;
esac
case $name in
  *[!A-Za-z0-9._~-]*|"") echo "$kind name must use letters, digits and -._~ only" >&2; exit 2 ;;
esac
san="URI:dynamo-core://$kind/$name"
for host in "$@"; do
  case $host in
    *[!0-9.:]*) san="$san,DNS:$host" ;;
    *) san="$san,IP:$host" ;;
  esac
done
out="$kind-$name"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -subj "/CN=$out" -keyout "$out.key" -out "$out.csr" 2>/dev/null
printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$san" > "$out.ext"
openssl x509 -req -in "$out.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days "$days" \
  -extfile "$out.ext" -out "$out.pem" 2>/dev/null
rm -f "$out.csr" "$out.ext"
