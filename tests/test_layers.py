"""The layers written down in pyproject.toml (an import-linter contract, which `make lint`
runs) hold, and an arrow that runs back up breaks the build; no module of ours imports
another that imports it back, function-level imports included."""

import shutil
import subprocess
import sys
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 - the venv's own tool, on our own tree
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": str(LINT_IMPORTS.parent)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_layers_hold() -> None:
    result = lint_imports(REPO)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_an_arrow_back_up_breaks_the_contract(tmp_path: Path) -> None:
    shutil.copytree(REPO / "subscriptions", tmp_path / "subscriptions")
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    outbox = tmp_path / "subscriptions" / "mail" / "outbox.py"
    # What the old code did to enqueue: the mail layer reaching up to the tasks.
    outbox.write_text(
        outbox.read_text() + "\n\ndef _enqueue_the_old_way() -> None:\n"
        "    from subscriptions.tasks import send_outbound_email  # noqa: F401\n"
    )

    result = lint_imports(tmp_path)

    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    assert "subscriptions.mail.outbox -> subscriptions.tasks" in result.stdout


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = grimp.build_graph("subscriptions", "newsroom")
    ours = {module for module in graph.modules if ".migrations" not in module}
    for module in sorted(ours):
        for imported in graph.find_modules_directly_imported_by(module) & ours:
            assert not graph.chain_exists(imported=module, importer=imported), (
                f"{module} imports {imported}, which imports it back"
            )
