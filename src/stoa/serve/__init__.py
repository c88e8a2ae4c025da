"""Serving: the HTTP server, traffic between variants, the prediction log, Ray."""
