"""POST /webhooks/<provider>: the relays' bounce and complaint reports (Amazon SES via
SNS, Postmark, Mailgun, SendGrid).

Relays, not browsers, call these: no CSRF token (each request is authenticated by its
signature, checked over the raw bytes before anything is parsed), JSON answers, and a
larger body limit, as SendGrid batches many events per request. A provider that is not
configured answers 404 like any unknown path.
"""

from __future__ import annotations

import logging
import re

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from newsletter.errors import NewsletterError
from newsletter.returns.webhooks import Malformed, Rejected, Unauthorized, Unavailable
from newsletter.returns.webhooks.receive import Relays

router = APIRouter()
log = logging.getLogger("newsletter.web")
WEBHOOK_PATH = re.compile(r"/webhooks/[^/]+")
WEBHOOK_BODY_BYTES = 5_000_000


def relays_of(request: Request) -> Relays:
    relays: Relays = request.app.state.relays
    return relays


@router.post("/webhooks/{provider}")
async def webhook(request: Request, provider: str) -> JSONResponse:
    relays = relays_of(request)
    if not relays.configured(provider):
        return _problem(404, "there is no webhook at this address")
    body = await request.body()  # the signatures are over these exact bytes
    headers = {name.lower(): value for name, value in request.headers.items()}
    try:
        summary = await run_in_threadpool(relays.receive, provider, body, headers)
    except Unauthorized as exc:
        log.warning("%s webhook refused: %s", provider, exc)
        response = _problem(401, "credentials required")
        response.headers["WWW-Authenticate"] = 'Basic realm="webhooks"'
        return response
    except Rejected as exc:
        log.warning("%s webhook refused: %s", provider, exc)
        return _problem(403, "signature not valid")
    except Malformed as exc:
        log.warning("%s webhook unreadable: %s", provider, exc)
        return _problem(400, str(exc))
    except Unavailable as exc:
        log.warning("%s webhook not handled now: %s", provider, exc)
        return _problem(503, "cannot verify the request now; try again later")
    except NewsletterError as exc:  # the store is missing or busy: the relay retries
        log.error("%s webhook not recorded: %s", provider, exc)
        return _problem(503, "not recorded; try again later")
    return JSONResponse(summary.as_dict())


def _problem(status_code: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status_code)
