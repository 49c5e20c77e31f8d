"""prometheus-operator's ServiceMonitor and PrometheusRule CRDs, from its Go module.

No container registry is reachable where the suite runs, but the Go module proxy is, and the
operator's module carries its CRDs (``example/prometheus-operator-crd``).  ``go mod download``
fetches the pinned version once into Go's module cache (about 4 MB) and checks it against the
checksum database; the checksum is pinned here too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from lbctl.devenv.cluster import load_documents
from lbctl.kube.client import JSON

MODULE = "github.com/prometheus-operator/prometheus-operator"
VERSION = "v0.85.0"
SUM = "h1:M5xLCLEoaW2IJfnuCwFzzpL+jSVQu3KGT84Pye+fW8s="
CRDS = ("servicemonitors", "prometheusrules")


def operator_crds() -> list[JSON]:
    """The ServiceMonitor and PrometheusRule CustomResourceDefinitions of ``VERSION``;
    AssertionError when Go is missing or the download fails (with go's message)."""
    go = shutil.which("go")
    assert go, "the Go toolchain ('go') is not on PATH"
    env = dict(os.environ, GOTOOLCHAIN="local", GOFLAGS="-mod=mod")
    with tempfile.TemporaryDirectory() as outside_any_module:
        result = subprocess.run(
            [go, "mod", "download", "-json", f"{MODULE}@{VERSION}"],
            cwd=outside_any_module,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    module = json.loads(result.stdout)
    assert module["Sum"] == SUM, module
    directory = Path(module["Dir"]) / "example" / "prometheus-operator-crd"
    return [
        doc
        for plural in CRDS
        for doc in load_documents(directory / f"monitoring.coreos.com_{plural}.yaml")
    ]
