"""The project's documents: every link resolves, and nothing cites a document outside the repository."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = sorted([ROOT / "README.md", ROOT / "BENCHMARKS.md", *(ROOT / "docs").glob("*.md")])
SKIPPED_DIRS = {".git", ".venv", "build", "dist", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
TEXT_SUFFIXES = {".py", ".md", ".toml", ".yaml", ".yml", ".json", ".cfg", ".txt", ".service", ".sh", ""}

# Built from parts so that this file does not cite them itself.
_OUTSIDE = ("ARCHITECTURE", "API_NOTES", "METRICS", "STYLE")
OUTSIDE_REFERENCE = re.compile(r"\b(?:" + "|".join(_OUTSIDE) + r")\.md\b|\bshared" + "/")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~)")


def project_files() -> Iterator[Path]:
    for path in ROOT.rglob("*"):
        if path.is_file() and not SKIPPED_DIRS & set(path.relative_to(ROOT).parts) and path.suffix in TEXT_SUFFIXES:
            yield path


def prose_lines(path: Path) -> Iterator[str]:
    """The lines of a markdown file outside fenced code blocks."""
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
        elif not fenced:
            yield line


def anchors(path: Path) -> set[str]:
    """GitHub's anchor of each heading of a markdown file (duplicates get -1, -2, ...)."""
    found: set[str] = set()
    for line in prose_lines(path):
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            slug = re.sub(r"[^\w\- ]", "", heading.group(1).lower()).replace(" ", "-")
            candidate, n = slug, 0
            while candidate in found:
                n += 1
                candidate = f"{slug}-{n}"
            found.add(candidate)
    return found


def test_nothing_cites_a_document_outside_the_repository() -> None:
    citing = []
    for path in project_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        citing += [f"{path.relative_to(ROOT)}: {m.group(0)}" for m in OUTSIDE_REFERENCE.finditer(text)]
    assert citing == []


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_of_a_document_resolves(document: Path) -> None:
    broken = []
    for line in prose_lines(document):
        for target in LINK.findall(line):
            if re.match(r"^[a-z]+:", target):  # https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            resolved = (document.parent / file_part).resolve() if file_part else document
            if not resolved.exists():
                broken.append(f"{target}: no such file")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                broken.append(f"{target}: no such heading")
    assert broken == []


# -- what the documents count -------------------------------------------------------------------------------

NUMBER_WORDS = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen"
NUMBERS = {word: value for value, word in enumerate(NUMBER_WORDS.split(), start=1)}


def shipped_alerts() -> list[str]:
    import yaml

    groups = yaml.safe_load((ROOT / "alerts" / "itsm-exporter.alerts.yaml").read_text(encoding="utf-8"))["groups"]
    return [rule["alert"] for group in groups for rule in group["rules"]]


def dashboard_rows() -> list[str]:
    import json

    panels = json.loads((ROOT / "dashboards" / "itsm-exporter.json").read_text(encoding="utf-8"))["panels"]
    return [panel["title"] for panel in panels if panel["type"] == "row"]


def section(path: Path, heading: str) -> list[str]:
    """The lines under `heading` up to the next heading of the same or a higher level."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = lines.index(heading)
    level = heading.split(" ")[0]
    end = next((i for i in range(start + 1, len(lines)) if re.match(rf"#{{1,{len(level)}}} ", lines[i])), len(lines))
    return lines[start + 1 : end]


def test_the_alert_counts_and_lists_match_the_rule_file() -> None:
    alerts = shipped_alerts()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (said,) = re.findall(r"and (\w+) alerts, each with a runbook", readme)
    assert NUMBERS[said] == len(alerts)
    table = section(ROOT / "README.md", "## Dashboard and alerts")
    listed = [name for line in table if line.startswith("| `ITSM") for name in re.findall(r"`(ITSM\w+)`", line)]
    assert listed == alerts
    (said,) = re.findall(r"\| (\w+) alerts: ", (ROOT / "docs" / "alerts.md").read_text(encoding="utf-8"))
    assert NUMBERS[said] == len(alerts)
    runbooks = [line.removeprefix("### ") for line in section(ROOT / "docs" / "alerts.md", "## Alerts")]
    assert [line for line in runbooks if line.startswith("ITSM")] == alerts


def test_the_dashboard_rows_match_the_readme_and_dashboard_md() -> None:
    rows = dashboard_rows()
    lines = section(ROOT / "README.md", "## Dashboard and alerts")
    described = [m.group(1) for line in lines if (m := re.match(r"- \*([^*]+)\*: ", line))]
    assert described == [row.partition(":")[0] for row in rows]
    panels = [line.removeprefix("### ") for line in section(ROOT / "docs" / "dashboard.md", "## Panels")]
    assert [line for line in panels if line and not line[0].isspace() and line in rows] == rows
