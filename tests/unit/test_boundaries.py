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
