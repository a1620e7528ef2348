"""The results quoted in the pages are rendered from committed data (results/render.py), and a
number edited by hand is caught."""

from __future__ import annotations

import re

from helpers import REPO, module_from_file

render = module_from_file(REPO / "results" / "render.py")


def test_every_page_is_what_its_committed_data_gives():
    assert render.run(check=True) == []


def test_a_number_edited_by_hand_is_caught():
    page = (REPO / "README.md").read_text()
    regions = list(render.REGION.finditer(page))
    assert len(regions) >= 3, "the README quotes its main results through rendered regions"
    for region in regions:
        body = region.group("body")
        digit = next((i for i, c in enumerate(body) if c.isdigit()), None)
        assert digit is not None, region.group("name")
        edited_body = body[:digit] + str((int(body[digit]) + 1) % 10) + body[digit + 1:]
        edited = page[:region.start("body")] + edited_body + page[region.end("body"):]
        problems = []
        rendered, _ = render.render_page(edited, "README.md", problems)
        assert rendered != edited and rendered == page and not problems, region.group("name")


def test_an_unknown_region_and_an_uncommitted_source_are_problems():
    problems = []
    render.render_page("<!-- results:no-such-table -->x<!-- /results -->", "page.md", problems)
    assert problems and "no renderer for region 'no-such-table'" in problems[0]
    assert render.committed({"results/no-such-file.csv", "README.md"}) == {"README.md"}


# A measurement in a table cell: a decimal, a percentage, seconds, a ratio, or a count with a
# thousands separator.
MEASURED = re.compile(r"\d+\.\d+|\d\s?%|\b\d+ ?s\b|\d+(?:\.\d+)?x\b|\d,\d{3}")


def test_every_table_of_measurements_in_the_pages_is_rendered():
    typed = []
    for page in render.PAGES:
        text = render.REGION.sub("", (REPO / page).read_text())
        typed += [f"{page}: {line[:100]}" for line in text.splitlines()
                  if line.startswith("|") and not line.startswith("|---") and MEASURED.search(line)]
    assert not typed, "tables typed by hand (render them from committed data): " + "\n".join(typed)
