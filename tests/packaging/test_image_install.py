"""The container image's install step, without a container runtime: wheel + pinned constraints
into a clean virtualenv, then ``lbctl --help`` from that environment; the development commands
that need the repository's Go wrapper modules say so in one line."""

from __future__ import annotations

import re
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*argv: str | Path, cwd: Path = ROOT) -> str:
    result = subprocess.run(
        [str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, f"{argv}: {result.stdout[-2000:]}{result.stderr[-2000:]}"
    return result.stdout


def test_dockerfile_is_multi_stage_non_root_and_pinned() -> None:
    """The build stage installs exactly the pinned dependencies from wheels; the final stage
    copies the virtualenv alone and runs lbctl from it as a non-root user."""
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM .*$", text, re.M)
    assert stages == ["FROM ${BASE_IMAGE} AS build", "FROM ${BASE_IMAGE}"]
    build, final = text.split(f"\n{stages[1]}\n", 1)
    assert "--only-binary=:all: --requirement constraints.txt" in build
    assert "pip check" in build
    assert re.search(r"^USER 65532:65532$", final, re.M)
    assert 'ENTRYPOINT ["/opt/lbctl/bin/lbctl"]' in final
    assert "pip install" not in final
    assert "gcc" not in text
    assert "build-essential" not in text


def test_wheel_installs_with_pinned_constraints_and_runs(tmp_path: Path) -> None:
    """pip installs the built wheel at exactly the pinned versions; `lbctl --help` works."""
    wheels = tmp_path / "wheels"
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", wheels, ".")
    (wheel,) = wheels.glob("lbctl-*.whl")
    env_dir = tmp_path / "image"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    constraints = ROOT / "constraints.txt"
    run(python, "-m", "pip", "install", "--quiet", "--constraint", constraints, wheel)

    installed = {
        line.split("==")[0].lower().replace("_", "-"): line.split("==")[1]
        for line in run(python, "-m", "pip", "freeze").splitlines()
        if "==" in line
    }
    for line in constraints.read_text().splitlines():
        if line and not line.startswith("#"):
            name, pinned = line.split("==")
            assert installed[name.lower().replace("_", "-")] == pinned, name
    help_text = run(env_dir / "bin" / "lbctl", "--help", cwd=tmp_path)
    assert "--vip-range" in help_text
    wrappers = {
        "controlplane": "hack/controlplane/etcd",
        "helm": "hack/helm",
        "kubectl": "hack/kubectl",
    }
    for command, missing in wrappers.items():
        built = subprocess.run(
            [env_dir / "bin" / "lbctl", command, "build"],
            cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert built.returncode == 2, built.stderr
        assert built.stderr.count("\n") == 1, built.stderr
        assert f"{missing}/go.mod" in built.stderr
        assert "not in this installation" in built.stderr
