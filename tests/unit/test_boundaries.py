"""House rules that keep the library free of Streamlit and of pickles."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_no_module_outside_ui_imports_streamlit():
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "nn_tracing").rglob("*.py")
        if "ui" not in path.relative_to(ROOT / "nn_tracing").parts[:1]
        and "streamlit" in imported_modules(path)
    ]
    assert offenders == []


def test_the_library_never_imports_the_ui_package():
    offenders = []
    for path in (ROOT / "nn_tracing").rglob("*.py"):
        if path.relative_to(ROOT / "nn_tracing").parts[0] == "ui":
            continue
        source = path.read_text()
        if "from .ui" in source or "nn_tracing.ui" in source or "from ..ui" in source:
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_importing_the_library_does_not_load_streamlit():
    code = "import sys, nn_tracing; print('streamlit' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


def test_no_unpickling_on_any_load_path():
    for path in list((ROOT / "nn_tracing").rglob("*.py")) + list((ROOT / "pages").rglob("*.py")):
        source = path.read_text()
        assert "pickle.load" not in source, path
        for line in source.splitlines():
            if "torch.load(" in line:
                assert "weights_only=True" in line, path


# -- the import graph ----------------------------------------------------------------------------
PACKAGE = ROOT / "nn_tracing"
#: The page modules of the app: only the entrypoint and the page scripts may import them.
PAGE_MODULES = {
    f"nn_tracing.ui.{name}"
    for name in ("overview", "neurons", "clusters", "dynamics", "breadcrumbs", "compare")
}
#: Modules every page shares: they must import no page, not even inside a function.
SHARED_UI = (
    "app",
    "charts",
    "sidebar",
    "links",
    "widgets",
    "compute",
    "url",
    "cache",
    "neuron_states",
    "follow",
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _is_type_checking(node: ast.stmt) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _module_level(body: list[ast.stmt]) -> list[ast.stmt]:
    """The import statements run when the module is imported (not those in functions, nor
    under ``if TYPE_CHECKING:``)."""
    found: list[ast.stmt] = []
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, (ast.If, ast.Try, ast.With)) and not _is_type_checking(node):
            for block in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, block, []):
                    inner = child.body if isinstance(child, ast.ExceptHandler) else [child]
                    found += _module_level(inner)
    return found


def _targets(module: str, node: ast.stmt) -> set[str]:
    """The nn_tracing modules an import statement in ``module`` loads."""
    is_package = MODULES[module].name == "__init__.py"
    names: set[str] = set()
    if isinstance(node, ast.Import):
        names = {alias.name for alias in node.names}
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = module.split(".")
            base = base[: len(base) - node.level + (1 if is_package else 0)]
            source = ".".join([*base, node.module] if node.module else base)
        else:
            source = node.module or ""
        names = {source} | {f"{source}.{alias.name}" for alias in node.names}
    return {name for name in names if name in MODULES}


def _graph(*, everywhere: bool = False) -> dict[str, set[str]]:
    graph = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        nodes = list(ast.walk(tree)) if everywhere else _module_level(tree.body)
        graph[module] = {t for node in nodes for t in _targets(module, node)} - {module}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (``[a, b, …, a]``), or ``None``."""
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        path.append(node)
        for target in sorted(graph[node]):
            found = visit(target)
            if found:
                return found
        path.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        found = visit(start)
        if found:
            return found
    return None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_import_graph_is_read() -> None:
    graph = _graph()
    assert "nn_tracing.ui.state" in graph["nn_tracing.ui.app"]  # from . import state
    assert "nn_tracing.work" in graph["nn_tracing.ui.compute"]  # from ..work import …
    assert "nn_tracing.ui.links" in graph["nn_tracing.ui.charts"]


def test_no_import_cycle_among_nn_tracing_modules() -> None:
    assert _cycle(_graph()) is None


def test_the_shell_and_shared_ui_modules_import_no_page() -> None:
    graph = _graph(everywhere=True)  # imports inside functions count too
    offenders = {name: sorted(graph[f"nn_tracing.ui.{name}"] & PAGE_MODULES) for name in SHARED_UI}
    assert {name: pages for name, pages in offenders.items() if pages} == {}


def test_pages_import_no_other_page_at_module_level() -> None:
    graph = _graph()
    offenders = {page: sorted(graph[page] & PAGE_MODULES) for page in PAGE_MODULES}
    assert {page: found for page, found in offenders.items() if found} == {}


def test_pages_import_no_other_page_even_inside_a_function() -> None:
    """What two pages share lives in a shared module (the neuron-level HMM that Clusters
    colours by: ``ui/neuron_states.py``), not in one of them."""
    graph = _graph(everywhere=True)
    offenders = {page: sorted(graph[page] & PAGE_MODULES) for page in PAGE_MODULES}
    assert {page: found for page, found in offenders.items() if found} == {}
