"""What every connector shares: typed errors, the request observer, and the Connector protocol."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Protocol

from itsm_exporter.records import Batch, RecordKind


class ConnectorError(Exception):
    """An upstream could not be read; the message names the source and never a secret."""


class AuthError(ConnectorError):
    """Credentials were refused (401) or lack a permission (403)."""


class RateLimited(ConnectorError):
    """The upstream kept answering 429 after the allowed retries."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UpstreamUnavailable(ConnectorError):
    """Network failure, timeout, 5xx, or a non-API answer such as a hibernation page."""


class SchemaError(ConnectorError):
    """The upstream answered, but not in the shape its API documents (bad JSON, missing keys)."""


class BadRequest(ConnectorError):
    """The upstream rejected the query (400): usually a config error such as a bad filter."""


RequestObserver = Callable[[str], None]
"""Called once per upstream HTTP request with its status code, or "error" when none came back."""


def ignore_request(_code: str) -> None:
    """Default observer for connectors used outside the daemon."""


class Connector(Protocol):
    """Fetches records of one upstream, incrementally from the watermarks of the last sync."""

    name: str

    def fetch(self, watermarks: Mapping[RecordKind, str | None]) -> Iterator[Batch]:
        """Yield batches in order; each batch's watermark is safe to commit with its records."""
        ...

    def close(self) -> None:
        """Release sessions and sockets."""
        ...


SleepFn = Callable[[float], None]
"""Injected wait, so retry back-off is testable without sleeping."""
