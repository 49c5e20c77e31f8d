"""kubernetes_asyncio's configuration, authentication and TLS, without its generated client.

lbctl sends its own requests (``KubeClient``) and uses kubernetes_asyncio for what the design
asks of it: reading a kubeconfig or the in-cluster service account, refreshing credentials
(exec plugins, OIDC) and the TLS session.  The ``__init__`` of ``kubernetes_asyncio`` and of
``kubernetes_asyncio.client`` import every generated model and API class (about 830 modules;
32 MiB of the 80 MiB lbctl's process holds after its imports, by VmRSS, kubernetes_asyncio
36.1.0), none of which lbctl calls.  So those two packages and ``client.models`` are
registered here without running their ``__init__``, and only the modules lbctl needs are
imported.  ``client`` and ``client.models`` run their own ``__init__`` the first time a name
they do not hold is asked of them, and the top package imports a subpackage when it is first
asked for, so a program that imports kubernetes_asyncio after lbctl (``from
kubernetes_asyncio.client import CoreV1Api``, ``kubernetes_asyncio.utils``) gets all of it.
When kubernetes_asyncio was imported already (by whoever embeds lbctl), or its layout is not
the one expected, the ordinary import is used instead.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import sys
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubernetes_asyncio import client as k8s_client
    from kubernetes_asyncio import config as k8s_config

PACKAGE = "kubernetes_asyncio"
HOLLOW = (PACKAGE, f"{PACKAGE}.client", f"{PACKAGE}.client.models")
"""Packages registered without their ``__init__`` (the last one is never used by lbctl, but
``client.api_client`` imports it)."""


def _completed_on_demand(package: types.ModuleType, init: Path) -> None:
    """Run the package's own ``__init__`` in it when a name it lacks is first asked for
    (not a submodule's name, which ``from package import submodule`` asks for before importing
    it; nor a dunder name other than ``__all__``: tools probe them)."""

    def __getattr__(name: str) -> Any:
        missing = AttributeError(f"module {package.__name__!r} has no attribute {name!r}")
        if (name.startswith("__") and name != "__all__") or _submodule(init.parent, name):
            raise missing
        if package.__dict__.pop("__getattr__", None) is None:
            raise missing  # completed already (or being completed)
        exec(compile(init.read_bytes(), str(init), "exec"), package.__dict__)
        if name not in package.__dict__:
            raise missing
        return package.__dict__[name]

    package.__getattr__ = __getattr__  # type: ignore[method-assign]


def _root(package: types.ModuleType, root: Path) -> None:
    """The top package's ``__init__`` names its version and imports its six subpackages:
    the version is set here, and a subpackage is imported when first asked for."""
    package.__project__ = PACKAGE  # type: ignore[attr-defined]
    package.__version__ = importlib.metadata.version(PACKAGE)  # type: ignore[attr-defined]

    def __getattr__(name: str) -> Any:
        if name.startswith("__") or not _submodule(root, name):
            raise AttributeError(f"module {PACKAGE!r} has no attribute {name!r}")
        return importlib.import_module(f"{PACKAGE}.{name}")

    package.__getattr__ = __getattr__  # type: ignore[method-assign]


def _submodule(directory: Path, name: str) -> bool:
    return (directory / f"{name}.py").is_file() or (directory / name / "__init__.py").is_file()


def _hollow_import() -> tuple[types.ModuleType, types.ModuleType]:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{PACKAGE} is not installed as a package")
    root = Path(next(iter(spec.submodule_search_locations)))
    for name in HOLLOW:
        package = types.ModuleType(name)
        package.__path__ = [str(root.joinpath(*name.split(".")[1:]))]
        package.__package__ = name
        if name == PACKAGE:
            _root(package, root)
        else:
            _completed_on_demand(package, Path(package.__path__[0]) / "__init__.py")
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
