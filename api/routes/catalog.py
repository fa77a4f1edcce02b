"""The model catalog and the caller's balance."""

from fastapi import APIRouter

from api.auth import CurrentPrincipal, ServicesDep
from api.errors import documented
from api.schemas import Balance, ModelInfo, ModelList
from providers.catalog import CATALOG, DEFAULT_DURATION, MAX_DURATION, MIN_DURATION

router = APIRouter(tags=["catalog"])


@router.get("/v1/models", response_model=ModelList, summary="List video models and prices")
async def list_models() -> ModelList:
    return ModelList(
        data=[
            ModelInfo(
                id=spec.id,
                provider=spec.provider.value,
                per_second_usd=spec.per_second_usd,
                default_duration_price_usd=spec.price_for(DEFAULT_DURATION),
                durations=list(range(MIN_DURATION, MAX_DURATION + 1)),
                upstream_durations=list(spec.accepted_durations),
                audio=spec.audio.value,
                resolution=spec.resolution,
                input_modes=[mode.value for mode in spec.input_modes],
                price_verified=spec.price_verified,
            )
            for spec in CATALOG.values()
        ]
    )


@router.get(
    "/v1/balance",
    response_model=Balance,
    responses=documented(),
    summary="The calling key's account balance",
)
async def get_balance(principal: CurrentPrincipal, services: ServicesDep) -> Balance:
    balance = await services.ledger.balance(principal.account_id)
    return Balance(account_id=principal.account_id, balance=balance)
