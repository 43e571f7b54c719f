"""Fixtures for integration tests (root, Open vSwitch, Mininet, ryu-manager).

Fixtures:
  ovs                  session: Open vSwitch is running (starts it if needed).
  network_factory      function: network_factory(controller_port=..., **chassis_params)
                       -> started Mininet net (RSTP converged, r1 pings r2);
                       network_factory.stop(net) -> leftovers after net.stop();
                       nets still running are stopped (and cleaned by name) at
                       teardown.
  controller_factory   function: controller_factory(start=True, **Controller kwargs)
                       -> (started) testbed.Controller;
                       every controller is stopped at teardown (its log is printed
                       when the test failed).
Every test here gets the ``integration`` marker automatically.
"""

import os
from pathlib import Path

import pytest

from lab import testbed


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def ovs():
    if os.geteuid() != 0:
        pytest.fail("integration tests need root (Open vSwitch, network namespaces)")
    testbed.ensure_ovs()
    from mininet.log import setLogLevel

    setLogLevel("warning")
    return True


class NetworkFactory:
    """``factory(**params)`` starts a chassis net; ``factory.stop(net)`` stops one
    early (returns leftovers found after net.stop()); the rest stop at teardown."""

    def __init__(self):
        self.nets = []

    def __call__(self, **params):
        net = testbed.start_network(**params)
        self.nets.append(net)
        return net

    def stop(self, net):
        self.nets.remove(net)
        return testbed.stop_network(net)

    def stop_all(self):
        while self.nets:
            self.stop(self.nets[-1])


@pytest.fixture
def network_factory(ovs):
    factory = NetworkFactory()
    yield factory
    factory.stop_all()


@pytest.fixture
def controller_factory(request):
    ctls = []

    def make(start=True, **kwargs):
        ctl = testbed.Controller(**kwargs)
        ctls.append(ctl)
        if start:
            ctl.start()
        return ctl

    yield make
    failed = getattr(request.node, "rep_call", None)
    for ctl in ctls:
        ctl.stop()
        if failed is not None and failed.failed:
            print("--- %s (pid %s) log tail ---\n%s" % (ctl.log_path, ctl.pid, ctl.log_tail(80)))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    setattr(item, "rep_" + rep.when, rep)
    return rep
