"""The HTTP edge: sockets, HTTP/1.1, routing, problems, security, OpenAPI. It knows HTTP and
never runs Tart."""
