"""``lbctl controlplane build|up``: build the local control plane, or run it until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Sequence

from lbctl.devenv.build import ControlPlaneBuildError, ensure_binaries
from lbctl.devenv.controlplane import ControlPlaneStartError, LocalControlPlane


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="lbctl controlplane")
    parser.add_argument("action", choices=["build", "up"])
    args = parser.parse_args(argv)
    try:
        started = time.monotonic()
        binaries = ensure_binaries()
        print(
            f"kube-apiserver {binaries.kube_version}: {binaries.kube_apiserver}\n"
            f"etcd {binaries.etcd_version}: {binaries.etcd}\n"
            f"ready in {time.monotonic() - started:.1f} s"
        )
        if args.action == "up":
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
            with LocalControlPlane(binaries) as plane:
                print(f"apiserver {plane.url}\nexport KUBECONFIG={plane.kubeconfig}", flush=True)
                signal.sigwait({signal.SIGINT, signal.SIGTERM})
    except (ControlPlaneBuildError, ControlPlaneStartError) as err:
        print(f"lbctl controlplane: {err}", file=sys.stderr)
        return 1
    return 0
