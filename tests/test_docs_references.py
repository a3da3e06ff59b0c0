"""Every file in the repository points only at documents the repository ships.

The design used to live outside the repository, and a reader of a clone could not follow the code's
citations of it. Citations now go to `docs/architecture.md §x` and must name a section that exists there.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURE = REPO_ROOT / "docs" / "architecture.md"
# Citations of documents that do not ship with the repository, and relative paths out of it.
# (The character class keeps this file from naming the old out-of-repo design document itself.)
OUTSIDE = re.compile(r"[D]ESIGN\.md|\.\./shared")
# `docs/architecture.md §1.2`, `§1.2–1.3`, `§1.1, §1.5`: every number after the file name counts.
CITATION = re.compile(r"docs/architecture\.md\s+(§[\d.]+(?:\s*(?:[–,-]|and)\s*§?[\d.]+)*)")
SECTION_NUMBER = re.compile(r"\d+(?:\.\d+)*")
HEADING = re.compile(r"^#{2,6}\s+(\d+(?:\.\d+)*)\.?\s", re.MULTILINE)


def _repo_text_files() -> dict[str, str]:
    """Tracked and untracked-but-not-ignored files, so a new file is checked before its commit."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    files = {}
    for name in listed:
        path = REPO_ROOT / name
        if not path.is_file() or path.is_symlink():
            continue
        try:
            files[name] = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary fixtures
    return files


def _sections() -> set[str]:
    return set(HEADING.findall(ARCHITECTURE.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def repo_files() -> dict[str, str]:
    files = _repo_text_files()
    assert "docs/architecture.md" in files, "docs/architecture.md must ship with the repository"
    return files


def test_the_outside_pattern_can_fail() -> None:
    assert OUTSIDE.search("see " + "DESIGN" + ".md §1.2") and OUTSIDE.search("open ../" + "shared/data")
    assert not OUTSIDE.search("see docs/architecture.md §1.2")


def test_no_reference_leaves_the_repository(repo_files: dict[str, str]) -> None:
    found = [
        f"{name}:{number}: {line.strip()}"
        for name, text in repo_files.items()
        for number, line in enumerate(text.splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert not found, "references to files outside the repository (cite docs/architecture.md):\n" + "\n".join(found)


def test_every_cited_section_exists(repo_files: dict[str, str]) -> None:
    sections = _sections()
    missing = []
    for name, text in repo_files.items():
        for number, line in enumerate(text.splitlines(), 1):
            for citation in CITATION.findall(line):
                missing += [
                    f"{name}:{number}: §{section}"
                    for section in SECTION_NUMBER.findall(citation)
                    if section.rstrip(".") not in sections
                ]
    assert not missing, f"cited sections missing from docs/architecture.md (has {sorted(sections)}):\n" + "\n".join(
        missing
    )


def test_the_code_cites_the_document_and_the_readme_links_it(repo_files: dict[str, str]) -> None:
    cited = sum(len(CITATION.findall(text)) for name, text in repo_files.items() if name.endswith(".py"))
    assert cited >= 10, "the code is expected to cite docs/architecture.md sections"
    assert "docs/architecture.md" in repo_files["README.md"]


def test_section_parser_reads_the_headings() -> None:
    assert {"1", "1.1", "1.5", "2", "2.2", "3"} <= _sections()
    assert SECTION_NUMBER.findall(CITATION.findall("(docs/architecture.md §1.2–1.3)")[0]) == ["1.2", "1.3"]
    assert SECTION_NUMBER.findall(CITATION.findall("docs/architecture.md §1.1, §1.5).")[0]) == ["1.1", "1.5"]
