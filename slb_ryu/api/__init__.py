"""The operator interface over HTTP: REST routes, request parsing, JSON views, the
OpenAPI contract and Prometheus metrics, on Ryu's WSGI server."""
