#!/bin/sh
# Throwaway test certificates for tests/aio (never use them for anything else), made with the
# documented script: one per node (A, B, C), a client's, an admin's, and node A's from a rogue CA.
# Regenerate with: sh tests/aio/certs/gen.sh
set -e
cd "$(dirname "$0")"
issue="../../../examples/issue_certs.sh"
rm -rf rogue ./*.pem ./*.key
export DAYS=36500
sh "$issue" . ca
for node in A B C; do sh "$issue" . node "$node" 127.0.0.1; done
sh "$issue" . client ops
sh "$issue" . admin ops
sh "$issue" rogue ca
sh "$issue" rogue node A 127.0.0.1
rm -f ca.key ca.srl rogue/ca.key rogue/ca.srl
