"""bench/ runs much of its code as text in other processes (a gunicorn, a Django shell),
out of reach of ruff, mypy and the import contract: every `from subscriptions... import`
written there, in a string or not, names a module and names that exist."""

import importlib
import re
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"
IMPORT = re.compile(r"from (subscriptions[\w.]*) import ([\w, ]+)")


def test_every_import_of_ours_in_the_benchmarks_resolves() -> None:
    found = []
    for path in sorted(BENCH.glob("*.py")):
        for module_name, names in IMPORT.findall(path.read_text()):
            module = importlib.import_module(module_name)
            for name in (n.strip() for n in names.split(",")):
                found.append(name)
                assert hasattr(module, name) or importlib.util.find_spec(f"{module_name}.{name}"), (
                    f"{path.name}: from {module_name} import {name}"
                )
    assert len(found) >= 10
