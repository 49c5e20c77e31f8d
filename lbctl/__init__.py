"""lbctl: VIPs for type: LoadBalancer Services, recorded in Vips, programmed on NetScaler ADCs."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lbctl")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0.0.0+unknown"
