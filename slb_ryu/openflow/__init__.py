"""The OpenFlow / Ryu adapter: messages from pipeline specs and back, frame parsing and
building, the connection handshake, statistics polling and OVSDB reads. The Ryu app
(`slb_ryu.app`) wires these to `slb_ryu.core.bridge.BridgeCore`."""
