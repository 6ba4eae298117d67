"""The layers of docs/architecture.md, enforced: no import runs from a lower layer to a higher one.

Every module's imports are read with ``ast`` (module-level, function-level and
``TYPE_CHECKING`` imports alike: a late import is still a dependency), and each
``enumer`` import is checked against the layer table below, which is the one
docs/architecture.md draws.  A new module is placed by its package; a new
top-level module must be given a layer here (and in the document) on purpose.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "enumer"

#: Top-level modules (and the ``enumer.nvs`` interface) by layer, lowest first.
LAYERS: dict[str, set[str]] = {
    "base": {"enumer", "enumer.cparse", "enumer.emercoin", "enumer.messages"},
    "model": {
        "enumer.crypto",
        "enumer.e164",
        "enumer.substitution",
        "enumer.naptr",
        "enumer.ddds",
        "enumer.records",
        "enumer.nvs",
    },
    "policy": {
        "enumer.trust",
        "enumer.bound",
        "enumer.resolver",
        "enumer.verifier",
        "enumer.owner",
        "enumer.light",
    },
    "io": {
        "enumer.conf",
        "enumer.sqlite_util",
        "enumer.nvs.ledger",
        "enumer.nvs.rpc",
        "enumer.nvs.node",
    },
    "apps": {"enumer.demo"},
    "cli": {"enumer.__main__"},
}
#: The application packages: siblings, none imports another.
APP_PACKAGES = ("enumer.dns", "enumer.calling", "enumer.verification")
#: What each layer may import besides itself.  ``policy`` (pure: trust, resolution, the
#: verifier's rules) and ``io`` (the stores, files and sockets below the applications) are
#: side by side: the chain back-ends know no trust policy, and the pure core no back-end.
MAY_IMPORT: dict[str, set[str]] = {
    "base": set(),
    "model": {"base"},
    "policy": {"base", "model"},
    "io": {"base", "model"},
    "apps": {"base", "model", "policy", "io"},
    "cli": {"base", "model", "policy", "io", "apps"},
}
#: Known exceptions (module, imported module): none.  Keep it empty; a new entry needs a
#: reason in docs/architecture.md.
ALLOWED: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> str:
    """The layer of a module: listed, or by package (``*.command``/``*_command`` are cli)."""
    last = module.rsplit(".", 1)[-1]
    if module == "enumer.cli" or module.startswith("enumer.cli"):
        return "cli"
    if last == "command" or last.endswith("_command"):
        return "cli"
    for layer, members in LAYERS.items():
        if module in members:
            return layer
    if any(module == p or module.startswith(p + ".") for p in APP_PACKAGES):
        return "apps"
    if module.startswith("enumer.nvs."):
        return "io"
    raise AssertionError(
        f"{module} has no layer: add it to LAYERS here and to docs/architecture.md"
    )


def app_package(module: str) -> str | None:
    return next((p for p in APP_PACKAGES if module == p or module.startswith(p + ".")), None)


def imports_of(module: str, path: Path) -> set[str]:
    """The ``enumer`` modules ``module`` imports, anywhere in its body."""
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                # ``from enumer import crypto`` imports the module enumer.crypto.
                full = f"{base}.{alias.name}"
                found.add(full if full in MODULES else base)
    return {m for m in found if m == "enumer" or m.startswith("enumer.")}


def test_every_module_has_a_layer() -> None:
    assert "enumer.records" in MODULES and "enumer.dns.wire" in MODULES
    for module in MODULES:
        layer_of(module)


def problems(module: str, targets: set[str]) -> list[str]:
    """The imports of ``module`` that break the layering, with the reason."""
    layer = layer_of(module)
    wrong = []
    for target in sorted(targets):
        if (module, target) in ALLOWED:
            continue
        if target not in MODULES:
            wrong.append(f"{target} (no such module)")
            continue
        target_layer = layer_of(target)
        if target_layer != layer and target_layer not in MAY_IMPORT[layer]:
            wrong.append(f"{target} ({target_layer})")
        elif layer == "apps" and target_layer == "apps":
            mine, theirs = app_package(module), app_package(target)
            if mine != theirs and theirs is not None:
                wrong.append(f"{target} (another application package)")
    return wrong


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_runs_upwards(module: str) -> None:
    wrong = problems(module, imports_of(module, MODULES[module]))
    assert not wrong, f"{module} ({layer_of(module)}) imports " + ", ".join(wrong)


def test_nothing_imports_the_command_line_entry_point() -> None:
    importers = {
        m for m, p in MODULES.items() if "enumer.cli" in imports_of(m, p) and m != "enumer.__main__"
    }
    assert importers <= {m for m, t in ALLOWED if t == "enumer.cli"}, importers


def borrowed_private_names(module: str, path: Path) -> list[str]:
    """``_name`` imports from another module; a package's own private submodules (the
    C extension ``enumer.dns._fastloop``) may be imported from inside that package."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    borrowed = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("enumer"):
            for alias in node.names:
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                if private and node.module not in (module, package):
                    borrowed.append(f"{alias.name} from {node.module}")
    return borrowed


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_name_is_borrowed(module: str) -> None:
    """A ``_name`` is its module's business; a module that needs another's needs a public
    home for it (as ``records._atoi`` became ``enumer.cparse.atoi``)."""
    assert not borrowed_private_names(module, MODULES[module])


def test_the_checker_sees_late_and_relative_imports(tmp_path: Path) -> None:
    """The reader and the rule themselves: a function-level import of the trust layer
    from a chain back-end, and a relative import, are both found; the first is refused."""
    source = "def f():\n    from enumer.trust import TrustList\nfrom . import ledger\n"
    path = tmp_path / "x.py"
    path.write_text(source)
    found = imports_of("enumer.nvs.x", path)
    assert found == {"enumer.trust", "enumer.nvs.ledger"}
    assert problems("enumer.nvs.x", found) == ["enumer.trust (policy)"]
    assert problems("enumer.records", {"enumer.dns.wire"}) == ["enumer.dns.wire (apps)"]
    assert problems("enumer.dns.table", {"enumer.calling.route"}) == [
        "enumer.calling.route (another application package)"
    ]
    assert problems("enumer.cli", {"enumer.dns.table", "enumer.records"}) == []
    path.write_text("from enumer.records import _atoi\nfrom enumer.nvs import _x\n")
    assert borrowed_private_names("enumer.trust", path) == [
        "_atoi from enumer.records",
        "_x from enumer.nvs",
    ]
