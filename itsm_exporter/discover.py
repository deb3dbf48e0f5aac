"""`itsm-exporter discover`: a read-only look at what each source offers, and the config that maps it.

For every enabled source (or one), its kind's probe (connectors/<kind>/probe.py) reports which tables
or endpoints the API user can read, how many tickets the longest window holds and how they spread
over the grouping labels, every survey question with its answers, the SLAs and the complaint values.
Here they are held against the config (which question the survey mapping gives which role, which
configured question matches nothing), a paste-ready `surveys:` and `complaints:` block is suggested,
and the report is rendered. Requests are few and bounded whatever the instance's size.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Final

from itsm_exporter.config import Config, duration_text, question_key, redact_urls
from itsm_exporter.connectors.base import AuthError, ConnectorError
from itsm_exporter.connectors.probe import Access, Probe, ProbeSettings, SourceFacts
from itsm_exporter.kinds import capabilities, kind_of
from itsm_exporter.source_config import SourceBase
from itsm_exporter.survey_mapping import Role, UnmatchedQuestion, check_mapping

OVERALL_HINTS: Final = ("overall", "satisf", "csat")
COMPLAINT_HINTS: Final = ("complain", "grievance", "escalat")


@dataclass(frozen=True)
class Question:
    """An upstream survey question with its answers in the window and the role the config gives it."""

    question_id: str
    name: str
    text: str
    datatype: str
    scale: str
    answers: int
    role: str


@dataclass
class SourceReport:
    """What `discover` found for one source: its probe's facts held against the config; see `render_report`."""

    name: str
    kind: str
    surveys_path: str
    """Where the source's survey mapping sits in the config file: `sources[0].surveys`."""
    facts: SourceFacts = field(default_factory=SourceFacts)
    questions: list[Question] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    """Configured questions that match no question upstream, as notes."""
    suggestion: list[str] = field(default_factory=list)
    error: str | None = None
    failure: str = "unreachable"
    """What `error` was: `unreachable`, or `credentials refused` when the upstream answered and said no."""

    @property
    def access(self) -> list[Access]:
        return self.facts.access

    @property
    def tickets(self) -> int | None:
        return self.facts.tickets

    @property
    def sample(self) -> int | None:
        return self.facts.sample

    @property
    def requests(self) -> int:
        return self.facts.requests

    @property
    def survey_notes(self) -> list[str]:
        return [*self.facts.survey_notes, *self.unmatched]

    @property
    def ok(self) -> bool:
        return self.error is None and all(a.state in ("readable", "skipped") or not a.required for a in self.access)


def discover(config: Config, source_name: str | None = None, *, now: datetime | None = None) -> list[SourceReport]:
    """A report per enabled source (or the one named). Never writes upstream or to the store."""
    as_of = now or datetime.now(UTC)
    longest = config.longest_window
    sources = [s for s in config.enabled_sources if source_name is None or s.name == source_name]
    reports = []
    for source in sources:
        report = SourceReport(source.name, source.kind, f"sources[{config.sources.index(source)}].surveys")
        kind = kind_of(source)
        if kind.probe is None:
            report.facts.survey_notes.append(f"a {source.kind} source reads local data: nothing to discover upstream")
        else:
            settings = ProbeSettings(
                as_of=as_of,
                window=str(longest),
                window_seconds=longest.seconds,
                history=config.history_for(source),
                history_setting=str(config.history)
                if config.history is not None
                else f"{duration_text(config.lookback)} + overlap {duration_text(capabilities(source).overlap)}",
                group_by=tuple(config.group_by),
                max_label_values=config.max_label_values,
            )
            probe = Probe(settings)
            report.facts = probe.facts
            try:
                kind.probe(source, probe)
            except ConnectorError as error:
                report.error = str(error)
                if isinstance(error, AuthError):
                    report.failure = "credentials refused"
            _hold_against_mapping(source, report)
        report.suggestion = _suggestion(source, report)
        reports.append(report)
    return reports


def _hold_against_mapping(source: SourceBase, report: SourceReport) -> None:
    """The role the config gives each question the probe found, and the configured questions it did not find."""
    uses = [question.use for question in report.facts.questions]
    if not uses:
        return
    check = check_mapping(
        uses, source.surveys, implicit_overall=capabilities(source).implicit_overall, path=report.surveys_path
    )
    for question in report.facts.questions:
        use = question.use
        report.questions.append(
            Question(
                use.question_id,
                use.name or "",
                (use.text or "") if question.shown_text is None else question.shown_text,
                question.datatype,
                question.scale,
                use.answers,
                _role_name(check.roles.get(use.question_id)),
            )
        )
    report.unmatched = [_unmatched_note(item) for item in check.unmatched]


# -- shared ------------------------------------------------------------------------------------------


def _role_name(role: Role | None) -> str:
    if role is None:
        return "unmapped"
    kind, dimension = role
    if dimension == "overall":
        return "overall"
    return f"{'dimensions' if kind == 'perception' else 'expectations'}.{dimension}"


def _unmatched_note(item: UnmatchedQuestion) -> str:
    closest = item.closest
    hint = f"; closest upstream: {closest.text or closest.name!r}" if closest else ""
    return f"configured {item.path} {item.configured!r} matches no question{hint}"


def _suggestion(source: SourceBase, report: SourceReport) -> list[str]:
    """The `surveys:` and `complaints:` of this source as YAML lines, mapped questions kept as configured."""
    lines = [f"  - name: {source.name}"]
    mapped: dict[str, list[str]] = {}
    for question in report.questions:
        if question.role != "unmapped":
            mapped.setdefault(question.role, []).append(_label(question))
    unmapped = [q for q in report.questions if q.role == "unmapped" and q.answers > 0]
    if "overall" not in mapped:
        candidates = [q for q in unmapped if any(h in question_key(q.text + " " + q.name) for h in OVERALL_HINTS)]
        if candidates:
            best = max(candidates, key=lambda q: q.answers)
            mapped["overall"] = [_label(best)]
            unmapped.remove(best)
    if mapped or unmapped:
        lines.append("    surveys:")
        if "overall" in mapped:
            lines.append(f"      overall: [{', '.join(_quoted(q) for q in mapped['overall'])}]")
        for kind in ("dimensions", "expectations"):
            entries = sorted((role.split(".", 1)[1], qs) for role, qs in mapped.items() if role.startswith(kind))
            if entries:
                lines.append(f"      {kind}:")
                lines += [f"        {dim}: [{', '.join(_quoted(q) for q in qs)}]" for dim, qs in entries]
        for question in unmapped:
            lines.append(
                f"      # unmapped, {question.answers} answers: {_quoted(_label(question))}"
                " (add it under a RATER dimension or an expectation, or leave it out)"
            )
    if report.facts.segment_suggestions:
        lines.append("    segments:   # customer-side labels: add the ones to group by to group_by")
        lines += [
            f"      {s.label}: {s.field}   # {s.values} value{'' if s.values == 1 else 's'} in the window"
            for s in report.facts.segment_suggestions
        ]
    complaints = _complaint_suggestion(report)
    if complaints:
        lines.append("    complaints:")
        lines += [f"      {name}: [{', '.join(_quoted(v) for v in values)}]" for name, values in complaints.items()]
    return lines


def _complaint_suggestion(report: SourceReport) -> dict[str, list[str]]:
    suggested: dict[str, list[str]] = {}
    for name, values in report.facts.complaints.items():
        matching = [v.value.split(" (")[0] for v in values if v.mark]
        hinted = [v.value.split(" (")[0] for v in values if any(h in v.value.casefold() for h in COMPLAINT_HINTS)]
        chosen = matching or hinted
        if chosen:
            suggested[name] = list(dict.fromkeys(chosen))
    return suggested


def _label(question: Question) -> str:
    """How a question is best written in the config: its text, else its name, else its id."""
    return question.text or question.name or question.question_id


def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


# -- rendering ----------------------------------------------------------------------------------------

_COLOURS: Final = {"green": "\033[32m", "red": "\033[31m", "yellow": "\033[33m", "bold": "\033[1m"}
_RESET: Final = "\033[0m"


def render_report(reports: Sequence[SourceReport], *, colour: bool = False) -> str:
    """The report for a terminal: aligned columns, colour only when asked (a TTY), then the YAML block."""

    def paint(text: str, name: str) -> str:
        return f"{_COLOURS[name]}{text}{_RESET}" if colour else text

    out: list[str] = []
    for report in reports:
        facts = report.facts
        out.append(paint(f"source {report.name} ({report.kind})", "bold"))
        if report.error is not None:
            out.append(f"  {paint(report.failure, 'red')}: {report.error}")
        if report.access:
            out.append("  access")
            rows = [
                (
                    a.what,
                    paint(a.state, "green" if a.state == "readable" else "red" if a.required else "yellow"),
                    a.detail,
                )
                for a in report.access
            ]
            out += _table(rows, indent=4)
        if report.tickets is not None:
            out.append(f"  tickets {facts.tickets_basis}: {report.tickets}")
        if facts.first_sync:
            out.append(f"  a first sync reads: {facts.first_sync} (and the tickets of recent surveys by id)")
        if report.sample is not None:
            out.append(f"  values below counted over a sample of {report.sample} of those issues (one page)")
        for name, values in facts.groupings.items():
            out.append(f"  {name}")
            out += _table([(v.value, str(v.count)) for v in values], indent=4, right=frozenset({1})) or ["    (none)"]
        if facts.unassigned is not None:
            out.append(f"  unassigned share: {facts.unassigned:.1%}")
        for name, values in facts.segments.items():
            out.append(f"  segment {name}")
            out += _table([(v.value, str(v.count)) for v in values], indent=4, right=frozenset({1})) or ["    (none)"]
        if report.questions or report.survey_notes:
            out.append("  surveys")
            out += [f"    {note}" for note in report.survey_notes]
        if report.questions:
            header = ("name", "question", "datatype", "scale", "answers", "mapped as")
            question_rows: list[tuple[str, ...]] = [
                (
                    q.name or "-",
                    q.text or q.question_id,
                    q.datatype,
                    q.scale,
                    str(q.answers),
                    paint(q.role, "yellow" if q.role == "unmapped" else "green"),
                )
                for q in report.questions
            ]
            out += _table([header, *question_rows], indent=4, right=frozenset({4}))
        if facts.slas or facts.sla_notes:
            out.append("  SLAs (with the number of tickets)")
            out += _table([(v.value, str(v.count)) for v in facts.slas], indent=4, right=frozenset({1}))
            out += [f"    {note}" for note in facts.sla_notes]
        for name, values in facts.complaints.items():
            out.append(f"  complaints field {name}")
            out += _table([(v.value, str(v.count), v.mark) for v in values], indent=4, right=frozenset({1}))
        out += [f"  {note}" for note in facts.complaint_notes]
        if facts.calendar_notes:
            out.append("  business hours (for calendars:)")
            out += [f"    {note}" for note in facts.calendar_notes]
        verdict = paint("ok", "green") if report.ok else paint("NOT READY", "red")
        out.append(f"  {report.requests} request{'' if report.requests == 1 else 's'}; {verdict}")
        out.append("")
    # A source that could not be read, or has nothing to map, would only add its bare name.
    suggestions = [line for r in reports if r.error is None and len(r.suggestion) > 1 for line in r.suggestion]
    if suggestions:
        out.append("# Suggested mapping: merge into the matching entries of `sources:`.")
        out.append("sources:")
        out += suggestions
    elif reports and all(r.error is not None for r in reports):
        out.append("# No mapping to suggest: no source could be read.")
    else:
        out.append("# No mapping to suggest: no survey question, complaint value or customer field was found.")
    return "\n".join(out) + "\n"


def _table(rows: Sequence[Sequence[str]], *, indent: int, right: frozenset[int] = frozenset()) -> list[str]:
    """Rows as left-aligned columns (right-aligned where asked), widths measured without colour codes."""
    if not rows:
        return []
    widths = [max(_visible(column, row) for row in rows) for column in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = []
        for column, cell in enumerate(row):
            pad = widths[column] - _visible(column, row)
            cells.append(" " * pad + cell if column in right else cell + " " * pad)
        lines.append((" " * indent + "  ".join(cells)).rstrip())
    return lines


def _visible(column: int, row: Sequence[str]) -> int:
    text = row[column]
    for code in (*_COLOURS.values(), _RESET):
        text = text.replace(code, "")
    return len(text)


def run(config: Config, source_name: str | None, out: IO[str] | None = None, *, now: datetime | None = None) -> int:
    """The `discover` command: 0 when every source was reachable and every needed read allowed, else 1."""
    out = out or sys.stdout  # looked up at call time: tests and wrappers replace sys.stdout
    reports = discover(config, source_name, now=now)
    colour = out.isatty() and os.environ.get("NO_COLOR") is None
    out.write(redact_urls(render_report(reports, colour=colour)))
    return 0 if all(r.ok for r in reports) else 1
