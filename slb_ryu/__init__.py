"""slb-ryu: XenServer-style source load balancing for Open vSwitch, as a Ryu OpenFlow 1.3 app."""

from importlib import metadata

try:
    # The one version string is setup.cfg's, read back from the installed metadata.
    __version__ = metadata.version("slb-ryu")
except metadata.PackageNotFoundError:  # a source tree that was never pip-installed
    __version__ = "0+unknown"
