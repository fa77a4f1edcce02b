#!/usr/bin/env bash
# Register kyma-video's custom search attributes on a Temporal namespace. Run it once per
# namespace before the first worker starts; re-running it is safe.
#
#   Self-hosted cluster (temporal CLI):
#     TEMPORAL_ADDRESS=temporal-frontend:7233 NAMESPACE=default deploy/temporal/register-search-attributes.sh
#   Temporal Cloud (tcld, logged in):
#     TEMPORAL_CLOUD=1 NAMESPACE=acme.a1b2c deploy/temporal/register-search-attributes.sh
#
# Keep ATTRIBUTES in sync with kyma_video/search_attributes.py (tests/test_docs.py checks it).
set -euo pipefail

NAMESPACE="${NAMESPACE:-default}"
ATTRIBUTES=(KymaModel KymaProvider KymaJobStatus KymaAccount)

if [ -n "${TEMPORAL_CLOUD:-}" ]; then
  args=()
  for name in "${ATTRIBUTES[@]}"; do args+=(--search-attribute "$name=Keyword"); done
  tcld namespace search-attributes add --namespace "$NAMESPACE" "${args[@]}"
  exit 0
fi

address=(--address "${TEMPORAL_ADDRESS:-127.0.0.1:7233}" --namespace "$NAMESPACE")
existing=$(temporal operator search-attribute list "${address[@]}" --output json)
for name in "${ATTRIBUTES[@]}"; do
  if grep -q "\"$name\"" <<<"$existing"; then
    echo "$name: already registered"
  else
    temporal operator search-attribute create "${address[@]}" --name "$name" --type Keyword
    echo "$name: registered"
  fi
done
