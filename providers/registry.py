"""Routing: which provider serves a model on this deployment.

A model is served by its real provider when that provider is configured (credentials present),
otherwise by the simulated provider when it is enabled, otherwise not at all. Routing is decided
once, at admission, and recorded on the job, so a configuration change never moves a running job
to another provider.
"""

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from kyma_video.errors import ErrorCode, KymaError
from kyma_video.settings import Settings
from providers import fal, minimax, vertex
from providers.base import MediaFetcher, Provider
from providers.catalog import ModelSpec, ProviderName
from providers.http_media import media_client, media_fetcher
from providers.simulated import SimulatedProvider


@dataclass(frozen=True)
class ProviderRegistry:
    #: Real providers that are configured on this deployment, by name.
    real: Mapping[ProviderName, Provider] = field(default_factory=dict)
    simulated: Provider | None = None
    #: Clients the registry opened (HTTP pools), closed when the process shuts down.
    closers: tuple[Callable[[], Awaitable[None]], ...] = ()

    async def aclose(self) -> None:
        for close in self.closers:
            await close()

    def route(self, spec: ModelSpec) -> Provider:
        provider = self.real.get(spec.provider) or self.simulated
        if provider is None:
            raise KymaError(
                ErrorCode.INVALID_MODEL,
                f"{spec.id} is not available on this deployment: its provider "
                f"({spec.provider.value}) is not configured",
                param="model",
            )
        return provider

    def names(self) -> list[ProviderName]:
        """Every provider this process can call (each gets its own task queue)."""
        names = list(self.real)
        if self.simulated is not None:
            names.append(ProviderName.SIMULATED)
        return names

    def get(self, name: ProviderName) -> Provider:
        if name is ProviderName.SIMULATED and self.simulated is not None:
            return self.simulated
        provider = self.real.get(name)
        if provider is None:
            raise KymaError(
                ErrorCode.PROVIDER_ERROR, f"provider {name.value} is not configured on this worker"
            )
        return provider


#: Each real provider's factory: ``None`` unless its credentials are configured.
REAL_PROVIDERS: tuple[Callable[[Settings, MediaFetcher], Provider | None], ...] = (
    fal.from_settings,
    minimax.from_settings,
    vertex.from_settings,
)


def build_registry(settings: Settings) -> ProviderRegistry:
    """The providers this process can reach, from settings alone: every real provider whose
    credentials are set, and the simulated one for the rest when it is enabled."""
    client = media_client(settings)
    fetch = media_fetcher(settings, client)
    real: dict[ProviderName, Provider] = {}
    closers: list[Callable[[], Awaitable[None]]] = []
    for factory in REAL_PROVIDERS:
        provider = factory(settings, fetch)
        if provider is not None:
            real[provider.name] = provider
            close = getattr(provider, "aclose", None)
            if close is not None:
                closers.append(close)
    closers.append(client.aclose)
    simulated = (
        SimulatedProvider(default_seconds=settings.simulated_min_seconds)
        if settings.simulated_provider
        else None
    )
    return ProviderRegistry(real=real, simulated=simulated, closers=tuple(closers))
