"""The REST API: routes, schema, who may use what, every route through a real server."""
