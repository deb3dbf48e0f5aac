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
