"""The package's imports against docs/architecture.md: the table of layers there is the rule, read
here, so an arrow the map forbids fails the suite (the map and the code cannot drift apart)."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "ganlab"
MAP = ROOT / "docs" / "architecture.md"


def allowed_layers() -> dict[str, set[str]]:
    """{layer: the layers it may import} from the map's table."""
    rules = {}
    for line in MAP.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and re.fullmatch(r"`\w+`", cells[0]):
            rules[cells[0].strip("`")] = set(re.findall(r"\b(\w+)\b", cells[2])) - {"none"}
    return rules


def imports(package: Path = PACKAGE) -> list[tuple[str, str, int]]:
    """(importing file relative to ganlab/, imported dotted module, line) for every import, at any depth."""
    found = []
    for path in package.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [f"{node.module}.{a.name}" if node.module == "ganlab" else node.module for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            found += [(str(path.relative_to(package)), name, node.lineno) for name in names]
    return found


def layer_of(relative: str) -> str:
    return relative.split("/", 1)[0] if "/" in relative else ""


def test_the_map_names_every_layer_and_only_layers():
    rules = allowed_layers()
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert set(rules) == folders
    assert all(allowed <= folders for allowed in rules.values())
    top_level = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert top_level == ["__init__.py", "__main__.py", "errors.py"]  # ls ganlab/ shows the layers


def crossings(package: Path = PACKAGE) -> list[str]:
    """Every import from one layer into another that the map does not allow."""
    rules = allowed_layers()
    wrong = []
    for source, target, line in imports(package):
        if not target.startswith("ganlab."):
            continue
        own, other = layer_of(source), target.split(".")[1]
        if own and other in rules and other != own and other not in rules[own]:
            wrong.append(f"ganlab/{source}:{line} imports {target} ({own} may import {sorted(rules[own])})")
    return wrong


def test_no_import_crosses_a_layer_the_map_forbids():
    wrong = crossings()
    assert not wrong, "\n".join(wrong)


def test_rules_inside_the_layers():
    wrong = []
    for source, target, line in imports():
        where = f"ganlab/{source}:{line} imports {target}"
        if source == "training/loop.py" and target.startswith("ganlab.") and target not in (
                "ganlab.errors", "ganlab.training.runtime"):
            wrong.append(f"{where}: the loop knows no network, loss, data set or run")
        root = target.split(".")[0]
        if root in ("omegaconf", "hydra") and layer_of(source) not in ("commands", "trust") \
                and source not in ("training/train.py", "errors.py", "training/replay.py"):
            wrong.append(f"{where}: below train() everything receives plain values")
        if root in ("matplotlib", "sklearn", "tensorboard") or target.startswith("torch.utils.tensorboard"):
            if layer_of(source) in ("objectives", "models"):
                wrong.append(f"{where}: networks and objectives return tensors; records draws them")
        if target.startswith("ganlab.commands") and layer_of(source) != "commands" and source != "__main__.py":
            wrong.append(f"{where}: nothing below the verbs imports them")
    assert not wrong, "\n".join(wrong)


def test_the_rules_can_fail(tmp_path):
    """The checker itself: a forbidden arrow planted in a copy of the package is found."""
    import shutil

    copy = tmp_path / "ganlab"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "models" / "planted.py").write_text("def f():\n    from ganlab.training import run\n")
    assert crossings(copy) == ["ganlab/models/planted.py:2 imports ganlab.training (models may import "
                               "['trust'])"]
