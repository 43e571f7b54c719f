"""The pure core: placement, rebalancing, load, guards, events, switch-state diffing and
the OpenFlow pipeline as plain data.

Nothing in this package imports Ryu, webob, oslo.config, eventlet or subprocess (ruff's
banned-api rule, TID251, enforces it): every function takes the clock as an argument
and returns decisions as data, so all of it is unit-tested with plain values.
"""
