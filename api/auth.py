"""Who is calling: a Bearer API key, checked against its stored hash only.

The key itself never leaves this module: the rest of the request sees ids (``Principal``), and
only ids reach Temporal. The ledger looks keys up by their SHA-256 and confirms with a
constant-time comparison.
"""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.services import Services
from kyma_video.errors import ErrorCode, KymaError

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer kyma_...`")


async def get_services(request: Request) -> Services:
    # async: FastAPI runs a plain ``def`` dependency in its thread pool, a thread hop per request.
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


@dataclass(frozen=True)
class Principal:
    key_id: str
    account_id: str
    tier: str


#: Why a presented key was refused (401 ``auth_error``).
INVALID_KEY = "invalid or revoked API key"


async def presented_key(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    """The key from ``Authorization: Bearer <key>``, not yet checked (async for the same
    reason as :func:`get_services`)."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise KymaError(
            ErrorCode.AUTH_ERROR, "missing or malformed Authorization header; use Bearer <key>"
        )
    return credentials.credentials


PresentedKey = Annotated[str, Depends(presented_key)]


async def authenticate(services: ServicesDep, key: PresentedKey) -> Principal:
    found = await services.ledger.authenticate_account(key)
    if found is None:
        raise KymaError(ErrorCode.AUTH_ERROR, INVALID_KEY)
    record, account = found
    return Principal(key_id=record.id, account_id=account.id, tier=account.tier)


CurrentPrincipal = Annotated[Principal, Depends(authenticate)]
