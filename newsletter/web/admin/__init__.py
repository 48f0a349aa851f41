"""The admin dashboard under /admin: login, the overview, readers, send-now.

Every route but the login page and logout requires a session: the routers of
dashboard, readers and sending carry the `signed_in` dependency, and without a
session the answer is a 303 to /admin/login.
"""

from __future__ import annotations

from fastapi import FastAPI

from newsletter.runtime import Runtime
from newsletter.web.admin import dashboard, login, readers, sending
from newsletter.web.admin.state import NotSignedIn, new_state, to_login

ROUTERS = (login.router, dashboard.router, readers.router, sending.router)
PROTECTED = (dashboard.router, readers.router, sending.router)


def install(app: FastAPI, context: Runtime) -> None:
    """The admin's state, the redirect of a request without a session, and stopping a
    send-now run when the server stops."""
    state = new_state(context)
    app.state.admin = state
    app.add_exception_handler(NotSignedIn, to_login)
    app.router.on_shutdown.append(state.send_run.close)
