"""uvloop (Linux and macOS only) is the daemon's loop, not a need of the read-only commands:
``pip install lbctl`` for the kubectl plugin must work where uvloop does not install."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

PYPROJECT = Path(__file__).parents[2] / "pyproject.toml"


def test_uvloop_is_not_required_on_windows() -> None:
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    requirements = [Requirement(r) for r in dependencies]
    (uvloop,) = [r for r in requirements if r.name == "uvloop"]
    assert uvloop.marker is not None
    assert not uvloop.marker.evaluate({"sys_platform": "win32", "platform_system": "Windows"})
    assert uvloop.marker.evaluate({"sys_platform": "linux", "platform_system": "Linux"})


def test_the_kubectl_plugin_runs_without_uvloop() -> None:
    code = (
        "import sys; sys.modules['uvloop'] = None\n"
        "from lbctl.cli import kubectl_plugin\n"
        "raise SystemExit(kubectl_plugin(['--version']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("kubectl-lbctl ")
