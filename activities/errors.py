"""Turning classified failures into Temporal errors, in one place.

The error ``type`` is always the product error code, so the workflow reads a failure's meaning
from ``ApplicationError.type`` and the API maps it to a response without parsing messages.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from kyma_video.errors import ErrorCode, KymaError, RateLimited
from providers.base import ProviderError

#: Raised (and retried by the poll policy) while an upstream job is still running. Benign, so
#: the SDK neither logs it as a failure nor counts it in failure metrics.
UPSTREAM_PENDING = "upstream_pending"


def permanent(code: ErrorCode, message: str) -> ApplicationError:
    return ApplicationError(message, type=code.value, non_retryable=True)


def from_kyma_error(error: KymaError) -> ApplicationError:
    if isinstance(error, RateLimited):
        # The caller's Retry-After travels as the error's details.
        return ApplicationError(
            error.message,
            error.retry_after_seconds,
            type=error.code.value,
            non_retryable=True,
        )
    return permanent(error.code, error.message)


def from_provider_error(error: ProviderError) -> ApplicationError:
    delay = (
        timedelta(seconds=error.retry_after_seconds)
        if error.retryable and error.retry_after_seconds is not None
        else None
    )
    return ApplicationError(
        error.message,
        type=error.code.value,
        non_retryable=not error.retryable,
        next_retry_delay=delay,
    )


def still_running(message: str, next_poll: timedelta) -> ApplicationError:
    return ApplicationError(
        message,
        type=UPSTREAM_PENDING,
        next_retry_delay=next_poll,
        category=ApplicationErrorCategory.BENIGN,
    )


@contextmanager
def classified_failures() -> Iterator[None]:
    """Re-raise our classified failures as the Temporal errors they stand for; anything else
    (a database hiccup, a bug) propagates unchanged and is retried by the activity's policy."""
    try:
        yield
    except KymaError as error:
        raise from_kyma_error(error) from error
    except ProviderError as error:
        raise from_provider_error(error) from error
