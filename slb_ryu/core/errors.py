"""Domain errors of the core: what an operator asked for cannot be done, and why.

The API maps each class to one HTTP status in one place (`slb_ryu.api.rest`); any
other exception escaping the core is a bug and answers 500, so an internal KeyError
can never masquerade as "not found".
"""

from __future__ import annotations


class SlbError(Exception):
    """Base class; the message is written for the operator."""

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.__class__.__name__


class NotFound(SlbError):
    """The named MAC, uplink or bridge does not exist (HTTP 404)."""


class Conflict(SlbError):
    """Valid request, but the current state forbids it, e.g. the uplink is down (409)."""


class Invalid(SlbError):
    """The request names something of the wrong kind, e.g. a local port as uplink (400)."""
