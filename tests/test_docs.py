"""The README and docs/ as a reader meets them: short, every link and picture there, no diary."""

from __future__ import annotations

import argparse
import re
import shlex
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


# `python <script> <flags>` wherever a page shows it: in code blocks (continued lines joined) or inline.
COMMAND = re.compile(r"python ((?:experiments|benchmarks|results)/[\w/]+\.py)([^`\n]*)")


def documented_commands() -> list[tuple[str, str, list[str]]]:
    found = []
    for page in PAGES:
        for script, rest in COMMAND.findall(page.read_text().replace("\\\n", " ")):
            rest = re.split(r"\s+#\s|\s&&\s|\s\|\s", rest)[0]  # a shell comment or the next command
            found.append((page.name, script, shlex.split(rest)))
    return found


def test_every_documented_command_line_is_accepted(run_inprocess, monkeypatch):
    # "Runs as written" at the level a reader trips on first: the script exists and its parser takes
    # the flags as the page spells them. The parse is real; only the work after it is skipped.
    class Parsed(Exception):
        pass

    real_parse = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        real_parse(self, args, namespace)
        raise Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    commands = documented_commands()
    assert len(commands) >= 20, commands  # the pattern still finds the pages' commands
    refused = []
    for page, script, args in commands:
        path = REPO / script
        if not path.exists():
            refused.append(f"{page}: {script} does not exist")
        elif "argparse" not in path.read_text():
            if args:
                refused.append(f"{page}: {script} takes no arguments, the page gives {args}")
        else:
            try:
                proc = run_inprocess(path, args)
            except Parsed:
                continue
            if proc.returncode != 0 or "--help" not in args:
                last = (proc.stderr.strip().splitlines() or [""])[-1]
                refused.append(f"{page}: {script} {' '.join(args)} -> exit {proc.returncode}: {last}")
    assert not refused, "\n".join(refused)
