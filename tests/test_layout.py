"""The package's layers (docs/model.md, "Layout"): imports only point down, no module imports
itself back through others, kernel files and functions stay small enough to read."""
import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("continuum", "kmc")
# lowest first; a module may import from its own layer or any layer below it
# (kmc.workers: process pools, standard library only, so `python -m kmc` can start them first)
LAYERS = ["kmc.workers", "continuum", "kmc.engine", "kmc.hosts", "kmc.coarse_graining", "kmc.coupling", "kmc.studies", "kmc.cli", "kmc"]


def _modules():
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join(parts), path


def _imports(name: str, path: Path) -> set[str]:
    """Every module of this project that ``name`` imports, at module level or inside functions."""
    is_pkg = path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)
    known = dict(_modules())
    return {m for m in out if m in known and m != name}


def _layer(module: str) -> int:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return LAYERS.index(best)


def _graph():
    g = nx.DiGraph()
    for name, path in _modules():
        g.add_node(name)
        for dep in _imports(name, path):
            g.add_edge(name, dep)
    return g


def test_imports_point_down_the_layers():
    g = _graph()
    up = [(a, b) for a, b in g.edges if _layer(b) > _layer(a) and b != "kmc"]
    assert not up, f"imports that point up a layer: {up}"
    assert not [(a, b) for a, b in g.edges if a.startswith("continuum") and b.startswith("kmc")]


def test_no_import_cycles():
    g = _graph()
    # a package's __init__ re-exports its modules: those edges are not cycles of meaning
    g.remove_edges_from([(a, b) for a, b in list(g.edges) if b.startswith(a + ".") or a.startswith(b + ".")])
    assert list(nx.simple_cycles(g)) == []


def test_kernel_files_and_functions_stay_small():
    for path in (ROOT / "kmc" / "engine" / "kernels").glob("*.py"):
        assert len(path.read_text().splitlines()) <= 400, path.name
    long = []
    for _, path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name != "run_events":
                n = node.end_lineno - node.lineno + 1
                if n > 85:
                    long.append(f"{path.relative_to(ROOT)}:{node.name} ({n} lines)")
    assert not long, long


def test_names_scripts_imported_from_kmc_before_the_move_still_import():
    import kmc

    old = ("Host activity_gradient channel_array coat_dielectric decorate_lithiophilic_seeds fibre_mat "
           "load_voxel_image overlapping_spheres planar_foil porosity_gradient random_porous um_to_voxels "
           "LatticeState EVENT_TYPES RateConstants SurfaceDiffusion AdvanceResult KMCEngine Release").split()
    assert [n for n in old if not hasattr(kmc, n)] == []
