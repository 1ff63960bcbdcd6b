"""`softdigits campaign serve`: the task page and its API (Starlette on uvicorn) over the store.

Routes (every API answer is JSON; a refused request gets a 4xx and `{"error": ...}`
and stores nothing):

- GET /                 the task page (a platform appends ?PROLIFIC_PID=&STUDY_ID=&SESSION_ID=)
- GET /static/...       the built page's files (jsPsych from node_modules, the task's code)
- POST /api/session     a visit: {prolific_pid?, study_id?, session_id?, participant_id?}
- POST /api/start       consent given: {participant_id} -> the list, its trials and the practice
- POST /api/answer      {participant_id, task_id, trial, responses: [10 x yes/no/unsure],
                        reaction_time_ms}; a replay of the stored answer is 200 (stored
                        once), another answer to the same trial 409
- GET /api/image        ?participant_id=&trial=N|practice: a PNG of the participant's own list
- GET /admin            the status page; it asks for the admin token and sends it as
                        `Authorization: Bearer ...` to GET /admin/api/status (never in a URL)

Request bodies are limited to MAX_BODY_BYTES (413); malformed JSON is a 400; ids are
1-64 characters of letters, digits, '-' and '_'.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
import sys
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from softdigits.campaign import records
from softdigits.campaign.settings import Campaign, CampaignError, ServeSettings, read_campaign_folder, require_build
from softdigits.campaign.store import Refused, Store

MAX_BODY_BYTES = 8 * 1024
MAX_RT_MS = 24 * 3600 * 1000.0
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
TOKEN_ENV = "SOFTDIGITS_ADMIN_TOKEN"
MIN_TOKEN_CHARS = 16
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self'; style-src 'self' 'unsafe-inline'; font-src 'self' data:; "
        "script-src 'self'; connect-src 'self'; frame-ancestors 'none'"
    ),
}


async def _json_body(request: Request) -> dict:
    """The request's JSON object; Refused 413 past MAX_BODY_BYTES, 400 when not a JSON object."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise Refused(413, f"request body over {MAX_BODY_BYTES} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise Refused(413, f"request body over {MAX_BODY_BYTES} bytes")
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise Refused(400, "the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise Refused(400, "the request body must be a JSON object")
    return data


def _fields(data: dict, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict:
    unknown = sorted(set(data) - set(required) - set(optional))
    if unknown:
        raise Refused(400, f"unknown field(s) {unknown}")
    missing = [k for k in required if data.get(k) is None]
    if missing:
        raise Refused(400, f"missing field(s) {missing}")
    return {k: data.get(k) for k in (*required, *optional)}


def _id(value, name: str, *, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise Refused(400, f"{name} must be 1-64 letters, digits, '-' or '_'")
    return value


def _trial_number(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100_000:
        raise Refused(400, "trial must be a positive integer")
    return value


def _reaction_time(value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Refused(400, "reaction_time_ms must be a number")
    if not 0 <= value <= MAX_RT_MS:
        raise Refused(400, f"reaction_time_ms must be between 0 and {MAX_RT_MS:.0f}")
    return float(value)


def _task_payload(store: Store, state: dict) -> dict:
    """The participant's state plus what the page shows: remaining trials and the practice."""
    if state["task_id"] is None:
        return state
    trials = store.campaign.tasks[store.campaign.tasks["task_id"] == state["task_id"]].sort_values("trial")
    pid = state["participant_id"]
    practice = store.practice(state["task_id"])
    return {
        **state,
        # the page never sees image ids or which trials are attention checks
        "trials": [
            {"trial": int(t), "image_url": f"/api/image?participant_id={pid}&trial={int(t)}"} for t in trials["trial"]
        ],
        "practice": {"image_url": f"/api/image?participant_id={pid}&trial=practice", "digit": practice["digit"]},
    }


def create_app(store: Store, build: Path, admin_token: str) -> Starlette:
    """The ASGI app: the built page in `build`, the API over `store`, the admin view behind `admin_token`."""

    async def page(request: Request, name: str) -> Response:
        return FileResponse(build / name, headers={"Cache-Control": "no-store", **SECURITY_HEADERS})

    async def index(request: Request) -> Response:
        return await page(request, "index.html")

    async def admin_page(request: Request) -> Response:
        return await page(request, "admin.html")

    async def session(request: Request) -> Response:
        f = _fields(await _json_body(request), (), ("prolific_pid", "study_id", "session_id", "participant_id"))
        state = await run_in_threadpool(
            store.register,
            participant_id=_id(f["participant_id"], "participant_id", required=False),
            prolific_pid=_id(f["prolific_pid"], "PROLIFIC_PID", required=False),
            study_id=_id(f["study_id"], "STUDY_ID", required=False),
            session_id=_id(f["session_id"], "SESSION_ID", required=False),
            user_agent=request.headers.get("user-agent"),
        )
        return _ok(_task_payload(store, state))

    async def start(request: Request) -> Response:
        f = _fields(await _json_body(request), ("participant_id",))
        state = await run_in_threadpool(store.start, _id(f["participant_id"], "participant_id"))
        return _ok(_task_payload(store, state))

    async def answer(request: Request) -> Response:
        f = _fields(await _json_body(request), ("participant_id", "task_id", "trial", "responses", "reaction_time_ms"))
        responses = f["responses"]
        if not isinstance(responses, list) or not all(isinstance(r, str) for r in responses):
            raise Refused(400, "responses must be a list of ten strings (yes/no/unsure, digits 0-9 in order)")
        result = await run_in_threadpool(
            store.record_answer,
            _id(f["participant_id"], "participant_id"),
            _id(f["task_id"], "task_id"),
            _trial_number(f["trial"]),
            responses,
            _reaction_time(f["reaction_time_ms"]),
        )
        return _ok(result)

    async def image(request: Request) -> Response:
        pid = _id(request.query_params.get("participant_id"), "participant_id")
        raw_trial = request.query_params.get("trial", "")
        trial = "practice" if raw_trial == "practice" else _trial_number(int(raw_trial) if raw_trial.isdigit() else -1)
        path = await run_in_threadpool(store.trial_image, pid, trial)
        return FileResponse(path, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    async def admin_status(request: Request) -> Response:
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(), admin_token.encode()):
            return JSONResponse(
                {"error": "admin token missing or wrong"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer", "Cache-Control": "no-store"},
            )
        tables = await run_in_threadpool(store.tables)
        body = {"corpus": store.campaign.corpus, "campaign": str(store.campaign.folder), "database": str(store.path)}
        body.update(records.status(tables, store.clock()))
        return _ok(body)

    async def refused(request: Request, exc: Refused) -> Response:
        return JSONResponse({"error": exc.message}, status_code=exc.status, headers={"Cache-Control": "no-store"})

    routes = [
        Route("/", index),
        Route("/admin", admin_page),
        Route("/favicon.ico", lambda request: Response(status_code=204)),
        Route("/api/session", session, methods=["POST"]),
        Route("/api/start", start, methods=["POST"]),
        Route("/api/answer", answer, methods=["POST"]),
        Route("/api/image", image),
        Route("/admin/api/status", admin_status),
        Mount("/static", StaticFiles(directory=build), name="static"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        store.close()  # uvicorn re-raises SIGTERM/SIGINT after shutdown: code after uvicorn.run may never run

    return Starlette(routes=routes, exception_handlers={Refused: refused}, lifespan=lifespan)


def _ok(body: dict) -> Response:
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


def admin_token_from(token_file: Path | None) -> tuple[str, str]:
    """The admin token and where it came from: --admin-token-file, $SOFTDIGITS_ADMIN_TOKEN,
    or (neither given) a random one for this run."""
    if token_file is not None:
        try:
            token, where = token_file.read_text().strip(), f"file {token_file}"
        except OSError as err:
            raise CampaignError(f"{token_file}: cannot read the admin token ({err.strerror})") from None
    elif os.environ.get(TOKEN_ENV):
        token, where = os.environ[TOKEN_ENV].strip(), f"${TOKEN_ENV}"
    else:
        return secrets.token_urlsafe(18), "generated for this run"
    if len(token) < MIN_TOKEN_CHARS:
        raise CampaignError(f"the admin token from {where} is shorter than {MIN_TOKEN_CHARS} characters")
    return token, where


def serve(
    campaign_dir, db, settings: ServeSettings, *, host: str = "127.0.0.1", port: int = 8000, admin_token_file=None
) -> None:
    """Check everything, print the URLs, then run uvicorn until interrupted."""
    import uvicorn

    build = require_build()
    campaign: Campaign = read_campaign_folder(campaign_dir, settings)
    db = Path(db)
    folder = campaign.folder.resolve()
    if folder == db.resolve().parent or folder in db.resolve().parents:
        raise CampaignError(
            f"{db}: the database must live outside the campaign folder {campaign_dir} "
            "(the workflow replaces that folder when it exports again)"
        )
    if db.is_dir():
        raise CampaignError(f"{db}: is a folder; give the database file's name")
    if not db.parent.is_dir():
        raise CampaignError(f"{db.parent}: no such folder for the database")
    token, where = admin_token_from(Path(admin_token_file) if admin_token_file else None)
    store = Store(db, campaign)
    app = create_app(store, build, token)
    base = f"http://{host}:{port}"
    n_lists = campaign.tasks["task_id"].nunique()
    lines = [
        f"softdigits campaign: {campaign.folder} (corpus {campaign.corpus}, {n_lists} task lists), database {db}",
        f"  task page:    {base}/   (a platform appends ?PROLIFIC_PID=...&STUDY_ID=...&SESSION_ID=...)",
        f"  admin status: {base}/admin   (admin token: {where}"
        + (f": {token})" if where == "generated for this run" else ")"),
    ]
    if host not in ("127.0.0.1", "localhost", "::1"):
        lines.append(f"  WARNING: listening on {host}, not only this machine: put it behind TLS (docs/campaign.md)")
    print("\n".join(lines), file=sys.stderr, flush=True)
    uvicorn.run(app, host=host, port=port, log_level="info", server_header=False, proxy_headers=True)
