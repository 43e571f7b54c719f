"""Lab code, not shipped in the wheel: the test bed (OVS, ryu-manager, Mininet helpers)
shared by the integration tests and the benchmarks, and the demo (`make demo`)."""
