#!/usr/bin/env bash
# Starts SPIRE and spiffe-helper with docker compose, end to end.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p certs
chmod 0777 certs # written by the helper's uid 65532

server() { docker compose exec -T spire-server /opt/spire/bin/spire-server "$@"; }

docker compose up -d --wait spire-server
JOIN_TOKEN="$(server token generate -spiffeID spiffe://example.org/agent | awk '{print $2}')"
export JOIN_TOKEN
server entry create \
  -parentID spiffe://example.org/agent \
  -spiffeID spiffe://example.org/spiffe-helper \
  -selector unix:uid:65532 >/dev/null || true
if [ -z "$JOIN_TOKEN" ]; then
  echo "could not mint a join token" >&2
  exit 1
fi
docker compose up -d --build --wait spire-agent spiffe-helper
ls -l certs
