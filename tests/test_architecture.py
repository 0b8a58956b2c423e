"""The package's layers point one way: no import cycle, interfaces import no backend, records load nothing heavy."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "qa_bot"
BACKENDS = {"qa_bot.stores.faiss", "qa_bot.stores.milvus", "qa_bot.embedding.openvino", "qa_bot.embedding.onnxruntime",
            "qa_bot.embedding.torch"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports_of(name: str) -> set[str]:
    """Every qa_bot module `name` imports: top level, inside functions and under TYPE_CHECKING alike.

    `from .pkg import sub` counts as importing the module pkg.sub when there is one; the implicit
    import of a package's __init__ by its submodules is Python's mechanics, not a dependency.
    """
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in MODULES}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            subs = {f"{target}.{alias.name}" for alias in node.names} & MODULES.keys()
            if subs:
                found |= subs
            elif target in MODULES:
                found.add(target)
    return found - {name}


GRAPH = {name: imports_of(name) for name in MODULES}


def test_no_import_cycle():
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for target in sorted(GRAPH[name]):
            if state.get(target) == "open":
                cycle = path[path.index(target):] + [target] if target in path else [name, target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, [*path, target])
        state[name] = "done"

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])


def reachable(name: str) -> set[str]:
    seen, todo = set(), [name]
    while todo:
        for target in GRAPH[todo.pop()] - seen:
            seen.add(target)
            todo.append(target)
    return seen


@pytest.mark.parametrize("interface", ["qa_bot.cli", "qa_bot.web.app", "qa_bot.web.handlers", "qa_bot.web.render",
                                       "qa_bot.library", "qa_bot.bot", "qa_bot.retriever", "qa_bot.answer"])
def test_interfaces_import_no_backend(interface):
    """Backends are chosen by configuration, behind qa_bot.stores.open_location and qa_bot.embedding.load_embedder."""
    direct = GRAPH[interface] & BACKENDS
    assert not direct, f"{interface} imports {direct}"


def test_shared_modules_import_nothing_above_them():
    for low in ("qa_bot.records", "qa_bot.errors", "qa_bot.config", "qa_bot.textnorm", "qa_bot.present"):
        assert reachable(low) <= {"qa_bot.records", "qa_bot.errors", "qa_bot.config"}, (low, reachable(low))


def test_records_load_without_faiss_or_a_model():
    code = (
        "import sys\nfrom qa_bot.records import Passage\nfrom qa_bot.retriever import Retriever\n"
        "print(sorted(m for m in ('faiss', 'bm25s', 'torch', 'openvino', 'onnxruntime', 'gradio', 'pymilvus') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_test_embedder_implements_the_protocol(hash_embedder):
    from qa_bot.embedding import Embedder

    for member in ("model_id", "dim", "backend", "precision", "encode_passages", "encode_query"):
        assert hasattr(Embedder, member) or member in Embedder.__annotations__
        assert hasattr(hash_embedder, member)
