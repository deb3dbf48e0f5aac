"""Survey results exported from an external survey tool as CSV: one row per response.

Many organizations run their SERVQUAL questionnaire outside the ITSM tool. The export has a
ticket column, a submitted-time column and one column per question; the source's `surveys`
mapping says which columns are questions (everything else, comments included, is ignored).
A bad row is skipped and reported with its line number, never silently dropped. Segment columns
(`segments:`) give the respondent's own segment values; a filled `comment_column` cell marks the
response commented, its text left in the file.

The file is re-read whole when its content changes (its hash is the watermark): survey exports
are small, and a re-read response replaces the stored one.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator, Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

from itsm_exporter.connectors.base import ScanPage, SchemaError, UpstreamUnavailable
from itsm_exporter.connectors.csv.config import CsvSource
from itsm_exporter.records import Answer, RecordKind, Segment, SkippedRecord, SurveyResponse

BATCH_SIZE = 1000
_DELIMITERS = ",;\t"


class CsvSurveyConnector:
    """Reads one CSV export; survey responses only (tickets come from `ticket_source`)."""

    def __init__(self, source: CsvSource) -> None:
        self.name = source.name
        self.source = source
        """The configuration this connector reads (the sync plans get theirs from its kind's capabilities)."""
        self._zone = ZoneInfo(source.timezone)
        self._questions = list(source.surveys.question_roles())

    phases: tuple[RecordKind, ...] = ("survey",)

    def scan(self, phase: RecordKind, since: datetime | None, token: str | None = None) -> Iterator[ScanPage]:
        """The whole export when its content differs from the one read last (`token`: its digest), else nothing."""
        try:
            content = self.source.path.read_bytes()
        except OSError as error:
            raise UpstreamUnavailable(
                f"source {self.name}: cannot read {self.source.path}: {error.strerror}"
            ) from error
        digest = hashlib.sha256(content).hexdigest()
        if token == digest:
            return
        try:
            text = content.decode("utf-8-sig")  # Excel writes a byte-order mark
        except UnicodeDecodeError as error:
            raise SchemaError(f"source {self.name}: {self.source.path} is not UTF-8: {error}") from error
        responses, skipped = self._parse(text)
        for offset in range(0, max(len(responses), 1), BATCH_SIZE):
            last = offset + BATCH_SIZE >= len(responses)
            yield ScanPage(
                surveys=tuple(responses[offset : offset + BATCH_SIZE]),
                skipped=tuple(skipped) if last else (),
                token=digest if last else None,
                fetched_so_far=min(offset + BATCH_SIZE, len(responses)),
                total_expected=len(responses),
            )

    def _parse(self, text: str) -> tuple[list[SurveyResponse], list[SkippedRecord]]:
        source = self.source
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
        header = [name.strip() for name in reader.fieldnames or []]
        reader.fieldnames = header
        required = [source.ticket_column, source.submitted_column, *([source.id_column] if source.id_column else [])]
        required += [*source.segments.values(), *([source.comment_column] if source.comment_column else [])]
        missing = [column for column in [*required, *self._questions] if column not in header]
        if missing:
            raise SchemaError(
                f"source {self.name}: {source.path} has no column {', '.join(repr(m) for m in missing)} "
                f"(its columns: {', '.join(header) or 'none'})"
            )
        responses: dict[str, SurveyResponse] = {}
        skipped: list[SkippedRecord] = []
        for row in reader:
            line = reader.line_num
            ticket = (row.get(source.ticket_column) or "").strip()
            record_id = (row.get(source.id_column) or "").strip() if source.id_column else ""
            try:
                response = self._response(row, ticket, record_id)
            except _BadRow as bad:
                skipped.append(SkippedRecord("survey", record_id or f"line {line}", bad.reason, f"line {line}: {bad}"))
                continue
            if response.id in responses:
                skipped.append(
                    SkippedRecord("survey", response.id, "duplicate_id", f"line {line}: {response.id} appeared before")
                )
                continue
            responses[response.id] = response
        return list(responses.values()), skipped

    def _response(self, row: Mapping[str, str | None], ticket: str, record_id: str) -> SurveyResponse:
        source = self.source
        if None in row.values() or None in row:
            raise _BadRow("column_count", "the row has a different number of columns than the header")
        if not ticket:
            raise _BadRow("no_ticket", f"column {source.ticket_column!r} is empty")
        submitted = self._time((row.get(source.submitted_column) or "").strip())
        if source.id_column and not record_id:
            raise _BadRow("no_id", f"column {source.id_column!r} is empty")
        answers = []
        for question in self._questions:
            cell = (row.get(question) or "").strip()
            if not cell:
                continue  # unanswered question
            try:
                value = float(cell.replace(",", ".") if cell.count(",") == 1 and "." not in cell else cell)
            except ValueError:
                raise _BadRow("bad_value", f"column {question!r}: {cell!r} is not a number") from None
            if not source.scale_min <= value <= source.scale_max:
                raise _BadRow(
                    "bad_value",
                    f"column {question!r}: {cell} is outside the scale {source.scale_min}..{source.scale_max}",
                )
            answers.append(Answer(question, value, source.scale_min, source.scale_max))
        if not answers:
            raise _BadRow("no_answers", "no mapped question is answered")
        comment = (row.get(source.comment_column) or "").strip() if source.comment_column else ""
        return SurveyResponse(
            source=self.name,
            id=record_id or f"{ticket}@{submitted.isoformat()}",
            submitted_at=submitted,
            answers=tuple(answers),
            ticket_key=ticket,
            ticket_source=source.ticket_source,
            commented=bool(comment),
            segments=tuple(
                Segment(label, cell)
                for label, column in source.segments.items()
                if (cell := (row.get(column) or "").strip())
            ),
        )

    def _time(self, text: str) -> datetime:
        if not text:
            raise _BadRow("bad_time", f"column {self.source.submitted_column!r} is empty")
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise _BadRow(
                "bad_time", f"{text!r} is not an ISO 8601 time such as 2026-11-24 14:05 or 2026-11-24T14:05:00+01:00"
            ) from None
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=self._zone)

    def close(self) -> None:
        """Nothing to release: the file is read and closed in `fetch`."""


class _BadRow(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _delimiter(text: str) -> str:
    """Comma, semicolon (European Excel) or tab: whichever the header line uses most.

    The header decides because it is the one line without free text or decimal commas; csv.Sniffer
    guesses wrong on exports whose rows are ragged.
    """
    header = text.split("\n", 1)[0]
    return max(_DELIMITERS, key=header.count)
