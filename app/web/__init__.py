"""The web app (``uvicorn --factory app.web.main:create_app``).

- ``main.py``: create_app: middleware (security headers, signed session cookie), the
  app-wide CSRF dependency, error handlers, static files, routers.
- ``security.py``: session keys, CSRF check, headers; ``deps.py``: CurrentUser/AdminUser;
  ``errors.py``: error pages and JSON errors; ``templating.py``: full page or htmx partial;
  ``events.py``: HX-Trigger event names; ``queries.py``: read-only lists and counts.
- ``api/``: the JSON API under /api (in the OpenAPI schema).
- ``ui/``: HTML pages (login, review, media, admin), kept out of the schema.
"""
