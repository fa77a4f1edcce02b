"""The model catalog: the single source of truth for admission, routing and billing.

Every price lives here and nowhere else. A model's customer rate is its provider cost per
second times :data:`MARKUP`; for the five published fal models this reproduces the product's
published rates exactly (a test holds us to that). Prices marked *unverified* come from
``shared/reference/providers.md`` and must be re-read from the provider before launch; each is
one line to change.

Durations: customers ask for 1-10 whole seconds, but providers accept only some values
(Kling 2.5: 5 or 10). :meth:`ModelSpec.upstream_duration` asks the provider for the smallest
accepted duration that is at least the request, so the customer gets at least what they asked
for; when the request exceeds the provider's maximum (Veo tops out at 8 s) it asks for the
maximum. Billing is ``rate x min(requested, delivered)`` seconds, so a rounded-up clip never
costs more than the hold and a shorter clip costs less.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from kyma_video.errors import ErrorCode, KymaError
from kyma_video.money import hold_amount, usd

#: Kyma's markup on provider cost, included in every published per-second rate.
MARKUP = Decimal("1.35")
DEFAULT_DURATION = 5
MIN_DURATION = 1
MAX_DURATION = 10


class ProviderName(StrEnum):
    FAL = "fal"
    MINIMAX = "minimax"
    VERTEX = "vertex"
    SIMULATED = "simulated"


class Audio(StrEnum):
    NONE = "none"
    NATIVE = "native"
    BUNDLED = "bundled"


class InputMode(StrEnum):
    TEXT = "text"
    IMAGE = "image"


@dataclass(frozen=True)
class ModelSpec:
    id: str
    provider: ProviderName
    #: Upstream endpoint (fal application id, MiniMax model name, Vertex model id) by mode.
    text_to_video: str | None
    image_to_video: str | None
    #: Name of the provider's first-frame field in the image-to-video request.
    image_field: str
    provider_usd_per_second: Decimal
    accepted_durations: tuple[int, ...]
    audio: Audio
    resolution: str
    #: Fields this model always sends upstream (e.g. Kling 3's audio switch).
    fixed_params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    price_verified: bool = True

    @property
    def per_second_usd(self) -> Decimal:
        return usd((self.provider_usd_per_second * MARKUP).normalize())

    @property
    def input_modes(self) -> tuple[InputMode, ...]:
        modes = []
        if self.text_to_video:
            modes.append(InputMode.TEXT)
        if self.image_to_video:
            modes.append(InputMode.IMAGE)
        return tuple(modes)

    def price_for(self, seconds: int) -> Decimal:
        return hold_amount(self.per_second_usd, seconds)

    def endpoint(self, *, with_image: bool) -> str:
        endpoint = self.image_to_video if with_image else self.text_to_video
        if endpoint is None:
            mode = "image-to-video" if with_image else "text-to-video"
            raise KymaError(
                ErrorCode.INVALID_REQUEST,
                f"{self.id} does not support {mode}"
                + ("" if with_image else "; pass image_url"),
                param="image_url",
            )
        return endpoint

    def upstream_duration(self, requested: int) -> int:
        """The duration to ask the provider for (see the module docstring for the rule)."""
        at_least = [d for d in self.accepted_durations if d >= requested]
        return min(at_least) if at_least else max(self.accepted_durations)


def _spec(**kwargs: Any) -> ModelSpec:
    fixed = kwargs.pop("fixed_params", {})
    return ModelSpec(fixed_params=MappingProxyType(dict(fixed)), **kwargs)


_KLING_3_T2V = "fal-ai/kling-video/v3/pro/text-to-video"
_KLING_3_I2V = "fal-ai/kling-video/v3/pro/image-to-video"

CATALOG: Mapping[str, ModelSpec] = MappingProxyType(
    {
        spec.id: spec
        for spec in (
            # fal: price = $0.35 per 5 s, +$0.07 per extra second -> $0.07/s.
            _spec(
                id="kling-2.5-pro",
                provider=ProviderName.FAL,
                text_to_video="fal-ai/kling-video/v2.5-turbo/pro/text-to-video",
                image_to_video="fal-ai/kling-video/v2.5-turbo/pro/image-to-video",
                image_field="image_url",
                provider_usd_per_second=Decimal("0.07"),
                accepted_durations=(5, 10),
                audio=Audio.NONE,
                resolution="1080p",
            ),
            # Kling 3 Pro defaults generate_audio to true (and bills it): send false.
            _spec(
                id="kling-3-pro",
                provider=ProviderName.FAL,
                text_to_video=_KLING_3_T2V,
                image_to_video=_KLING_3_I2V,
                image_field="start_image_url",
                provider_usd_per_second=Decimal("0.112"),
                accepted_durations=tuple(range(3, 16)),
                audio=Audio.NONE,
                resolution="1080p",
                fixed_params={"generate_audio": False},
            ),
            _spec(
                id="kling-3-pro-audio",
                provider=ProviderName.FAL,
                text_to_video=_KLING_3_T2V,
                image_to_video=_KLING_3_I2V,
                image_field="start_image_url",
                provider_usd_per_second=Decimal("0.168"),
                accepted_durations=tuple(range(3, 16)),
                audio=Audio.NATIVE,
                resolution="1080p",
                fixed_params={"generate_audio": True},
            ),
            _spec(
                id="seedance-2-pro",
                provider=ProviderName.FAL,
                text_to_video="bytedance/seedance-2.0/text-to-video",
                image_to_video="bytedance/seedance-2.0/image-to-video",
                image_field="image_url",
                provider_usd_per_second=Decimal("0.3034"),
                accepted_durations=tuple(range(4, 16)),
                audio=Audio.BUNDLED,
                resolution="720p",
                fixed_params={"resolution": "720p"},
            ),
            _spec(
                id="seedance-2-fast",
                provider=ProviderName.FAL,
                text_to_video="bytedance/seedance-2.0/fast/text-to-video",
                image_to_video="bytedance/seedance-2.0/fast/image-to-video",
                image_field="image_url",
                provider_usd_per_second=Decimal("0.2419"),
                accepted_durations=tuple(range(4, 16)),
                audio=Audio.BUNDLED,
                resolution="720p",
                fixed_params={"resolution": "720p"},
            ),
            # MiniMax bills per clip (unverified). Cost per second = the reported 6 s clip
            # price / 6, rounded up to 4 dp: 512P $0.10, 768P $0.28, 1080P $0.49 per 6 s.
            # 512P is image-to-video only; 1080P only accepts 6 s.
            _spec(
                id="hailuo-02-512p",
                provider=ProviderName.MINIMAX,
                text_to_video=None,
                image_to_video="MiniMax-Hailuo-02",
                image_field="first_frame_image",
                provider_usd_per_second=Decimal("0.0167"),
                accepted_durations=(6, 10),
                audio=Audio.NONE,
                resolution="512P",
                fixed_params={"resolution": "512P"},
                price_verified=False,
            ),
            _spec(
                id="hailuo-02-768p",
                provider=ProviderName.MINIMAX,
                text_to_video="MiniMax-Hailuo-02",
                image_to_video="MiniMax-Hailuo-02",
                image_field="first_frame_image",
                provider_usd_per_second=Decimal("0.0467"),
                accepted_durations=(6, 10),
                audio=Audio.NONE,
                resolution="768P",
                fixed_params={"resolution": "768P"},
                price_verified=False,
            ),
            _spec(
                id="hailuo-02-1080p",
                provider=ProviderName.MINIMAX,
                text_to_video="MiniMax-Hailuo-02",
                image_to_video="MiniMax-Hailuo-02",
                image_field="first_frame_image",
                provider_usd_per_second=Decimal("0.0817"),
                accepted_durations=(6,),
                audio=Audio.NONE,
                resolution="1080P",
                fixed_params={"resolution": "1080P"},
                price_verified=False,
            ),
            # Vertex bills per second. veo-3-fast is sold as 720p silent ($0.10/s video-only,
            # unverified); veo-3 as 1080p with audio ($0.40/s).
            _spec(
                id="veo-3-fast",
                provider=ProviderName.VERTEX,
                text_to_video="veo-3.0-fast-generate-001",
                image_to_video="veo-3.0-fast-generate-001",
                image_field="image",
                provider_usd_per_second=Decimal("0.10"),
                accepted_durations=(4, 6, 8),
                audio=Audio.NONE,
                resolution="720p",
                fixed_params={"generateAudio": False, "resolution": "720p"},
                price_verified=False,
            ),
            _spec(
                id="veo-3",
                provider=ProviderName.VERTEX,
                text_to_video="veo-3.0-generate-001",
                image_to_video="veo-3.0-generate-001",
                image_field="image",
                provider_usd_per_second=Decimal("0.40"),
                accepted_durations=(4, 6, 8),
                audio=Audio.NATIVE,
                resolution="1080p",
                fixed_params={"generateAudio": True, "resolution": "1080p"},
            ),
        )
    }
)


def get_model(model_id: str) -> ModelSpec:
    try:
        return CATALOG[model_id]
    except KeyError:
        raise KymaError(
            ErrorCode.INVALID_MODEL,
            f"{model_id!r} is not a supported video model; see GET /v1/models",
            param="model",
        ) from None
