"""The README's Development map is the real map: it names every module of the package, one line
each, and nothing that does not exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _mapped() -> set[str]:
    """Every path the map in the README's Development section names below ``nn_tracing/``
    (a folder ends in ``/``; two spaces of indentation per level)."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Development") :]
    block = section.split("```")[1].split("\n", 1)[1]
    paths: set[str] = set()
    stack: list[str] = []
    for line in block.splitlines():
        match = re.match(r"^( *)(\S+)", line)
        if match is None:
            continue
        depth, name = len(match.group(1)) // 2, match.group(2)
        stack = stack[:depth]
        path = "".join(stack) + name
        if name.endswith("/"):
            stack.append(name)
        if path.startswith("nn_tracing/") and name != "__init__.py":
            paths.add(path)
    return paths


def _modules() -> set[str]:
    """Every module (``.py`` other than ``__init__.py``) and package folder of ``nn_tracing``."""
    package = ROOT / "nn_tracing"
    found = {package.relative_to(ROOT).as_posix() + "/"}
    for path in package.rglob("*.py"):
        if "__pycache__" in path.parts:
            continue
        if path.name == "__init__.py":
            found.add(path.parent.relative_to(ROOT).as_posix() + "/")
        else:
            found.add(path.relative_to(ROOT).as_posix())
    return found


def test_the_readme_maps_every_module_and_only_those() -> None:
    mapped, modules = _mapped(), _modules()
    assert not modules - mapped, f"not in the README's Development map: {sorted(modules - mapped)}"
    assert not mapped - modules, (
        f"in the README's map, not in the package: {sorted(mapped - modules)}"
    )


def test_every_other_path_of_the_map_exists() -> None:
    """The map's lines outside the package (pages/, streamlit_app.py, scripts/, docs/, tests/…)
    name files and folders that exist."""
    text = (ROOT / "README.md").read_text()
    block = text[text.index("## Development") :].split("```")[1].split("\n", 1)[1]
    named = [line.split()[0] for line in block.splitlines() if line and not line.startswith(" ")]
    others = [name for name in named if not name.startswith("nn_tracing/")]
    assert {"pages/", "streamlit_app.py", "scripts/screenshots.py", "docs/"} <= set(others)
    assert not [name for name in others if not (ROOT / name).exists()]
