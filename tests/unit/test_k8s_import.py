"""lbctl imports kubernetes_asyncio's configuration and authentication, not its generated
client (about 830 modules it never calls), unless the embedding program imported it all."""

from __future__ import annotations

import subprocess
import sys


def run(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout


def test_lbctl_loads_no_generated_model_or_api_module() -> None:
    out = run(
        "import sys, lbctl.app, lbctl.cli\n"
        "from lbctl.kube.k8s import client, config\n"
        "generated = [m for m in sys.modules if m.startswith(('kubernetes_asyncio.client.models.',"
        " 'kubernetes_asyncio.client.api.'))]\n"
        "print(len(generated), client.ApiClient.__name__, client.Configuration.__name__,"
        " config.load_kube_config.__name__, config.load_incluster_config.__name__)\n"
    )
    assert out.split() == [
        "0", "ApiClient", "Configuration", "load_kube_config", "load_incluster_config",
    ]  # fmt: skip


def test_a_kubernetes_asyncio_imported_before_lbctl_is_used_as_it_is() -> None:
    out = run(
        "import kubernetes_asyncio\n"
        "from lbctl.kube import k8s\n"
        "print(k8s.client is kubernetes_asyncio.client, k8s.config is kubernetes_asyncio.config,"
        " hasattr(kubernetes_asyncio.client, 'CoreV1Api'))\n"
    )
    assert out.split() == ["True", "True", "True"]


def test_kubernetes_asyncio_imported_after_lbctl_is_whole() -> None:
    """A program that imports lbctl first, then uses kubernetes_asyncio's generated client,
    models or other packages, gets them (loaded when first asked for)."""
    out = run(
        "import lbctl.app\n"
        "from kubernetes_asyncio.client import CoreV1Api, ApiClient\n"
        "from kubernetes_asyncio.client.models import V1Pod\n"
        "import kubernetes_asyncio, kubernetes_asyncio.dynamic, kubernetes_asyncio.utils\n"
        "from lbctl.kube import k8s\n"
        "print(CoreV1Api.__name__, V1Pod.__name__, kubernetes_asyncio.__version__ != '',"
        " ApiClient is k8s.client.ApiClient, kubernetes_asyncio.client is k8s.client)\n"
    )
    assert out.split() == ["CoreV1Api", "V1Pod", "True", "True", "True"]
