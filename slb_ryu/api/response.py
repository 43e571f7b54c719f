"""JSON answers: every body is JSON, every error is `{"error": msg, "status": N}`."""

from __future__ import annotations

import json
from typing import Any

from ryu.app.wsgi import Response


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    resp = Response(
        status=status,
        content_type="application/json",
        charset="utf-8",
        body=json.dumps(body, indent=1, sort_keys=True, default=str) + "\n",
    )
    for name, value in (headers or {}).items():
        resp.headers[name] = value
    return resp


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response({"error": message, "status": status}, status, headers)
