"""What every connector shares: typed errors, the request observer, and the Connector protocol."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from itsm_exporter.records import RecordKind, SkippedRecord, SurveyResponse, Ticket


class ConnectorError(Exception):
    """An upstream could not be read; the message names the source and never a secret."""


class AuthError(ConnectorError):
    """Credentials were refused (401) or lack a permission (403)."""


class CredentialsRefused(AuthError):
    """The upstream refused the credentials (401)."""


class AccessDenied(AuthError):
    """The credentials were accepted but a table or endpoint is not readable by them (403)."""


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


@dataclass(frozen=True, slots=True)
class ScanPage:
    """One upstream page of a scan: its records, the ones it had to skip, and where the scan stands.

    `position`: every record updated before it has been in this page or an earlier one of the scan
    (None: no safe position yet, e.g. a snapshot read whose order is not time). `token`: a position
    that is not a time (a file's content digest), set on the page that completes it.
    """

    tickets: tuple[Ticket, ...] = ()
    surveys: tuple[SurveyResponse, ...] = ()
    skipped: tuple[SkippedRecord, ...] = ()
    position: datetime | None = None
    token: str | None = None
    fetched_so_far: int = 0
    total_expected: int | None = None
    deleted_ids: tuple[str, ...] = ()
    """Ids of tickets deleted upstream. On a `scan` page (an export that lists deleted tickets among the
    changes, as Zendesk's does) they leave the store with the page; on a DeletionLog's `deletions` page
    they are candidates the reconciliation confirms by a lookup first (a log can name a restored record)."""


class Connector(Protocol):
    """The upstream primitives of one source; the sync plans (sync/plans.py) decide what to read when.

    `phases` are the record kinds `scan` reads, in order. A connector whose scan of one kind also
    brings the other (JSM ratings come with their issues) lists only the first.
    """

    name: str

    @property
    def phases(self) -> tuple[RecordKind, ...]: ...

    def scan(self, phase: RecordKind, since: datetime | None, token: str | None) -> Iterator[ScanPage]:
        """Pages of records updated at or after `since` (everything when None), in upstream order.

        `token` is the phase's stored token: a connector whose upstream has not changed since it
        may yield nothing.
        """
        ...

    def close(self) -> None:
        """Release sessions and sockets."""
        ...


@runtime_checkable
class RecordLookup(Protocol):
    """Primitives of a connector whose upstream can be asked for given records and for ids alone.

    The bounded first backfill (tickets that surveys point to) and the reconciliation of deletions
    (an id-only sweep compared with the store) are built on them.
    """

    name: str

    def get(self, kind: RecordKind, ids: Sequence[str]) -> ScanPage:
        """The records of `kind` with these upstream ids (those that exist), in one page."""
        ...

    def ids(self, kind: RecordKind, since: datetime | None) -> Iterator[list[str]]:
        """Upstream ids of every record of `kind` updated at or after `since`, a page at a time, nothing else."""
        ...


@runtime_checkable
class OpenBacklog(Protocol):
    """A connector that can read the tickets still open, whatever their age (the bounded first backfill)."""

    def open_tickets(self, updated_before: datetime, since: datetime | None) -> Iterator[ScanPage]:
        """Open tickets last updated before `updated_before` (and at or after `since`, to resume), in update order."""
        ...


@runtime_checkable
class TotalEstimates(Protocol):
    """A connector whose scans report no total unless asked (Jira Cloud): a backfill asks, for its ETA."""

    def estimate_totals(self) -> None: ...


@runtime_checkable
class DeletionLog(Protocol):
    """A connector whose upstream keeps a log of deleted records (ServiceNow's sys_audit_delete)."""

    def deletions(self, kind: RecordKind, since: datetime | None) -> Iterator[ScanPage]:
        """Pages of ids deleted at or after `since`, in log order; raises AuthError when the log is not readable."""
        ...


SleepFn = Callable[[float], None]
"""Injected wait, so retry back-off is testable without sleeping."""
