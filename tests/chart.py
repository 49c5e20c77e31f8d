"""The chart and the kustomize manifests as objects: helm and kubectl (both built from Go modules)
run as subprocesses, their YAML parsed."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from lbctl.devenv.build import cache_root, ensure_helm, ensure_kubectl

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "lbctl"
MANIFESTS = ROOT / "manifests"
HELM_OWN_LABELS = frozenset(
    {
        "helm.sh/chart",
        "app.kubernetes.io/managed-by",
        "app.kubernetes.io/instance",
        "app.kubernetes.io/version",
        "checksum/netscaler",
    }
)
"""Labels (and the pod annotation) only a Helm release carries; everything else must match the
manifests."""

JSON = dict[str, Any]


class CommandFailed(AssertionError):
    """A helm or kubectl run exited non-zero; ``output`` is its stdout and stderr (``helm lint``
    reports on stdout)."""

    def __init__(self, argv: Sequence[str], result: subprocess.CompletedProcess[str]) -> None:
        self.output = result.stdout + result.stderr
        super().__init__(f"{' '.join(argv)} exit {result.returncode}:\n{self.output[-3000:]}")


def _run(argv: list[str], stdin: str | None, kubeconfig: Path | None) -> str:
    env = dict(os.environ)
    home = cache_root() / "helm" / "home"  # helm's own config and cache, not the user's
    env.update(
        HELM_CONFIG_HOME=str(home / "config"),
        HELM_CACHE_HOME=str(home / "cache"),
        HELM_DATA_HOME=str(home / "data"),
    )
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    result = subprocess.run(
        argv, input=stdin, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    if result.returncode != 0:
        raise CommandFailed(argv, result)
    return result.stdout


def helm(*args: str, values: JSON | None = None, kubeconfig: Path | None = None) -> str:
    """``helm args...`` (with ``values`` as ``-f -``); its stdout, or CommandFailed."""
    extra = ["-f", "-"] if values is not None else []
    stdin = yaml.safe_dump(values) if values is not None else None
    return _run([str(ensure_helm()), *args, *extra], stdin, kubeconfig)


def kubectl_binary() -> Path:
    """The kubectl every test runs: the pinned release, built on first use."""
    return ensure_kubectl()


def kubectl(*args: str, stdin: str | None = None, kubeconfig: Path | None = None) -> str:
    """``kubectl args...`` (``stdin`` as its input); its stdout, or CommandFailed."""
    return _run([str(kubectl_binary()), *args], stdin, kubeconfig)


def documents(text: str) -> list[JSON]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def render(
    values: JSON | None = None,
    *,
    release: str = "lbctl",
    namespace: str = "lbctl-system",
    crds: bool = False,
) -> list[JSON]:
    """The objects ``helm template`` makes of the chart with ``values`` (dicts, in its order)."""
    args = ["template", release, str(CHART), "--namespace", namespace]
    return documents(helm(*args, *(["--include-crds"] if crds else []), values=values or {}))


def kustomized() -> list[JSON]:
    """The objects ``kubectl kustomize manifests/`` makes."""
    return documents(kubectl("kustomize", str(MANIFESTS)))


def without_helm_labels(value: Any) -> Any:
    """``value`` with Helm's own label keys removed from every mapping (labels and selectors)."""
    if isinstance(value, dict):
        kept = {k: without_helm_labels(v) for k, v in value.items() if k not in HELM_OWN_LABELS}
        # A pod template's annotations left empty without the checksum: none, as in manifests/.
        return {k: v for k, v in kept.items() if not (k == "annotations" and v == {})}
    if isinstance(value, list):
        return [without_helm_labels(item) for item in value]
    return value


def by_key(objects: list[JSON]) -> dict[tuple[str, str, str], JSON]:
    """(kind, namespace, name) -> object; fails on a duplicate."""
    keyed: dict[tuple[str, str, str], JSON] = {}
    for obj in objects:
        meta = obj["metadata"]
        key = (obj["kind"], meta.get("namespace", ""), meta["name"])
        assert key not in keyed, f"rendered twice: {key}"
        keyed[key] = obj
    return keyed


def one(objects: list[JSON], kind: str, name: str | None = None) -> JSON:
    """The single object of ``kind`` (and ``name``); fails if there is none or several."""
    found = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, f"{kind} {name or ''}: {len(found)} rendered"
    return found[0]
