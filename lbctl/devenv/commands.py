"""``lbctl controlplane build|up``: build the local control plane, or run it until Ctrl-C.
``lbctl helm build``, ``lbctl kubectl build``: build the helm and the kubectl the tests use.

Exit codes: 0 done, 1 a build or start failed, 2 this installation has no wrapper modules
(an installed wheel: the tools are built from a clone of the repository).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Sequence

from lbctl.devenv.build import (
    GoBuildError,
    MissingWrapperError,
    ensure_binaries,
    ensure_helm,
    ensure_kubectl,
)
from lbctl.devenv.controlplane import ControlPlaneStartError, LocalControlPlane


def _control_plane(action: str) -> None:
    started = time.monotonic()
    binaries = ensure_binaries()
    print(
        f"kube-apiserver {binaries.kube_version}: {binaries.kube_apiserver}\n"
        f"etcd {binaries.etcd_version}: {binaries.etcd}\n"
        f"ready in {time.monotonic() - started:.1f} s"
    )
    if action == "up":
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        with LocalControlPlane(binaries) as plane:
            print(f"apiserver {plane.url}\nexport KUBECONFIG={plane.kubeconfig}", flush=True)
            signal.sigwait({signal.SIGINT, signal.SIGTERM})


def _client(command: str) -> None:
    """Build helm or kubectl; print its path."""
    started = time.monotonic()
    path = ensure_helm() if command == "helm" else ensure_kubectl()
    print(f"{command}: {path}\nready in {time.monotonic() - started:.1f} s")


def main(argv: Sequence[str]) -> int:
    """``argv`` starts with the command: ``controlplane build|up``, ``helm build`` or
    ``kubectl build``."""
    command, rest = argv[0], argv[1:]
    parser = argparse.ArgumentParser(prog=f"lbctl {command}")
    parser.add_argument(
        "action", choices=["build", "up"] if command == "controlplane" else ["build"]
    )
    args = parser.parse_args(rest)
    try:
        if command == "controlplane":
            _control_plane(args.action)
        else:
            _client(command)
    except MissingWrapperError as err:
        print(f"lbctl {command}: {err}", file=sys.stderr)
        return 2
    except (GoBuildError, ControlPlaneStartError) as err:
        print(f"lbctl {command}: {err}", file=sys.stderr)
        return 1
    return 0
