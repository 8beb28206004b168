"""The README and ``docs/`` hold together: every relative link and anchor resolves, every page of
the app has its screenshot and its paragraph in the README's tour (``scripts/screenshots.py``
visits exactly the app's pages), and no section of the former one-page README was lost when
its reference moved to ``docs/``. No server, no browser."""

from __future__ import annotations

import functools
import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"

#: Docs that parallel branches write (issues 16, 17, 18) and ``docs/README.md`` already links:
#: a link to one of them is checked once the file exists. Empty this set once they are merged.
PENDING = {}

#: Every ``##`` / ``###`` heading of the README before its reference moved to ``docs/``
#: (commit e42df3d): each is still a heading of the README or of a page of ``docs/``.
FORMER_SECTIONS = [
    "Quick start",
    "Train and trace from the command line",
    "What a trace keeps, and its budget",
    "From Python",
    "Any `nn.Module`, in your own loop",
    "Convolutional networks",
    "Your own model",
    "Distributed training (DDP)",
    "What a trace holds",
    "Time in steps: step schedules and `S_` signatures",
    "The `.nntrace` file",
    "Run directories",
    "The app",
    "Sharing the dashboard on a network",
    "Grokking: a network that memorises, then generalises",
    "Performance",
    "A trace bigger than memory",
    "Full-batch training on a step schedule",
    "As the trace grows",
    "Analyses",
    "Development",
    "Dependencies",
]

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


@functools.cache
def _screenshots():
    """``scripts/screenshots.py`` as a module (it is a script, not a package module)."""
    name = "nn_tracing_screenshots_script"
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "screenshots.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


def _prose(path: Path) -> list[str]:
    """The lines of a Markdown file outside fenced code blocks, inline code removed."""
    lines, fenced = [], False
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(re.sub(r"`[^`]*`", "``", line))
    return lines


def _headings(path: Path) -> list[str]:
    """Heading texts of a Markdown file (outside code blocks), as written."""
    found, fenced = [], False
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and (match := HEADING.match(line)):
            found.append(match.group(2))
    return found


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    anchors: set[str] = set()
    for heading in _headings(path):
        base, n = slug(heading), 0
        while (name := base if n == 0 else f"{base}-{n}") in anchors:
            n += 1
        anchors.add(name)
    return anchors


def _markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def _links(path: Path) -> list[str]:
    """Every link target of a Markdown file's prose (a link's text may span lines)."""
    return LINK.findall("\n".join(_prose(path)))


def _pending(target: Path) -> bool:
    """A doc of a parallel branch, or the screenshot of a page this checkout has not got yet."""
    relative = target.relative_to(ROOT).as_posix() if target.is_relative_to(ROOT) else ""
    if relative in PENDING:
        return True
    images = {page.image for page in _screenshots().app_pages()}
    return relative.startswith("docs/img/") and target.name not in images


def test_slug_follows_github() -> None:
    assert slug("Time in steps: step schedules and `S_` signatures") == (
        "time-in-steps-step-schedules-and-s_-signatures"
    )
    assert slug("Any `nn.Module`, in your own loop") == "any-nnmodule-in-your-own-loop"
    assert slug("Distributed training (DDP)") == "distributed-training-ddp"


@pytest.mark.parametrize("path", _markdown_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(path: Path) -> None:
    broken = []
    for target in _links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        if not resolved.exists():
            if not _pending(resolved):
                broken.append(f"{target}: no such file")
            continue
        if anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{target}: no heading with the anchor #{anchor}")
    assert not broken, f"{path.relative_to(ROOT)}: {broken}"


def test_the_link_check_finds_a_broken_link(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[ok](#title) [bad](missing.md) `[code](x.md)` [two\nlines](y.md)\n")
    assert _links(page) == ["#title", "missing.md", "y.md"]
    assert _anchors(page) == {"title"}


def test_no_section_of_the_former_readme_was_lost() -> None:
    headings = {heading for path in _markdown_files() for heading in _headings(path)}
    lost = [section for section in FORMER_SECTIONS if section not in headings]
    assert not lost, f"sections of the former README found nowhere: {lost}"


def test_the_screenshot_script_visits_every_page_of_the_app() -> None:
    pages = _screenshots().app_pages()
    scripts = {path.stem for path in (ROOT / "pages").glob("*.py")}
    assert {Path(page.image).stem for page in pages} == scripts
    assert [page.url_path for page in pages].count("") == 1  # the default page
    assert pages[0].title == "Overview" and pages[0].url_path == ""
    assert all(page.url_path == Path(page.image).stem for page in pages[1:])


def test_every_page_has_its_screenshot_and_its_paragraph_in_the_tour() -> None:
    text = README.read_text()
    tour = text[text.index("## A five-minute tour") : text.index("\n## ", text.index("## A five"))]
    for page in _screenshots().app_pages():
        image = DOCS / "img" / page.image
        assert image.is_file(), f"run scripts/screenshots.py: {image.relative_to(ROOT)} is missing"
        assert 0 < image.stat().st_size < 200_000, f"{page.image}: keep screenshots small"
        assert f"](docs/img/{page.image})" in tour, f"the tour shows no {page.image}"
        assert re.search(rf"^### {re.escape(page.title)}\b", tour, re.M), f"no '### {page.title}'"


def test_the_committed_screenshots_stay_small() -> None:
    images = [p for p in (DOCS / "img").iterdir() if p.suffix in {".jpg", ".png"}]
    assert sum(p.stat().st_size for p in images) < 600 * 1024
