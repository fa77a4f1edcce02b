"""Custom search attributes, so operators can filter runs in the Temporal UI, e.g.
``KymaJobStatus = "processing" AND KymaProvider = "fal"``.

They must be registered on the namespace before a workflow sets them: the dev server is started
with them (``kyma-video dev``, the test fixtures), and ``deploy/temporal/`` registers them on a
real cluster or Temporal Cloud.
"""

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.service import RPCError, RPCStatusCode

MODEL = SearchAttributeKey.for_keyword("KymaModel")
PROVIDER = SearchAttributeKey.for_keyword("KymaProvider")
JOB_STATUS = SearchAttributeKey.for_keyword("KymaJobStatus")
ACCOUNT = SearchAttributeKey.for_keyword("KymaAccount")

ALL: tuple[SearchAttributeKey[str], ...] = (MODEL, PROVIDER, JOB_STATUS, ACCOUNT)

#: The admission outcome recorded on a run whose hold was refused (no job exists).
REJECTED = "rejected"


def dev_server_flags() -> list[str]:
    """``temporal server start-dev`` arguments that register every attribute at start."""
    flags: list[str] = []
    for key in ALL:
        flags += ["--search-attribute", f"{key.name}=Keyword"]
    return flags


async def register(client: Client) -> None:
    """Add any missing attribute to the client's namespace (idempotent)."""
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
        registered = set(existing.custom_attributes)
    except RPCError as error:
        # Temporal's time-skipping test server can add attributes but not list them.
        if error.status is not RPCStatusCode.UNIMPLEMENTED:
            raise
        registered = set()
    missing = {
        key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
        for key in ALL
        if key.name not in registered
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing)
        )
