"""The listening test's web server: FastAPI over the run's stimuli and its SQLite store.

Routes are fixed: the page, its JSON API, and ``/audio/{token}``, where a token is 32 hex digits
that the store maps to a (clip, condition) held in memory. No part of a request is ever joined to
a file-system path, so ``../`` or absolute paths can only miss.
"""

from __future__ import annotations

import re
import secrets
import socket
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..core.errors import UserError
from . import store
from .screens import Stimuli
from .text import name_problem

OPEN_REFERENCE = "open-reference"  # the labelled reference: played, never rated
TOKEN = re.compile(r"[0-9a-f]{32}")

# Strict: a score is a JSON number, never a string or a boolean coerced into one.
Score = Annotated[float, Field(ge=0.0, le=100.0, allow_inf_nan=False, strict=True)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class NewSession(Strict):
    rater: str

    @field_validator("rater")
    @classmethod
    def readable(cls, rater: str) -> str:
        problem = name_problem(rater)
        if problem:
            raise ValueError(problem)
        return rater


class Played(Strict):
    session: str
    token: str


class MushraScores(Strict):
    session: str
    clip: str
    scores: dict[str, Score]  # token -> 0..100


class PreferenceChoice(Strict):
    session: str
    clip: str
    preferred: str  # token of the preferred item


def create_app(stimuli: Stimuli, database: Path) -> FastAPI:
    """The app serving ``stimuli``, storing into ``database`` (created if missing)."""
    store.create(database)
    sounds = {(clip.name, OPEN_REFERENCE): clip.reference for clip in stimuli.clips}
    sounds |= {(clip.name, name): wav for clip in stimuli.clips for name, wav in clip.conditions.items()}
    app = FastAPI(title="perceptual-audio-loss listening test", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_exception_handler(RequestValidationError, invalid_request)
    add_session_routes(app, stimuli, database)
    add_item_routes(app, database, sounds)
    return app


async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
    # One line naming the field; never the submitted value back (it may be Infinity, or huge).
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"][1:]) or "body"
    return JSONResponse({"detail": f"{field}: {first['msg']}"}, status_code=422)


def add_session_routes(app: FastAPI, stimuli: Stimuli, database: Path) -> None:
    """The page, what the test is, and a new rater's session with its screens."""

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")

    @app.get("/api/test")
    def describe() -> dict:
        return {"mode": stimuli.mode, "kind": stimuli.kind, "checkpoint": stimuli.checkpoint,
                "clips": len(stimuli.clips), "conditions": len(stimuli.rated_conditions)}

    @app.post("/api/sessions")
    def new_session(request: NewSession) -> dict:
        session = secrets.token_hex(16)
        screens, rows = session_screens(stimuli, session)
        with refusals_as_http():
            store.add_session(database, session, request.rater.strip(), stimuli.mode, stimuli.checkpoint, rows,
                              stimuli.width, stimuli.train_seconds)
        return {"session": session, "mode": stimuli.mode, "screens": screens}


def session_screens(stimuli: Stimuli, session: str) -> tuple[list[dict], list[tuple]]:
    """A new session's screens, clips and items in a fresh random order each behind a fresh token,
    and the store's rows mapping each token to its (clip, position, condition)."""
    shuffle = secrets.SystemRandom().shuffle
    clips = list(stimuli.clips)
    shuffle(clips)
    screens, rows = [], []
    for clip in clips:
        conditions = list(clip.conditions)
        shuffle(conditions)
        reference = secrets.token_hex(16)
        rows.append((reference, session, clip.name, -1, OPEN_REFERENCE, 0))
        items = []
        for position, condition in enumerate(conditions):
            token = secrets.token_hex(16)
            rows.append((token, session, clip.name, position, condition, 1))
            items.append({"token": token, "url": f"/audio/{token}", "label": item_label(position)})
        screen = {"clip": clip.name, "reference": f"/audio/{reference}", "items": items}
        screens.append(screen if clip.title is None else {**screen, "title": clip.title})
    return screens, rows


def add_item_routes(app: FastAPI, database: Path, sounds: dict[tuple[str, str], bytes]) -> None:
    """An item's sound by its token, and what a rater did with the items: played, rated, preferred."""

    @app.get("/audio/{token}")
    def audio(token: str) -> Response:
        if not TOKEN.fullmatch(token):
            raise HTTPException(404, "no such sound")
        with refusals_as_http():
            sound = store.item_sound(database, token)
        if sound is None or sound not in sounds:
            raise HTTPException(404, "no such sound")
        return Response(sounds[sound], media_type="audio/wav", headers={"Cache-Control": "private, max-age=3600"})

    @app.post("/api/played", status_code=204)
    def played(request: Played) -> Response:
        with refusals_as_http():
            store.mark_played(database, request.session, request.token)
        return Response(status_code=204)

    @app.post("/api/ratings", status_code=201)
    def rate(request: MushraScores) -> dict:
        with refusals_as_http():
            return {"stored": store.add_ratings(database, request.session, request.clip, request.scores)}

    @app.post("/api/preferences", status_code=201)
    def prefer(request: PreferenceChoice) -> dict:
        with refusals_as_http():
            store.add_preference(database, request.session, request.clip, request.preferred)
        return {"stored": 1}


def item_label(position: int) -> str:
    """The label of the item at ``position`` (from 0): A to Z, then AA, AB, ... AZ, BA, ... ZZ,
    AAA, ... (bijective base 26, as spreadsheet columns), so any number of items has distinct labels."""
    label = ""
    position += 1
    while position:
        position, letter = divmod(position - 1, 26)
        label = chr(ord("A") + letter) + label
    return label


@contextmanager
def refusals_as_http():
    """The store's refusals as HTTP errors with its status and message."""
    try:
        yield
    except store.Refused as refusal:
        raise HTTPException(refusal.status, refusal.message) from None


def check_port_free(host: str, port: int) -> None:
    """One clear line instead of uvicorn's traceback when the address is taken or invalid."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as error:
        raise UserError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None


def serve(stimuli: Stimuli, host: str, port: int) -> None:
    import uvicorn

    check_port_free(host, port)
    database = store.database_path(stimuli.run_dir)
    app = create_app(stimuli, database)
    shown_host = f"[{host}]" if ":" in host else host
    print(f"listening test ({stimuli.mode}, {stimuli.note}): http://{shown_host}:{port}/  "
          f"ratings go to {database}; Ctrl-C stops", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
