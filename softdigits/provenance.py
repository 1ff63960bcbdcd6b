"""Which code and libraries produced an output: the package modules a stage imports, their
fingerprint, and the library versions. Torch-free, so the Snakefile can import it."""

from __future__ import annotations

import ast
import hashlib
import platform
import sys
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def module_path(module: str) -> Path:
    """The source file of a package module, dotted relative to softdigits ("generator.vae")."""
    base = PACKAGE.joinpath(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


@cache
def direct_imports(module: str) -> frozenset[str]:
    """The package modules `module` imports, at the top or inside a function."""
    return imports_in(module_path(module))


def imports_in(path: Path) -> frozenset[str]:
    """The package modules a Python file imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(Path(path).read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "softdigits":
            base = node.module.removeprefix("softdigits").lstrip(".")
            for alias in node.names:
                sub = f"{base}.{alias.name}".lstrip(".")
                found.add(sub if module_path(sub).exists() else base)
        elif isinstance(node, ast.Import):
            found.update(a.name.removeprefix("softdigits.") for a in node.names if a.name.startswith("softdigits."))
    found.discard("")
    return frozenset(found)


def script_code(script: str | Path) -> list[str]:
    """Source files of every package module a rule's script imports, transitively.

    A rule lists them as inputs: Snakemake tracks a `script:` by its own file only, so
    this is how editing a module reruns the jobs that ran it.
    """
    return module_files(*imports_in(Path(script)))


def module_files(*modules: str) -> list[str]:
    """Source files of these modules and of every package module they import, transitively,
    with a module's C source beside it (training/conv_pool.c: the kernel the module builds)."""
    seen, todo = set(), list(modules)
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(direct_imports(module))
    paths = [module_path(m) for m in seen]
    return sorted(str(p) for p in paths + [p.with_suffix(".c") for p in paths if p.with_suffix(".c").exists()])


def code_fingerprint(files: list[str]) -> dict:
    """SHA-256 over the source files a run executed (sorted by name), and each file's own,
    keyed by the path inside the package (two packages may each hold a train.py)."""
    each = {_package_name(f): hashlib.sha256(Path(f).read_bytes()).hexdigest() for f in sorted(files)}
    total = hashlib.sha256("".join(f"{k}:{v}\n" for k, v in sorted(each.items())).encode()).hexdigest()
    return {"sha256": total, "files": each}


def _package_name(path: str | Path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(PACKAGE.parent)) if path.is_relative_to(PACKAGE.parent) else path.name


def library_versions() -> dict:
    from importlib.metadata import version  # pandas's from its metadata: a training job never imports it

    import numpy
    import pyarrow
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "pandas": version("pandas"),
        "pyarrow": pyarrow.__version__,
        "platform": sys.platform,
        "machine": platform.machine(),
    }
