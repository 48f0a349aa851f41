"""The admin dashboard under /admin: login, the overview, readers, send-now.

Every route but the login page and logout requires a session (the `signed_in`
dependency of its router); without one the answer is a 303 to /admin/login.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI

from newsletter.runtime import Runtime
from newsletter.web.admin import dashboard, login, readers, sending
from newsletter.web.admin.state import NotSignedIn, new_state, signed_in, to_login

_protected = APIRouter(dependencies=[Depends(signed_in)])
for _module in (dashboard, readers, sending):
    _protected.include_router(_module.router)

ROUTERS = (login.router, _protected)


def install(app: FastAPI, context: Runtime) -> None:
    """The admin's state and the redirect of a request without a session."""
    app.state.admin = new_state(context)
    app.add_exception_handler(NotSignedIn, to_login)
