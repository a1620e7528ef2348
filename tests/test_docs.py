"""The README and docs/ as a reader meets them: short, every link and picture there, no diary."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_the_readme_is_short():
    assert len((REPO / "README.md").read_text().splitlines()) <= 250


def test_every_link_and_picture_resolves():
    missing = [f"{page.name}: {target}" for page in PAGES for target in LINK.findall(page.read_text())
               if "://" not in target and not (page.parent / target).exists()]
    assert not missing, missing


def test_the_docs_pages_are_there():
    names = {page.stem for page in PAGES}
    assert {"results", "tuning", "tracking", "scaling", "reliability", "speed", "design"} <= names


def test_no_page_tells_who_ran_what_when():
    diaries = [page.name for page in PAGES if re.search(r"\bsessions?\b|paused for", page.read_text(), re.I)]
    assert not diaries, diaries
