"""The import layers of the package (docs/architecture.md): no import climbs a layer, no cycle.

Each top-level package or module of marginface is a unit with a layer; a unit may import units of
its own layer or below, never above, and the units' import graph has no cycle. The report sits on
top but reads run folders only: it may import the bottom layer and nothing of training or evaluation.
Imports inside functions count as much as those at the top of a file.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "marginface"

BOTTOM, TRAINING, INFERENCE, EVALUATION, REPORT, ENTRY = 0, 1, 2, 3, 4, 5
LAYERS = {
    # components and pure functions: no model training, no run folders
    "heads": BOTTOM,
    "backbones": BOTTOM,
    "data": BOTTOM,
    "metrics": BOTTOM,
    "search": BOTTOM,
    "baselines": BOTTOM,
    "io": BOTTOM,
    "distributed": BOTTOM,
    "whitening": BOTTOM,
    "schedules": BOTTOM,
    "provenance": BOTTOM,
    "configs": BOTTOM,
    "results": BOTTOM,
    "blas": BOTTOM,
    "allocator": BOTTOM,
    # training: build a model from a config and fit it
    "training": TRAINING,
    # inference: a trained model from its checkpoint; embed, export, enrol, identify
    "inference": INFERENCE,
    # evaluation: protocols and results of a model
    "evaluation": EVALUATION,
    # the multi-run report
    "report": REPORT,
    # entry points: train(cfg) = fit + evaluate the fitted model; experiments that train or time
    # models for the report (toy models, head scaling)
    "pipeline": ENTRY,
    "experiments": ENTRY,
}

# Imports that break the rules today, each to be removed when its file moves (issue 14): the lead
# deletes an entry as the move lands; the test fails on any import not listed here, and on an
# entry that no longer occurs (so the list only shrinks).
KNOWN_VIOLATIONS: set[tuple[str, str]] = set()

# Imports within a layer that close a cycle today, to be removed the same way
KNOWN_CYCLE_EDGES: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(source: str, name: str, is_package: bool = False) -> set[str]:
    """The marginface modules that the code `source` of module `name` imports, anywhere in it."""
    package = name if is_package else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            # from marginface import heads; from . import base: the names are modules
            found |= {f"{target}.{a.name}" for a in node.names if is_module(f"{target}.{a.name}")}
    return {t for t in found if t.startswith("marginface.") and t != "marginface"}


def is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def unit(module: str) -> str:
    return module.split(".")[1]


def edges() -> set[tuple[str, str]]:
    """(importer, imported) for every import between two different units of the package."""
    found = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        source = module_name(path)
        if source == "marginface":
            continue
        targets = imports(path.read_text(), source, path.name == "__init__.py")
        found |= {(source, t) for t in targets if unit(t) != unit(source)}
    return found


def breaks_the_layers(source: str, target: str) -> bool:
    below, above = LAYERS[unit(target)], LAYERS[unit(source)]
    if above == REPORT:  # the report reads run folders: only the bottom layer's helpers
        return below != BOTTOM
    return below > above


def test_every_unit_has_a_layer():
    units = {unit(module_name(p)) for p in PACKAGE.rglob("*.py") if module_name(p) != "marginface"}
    assert units - set(LAYERS) == set(), "add the new package or module to LAYERS (and the docs)"


def test_no_import_climbs_a_layer():
    broken = {(s, t) for s, t in edges() if breaks_the_layers(s, t)}
    assert broken - KNOWN_VIOLATIONS == set(), (
        "these imports climb a layer (docs/architecture.md says what may import what)"
    )
    assert KNOWN_VIOLATIONS - broken == set(), "no longer imported: remove from KNOWN_VIOLATIONS"


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the directed graph as its path of nodes (first == last), or None."""
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"  # on the path in progress: reaching it again closes a cycle
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return [*path, node, nxt][[*path, node].index(nxt) :]
            if nxt not in state and (cycle := visit(nxt, [*path, node])):
                return cycle
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [])):
            return cycle
    return None


def test_no_cycle_between_units():
    graph: dict[str, set[str]] = {}
    found = edges()
    assert KNOWN_CYCLE_EDGES - found == set(), "no longer imported: remove from KNOWN_CYCLE_EDGES"
    for source, target in found - KNOWN_VIOLATIONS - KNOWN_CYCLE_EDGES:
        graph.setdefault(unit(source), set()).add(unit(target))
    assert find_cycle(graph) is None, "the imports between these units go round in a circle"


def test_the_checks_catch_an_upward_import_and_a_cycle():
    # the rules themselves, on made-up imports
    assert breaks_the_layers("marginface.heads.base", "marginface.training.module")
    assert breaks_the_layers("marginface.report.runs", "marginface.training.fit")
    assert breaks_the_layers("marginface.report.runs", "marginface.evaluation.evaluate")
    assert not breaks_the_layers("marginface.training.fit", "marginface.heads.base")
    assert not breaks_the_layers("marginface.report.runs", "marginface.io")
    code = (
        "import marginface.heads\nfrom marginface import data\nfrom . import base\n"
        "def f():\n    from ..training import fit\n"
    )
    assert imports(code, "marginface.heads.arcface") == {
        "marginface.heads",
        "marginface.data",
        "marginface.heads.base",
        "marginface.training",  # importing fit imports its package first
        "marginface.training.fit",
    }
    assert find_cycle({"data": {"heads"}, "heads": {"io", "data"}}) == ["data", "heads", "data"]
    assert find_cycle({"data": {"heads"}, "heads": {"io"}}) is None
