"""kubernetes_asyncio's configuration, authentication and TLS, without its generated client.

lbctl sends its own requests (``KubeClient``) and uses kubernetes_asyncio for what the design
asks of it: reading a kubeconfig or the in-cluster service account, refreshing credentials
(exec plugins, OIDC) and the TLS session.  The ``__init__`` of ``kubernetes_asyncio`` and of
``kubernetes_asyncio.client`` import every generated model and API class (about 830 modules;
32 MiB of the 80 MiB lbctl's process holds after its imports, by VmRSS, kubernetes_asyncio
36.1.0), none of which lbctl calls.  So those two packages and ``client.models`` are
registered here without running their ``__init__``, and only the modules lbctl needs are
imported.  When kubernetes_asyncio was imported already (by whoever embeds lbctl), or its
layout is not the one expected, the ordinary import is used instead.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kubernetes_asyncio import client as k8s_client
    from kubernetes_asyncio import config as k8s_config

PACKAGE = "kubernetes_asyncio"
HOLLOW = (PACKAGE, f"{PACKAGE}.client", f"{PACKAGE}.client.models")
"""Packages registered without their ``__init__`` (the last one is never used by lbctl, but
``client.api_client`` imports it)."""


def _hollow_import() -> tuple[types.ModuleType, types.ModuleType]:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{PACKAGE} is not installed as a package")
    root = Path(next(iter(spec.submodule_search_locations)))
    for name in HOLLOW:
        package = types.ModuleType(name)
        package.__path__ = [str(root.joinpath(*name.split(".")[1:]))]
        package.__package__ = name
        sys.modules[name] = package
    client = sys.modules[f"{PACKAGE}.client"]
    configuration = importlib.import_module(f"{PACKAGE}.client.configuration")
    api_client = importlib.import_module(f"{PACKAGE}.client.api_client")
    client.Configuration = configuration.Configuration  # type: ignore[attr-defined]
    client.ApiClient = api_client.ApiClient  # type: ignore[attr-defined]
    sys.modules[PACKAGE].client = client  # type: ignore[attr-defined]
    config = importlib.import_module(f"{PACKAGE}.config")  # needs the two names above
    sys.modules[PACKAGE].config = config  # type: ignore[attr-defined]
    return client, config


def _import() -> tuple[types.ModuleType, types.ModuleType]:
    if PACKAGE not in sys.modules:
        try:
            return _hollow_import()
        except (ImportError, AttributeError):
            for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
                del sys.modules[name]
    from kubernetes_asyncio import client, config

    return client, config


if TYPE_CHECKING:
    client = k8s_client
    config = k8s_config
else:
    client, config = _import()
