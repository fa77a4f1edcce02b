#!/usr/bin/env bash
# Register kyma-video's custom search attributes on a Temporal namespace (idempotent).
#
#   deploy/temporal/register-search-attributes.sh                      # self-hosted, temporal CLI
#   TEMPORAL_CLOUD=1 NAMESPACE=acme.a1b2c deploy/temporal/register-search-attributes.sh   # tcld
#
# Self-hosted: TEMPORAL_ADDRESS (default 127.0.0.1:7233) and NAMESPACE (default "default").
# Keep the list in sync with kyma_video/search_attributes.py (a test checks it).
set -euo pipefail

NAMESPACE="${NAMESPACE:-default}"
ATTRIBUTES=(KymaModel KymaProvider KymaJobStatus KymaAccount)

for name in "${ATTRIBUTES[@]}"; do
  if [ -n "${TEMPORAL_CLOUD:-}" ]; then
    tcld namespace search-attributes add --namespace "$NAMESPACE" --search-attribute "$name=Keyword" || true
  else
    temporal operator search-attribute create --address "${TEMPORAL_ADDRESS:-127.0.0.1:7233}" \
      --namespace "$NAMESPACE" --name "$name" --type Keyword || true
  fi
done
