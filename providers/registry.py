"""Routing: which provider serves a model on this deployment.

A model is served by its real provider when that provider is configured (credentials present),
otherwise by the simulated provider when it is enabled, otherwise not at all. Routing is decided
once, at admission, and recorded on the job, so a configuration change never moves a running job
to another provider.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

from kyma_video.errors import ErrorCode, KymaError
from kyma_video.settings import Settings
from providers.base import Provider
from providers.catalog import ModelSpec, ProviderName
from providers.simulated import SimulatedProvider


@dataclass(frozen=True)
class ProviderRegistry:
    #: Real providers that are configured on this deployment, by name.
    real: Mapping[ProviderName, Provider] = field(default_factory=dict)
    simulated: Provider | None = None

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


def build_registry(settings: Settings) -> ProviderRegistry:
    """The providers this process can reach, from settings alone."""
    simulated = (
        SimulatedProvider(default_seconds=settings.simulated_min_seconds)
        if settings.simulated_provider
        else None
    )
    return ProviderRegistry(real={}, simulated=simulated)
