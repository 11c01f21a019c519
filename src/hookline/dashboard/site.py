"""The dashboard in the app: its routers and its static files, under /ui (``install``)."""

from __future__ import annotations

from fastapi import FastAPI

from hookline.dashboard import endpoint_detail, endpoint_pages, pages, web

ROUTERS = (pages.router, endpoint_pages.router, endpoint_detail.router)


def install(app: FastAPI) -> None:
    for router in ROUTERS:
        app.include_router(router)
    app.mount(web.STATIC_PATH, web.static_files(), name="dashboard-static")
