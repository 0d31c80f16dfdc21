"""The README is the front door and docs/ holds the reference: every link between them leads somewhere."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", re.sub(r"[`*]", "", heading).lower()).replace(" ", "-")


def _links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)  # code is not a link
    return [target for target in re.findall(r"\[[^\]]+\]\(([^)\s]+)\)", text)
            if not target.startswith(("http://", "https://", "mailto:"))]


def test_every_relative_link_and_anchor_resolves():
    broken = []
    for page in PAGES:
        for target in _links(page):
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path) if path else page
            if not resolved.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and resolved.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", resolved.read_text(encoding="utf-8"), re.M)
                if anchor not in {_slug(heading) for heading in headings}:
                    broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert broken == []


def test_the_readme_starts_with_the_two_commands_and_lists_every_docs_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.startswith("# pipewatch\n\n```sh\nmake demo   #")
    assert readme.splitlines()[4].startswith("make test   #")
    documentation = readme.split("\n## Documentation\n", 1)[1]
    listed = {Path(target).name for target in re.findall(r"\]\(docs/([^)#\s]+\.md)", documentation)}
    assert listed == {page.name for page in PAGES[1:]}, "a docs page missing from README's Documentation list"


def test_the_readme_stays_a_front_door():
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 150
