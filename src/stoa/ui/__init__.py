"""The dashboard: server-rendered pages under ``/ui`` over the same client operations the
REST API and the CLI use.

A layer, like ``client`` and ``serve/server``: pages read through a ``LocalClient``
acting as the signed-in caller, so every page sees exactly what that caller's token may
see, and every action is the operation the REST route runs. Templates are Jinja2, partial
updates use htmx, and charts use uPlot; both are vendored under ``static/vendor`` with
their licences, so the dashboard works offline with no build step.
"""
