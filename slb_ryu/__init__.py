"""slb-ryu: XenServer-style source load balancing for Open vSwitch, as a Ryu OpenFlow 1.3 app."""

__version__ = "0.1.0"
