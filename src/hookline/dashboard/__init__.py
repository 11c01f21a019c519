"""The dashboard and the embeddable tenant portal, under /ui: server-rendered pages (Jinja2 + htmx) with
vendored static assets (static/vendor, see scripts/vendor_dashboard_assets.py)."""
