"""The review web app: a FastAPI server for the static page in `review/static`.

Why these choices:
- Slices go out as raw int16 HU (the page windows them itself, so dragging window/level
  needs no request) and contours as JSON polygons in pixel coordinates; both are cached, so
  a slice change costs two small local requests.
- Security: the server binds 127.0.0.1 unless told otherwise; with a token, every request
  without it (query `token=`, header `Authorization: Bearer`, or the cookie set when the page
  is opened with `?token=`) gets 401; a case id must be a folder that discovery found under
  the root, so no request can name a file outside it; uvicorn's access log is off and our log
  lines name cases by number, never by folder name, patient name or ID.
- A grade is acknowledged (HTTP 200) only after its transaction has committed.
"""

from __future__ import annotations

import hmac
import logging
import re
import threading
from collections import OrderedDict
from importlib import resources
from pathlib import Path
from typing import Callable

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from cervseg.errors import CervsegError, InputError
from cervseg.review.cases import CaseFiles, LoadedCase, discover_cases, load_case, safe_case_id
from cervseg.review.reference_metrics import case_slice_metrics
from cervseg.review.store import ReviewStore
from cervseg.structures import Catalogue

log = logging.getLogger(__name__)

TOKEN_COOKIE = "cervseg_review_token"
CASES_IN_MEMORY = 3  # a 512x512x500 CT is 250 MB as int16; keep a few, drop the least recent


class GradeIn(BaseModel):
    case_id: str
    slice_index: int = Field(ge=0)
    structure: str
    reviewer: str
    grade: int = Field(ge=1, le=4)
    seconds_on_slice: float | None = Field(default=None, ge=0)


class CommentIn(BaseModel):
    case_id: str
    slice_index: int = Field(ge=0)
    reviewer: str
    text: str = Field(max_length=5000)


class CaseCache:
    """Loaded cases, least recently used dropped first; each case is loaded once even when asked twice at once."""

    def __init__(self, cases: dict[str, CaseFiles], store: ReviewStore, catalogue: Catalogue) -> None:
        self.cases = cases
        self.store = store
        self.catalogue = catalogue
        self._loaded: OrderedDict[str, LoadedCase] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def number(self, case_id: str) -> int:
        return list(self.cases).index(case_id) + 1

    def files(self, case_id: str) -> CaseFiles:
        try:
            case_id = safe_case_id(case_id)
        except InputError:
            raise HTTPException(400, "case id must be a folder name directly under the review root") from None
        files = self.cases.get(case_id)
        if files is None:
            raise HTTPException(404, "no such case under the review root")
        return files

    def get(self, case_id: str) -> LoadedCase:
        files = self.files(case_id)
        with self._lock:
            if files.case_id in self._loaded:
                self._loaded.move_to_end(files.case_id)
                return self._loaded[files.case_id]
            case_lock = self._loading.setdefault(files.case_id, threading.Lock())
        with case_lock:
            with self._lock:
                if files.case_id in self._loaded:
                    return self._loaded[files.case_id]
            number = self.number(files.case_id)
            log.info("loading case %d", number)
            try:
                case = load_case(files, self.catalogue)
                if files.reference_rtstruct is not None:
                    self.store.replace_slice_metrics(files.case_id, case_slice_metrics(files, case.volume, self.catalogue))
            except CervsegError as exc:
                log.error("case %d cannot be loaded: %s", number, str(exc).replace(str(files.folder), "<case folder>"))
                raise HTTPException(422, "this case cannot be read; see the server log") from None
            with self._lock:
                self._loaded[files.case_id] = case
                while len(self._loaded) > CASES_IN_MEMORY:
                    self._loaded.popitem(last=False)
            log.info("case %d loaded: %d slices, %d with automatic contours", number, case.n_slices, len(case.auto))
            return case


def _token_guard(token: str | None) -> Callable:
    async def guard(request: Request, call_next):
        if token is None:
            return await call_next(request)
        auth = request.headers.get("authorization", "")
        given = (
            request.query_params.get("token")
            or (auth[7:] if auth.lower().startswith("bearer ") else None)
            or request.cookies.get(TOKEN_COOKIE)
        )
        if not given or not hmac.compare_digest(given.encode(), token.encode()):
            return JSONResponse({"detail": "missing or wrong token"}, status_code=401)
        response = await call_next(request)
        if request.query_params.get("token"):
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        return response

    return guard


def _static(name: str) -> bytes:
    return resources.files("cervseg.review").joinpath("static", name).read_bytes()


STATIC_TYPES = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}


def create_app(root: Path, db: Path, token: str | None = None, catalogue: Catalogue | None = None) -> FastAPI:
    """The review app over the cases under ``root``, grades in ``db``."""
    catalogue = catalogue or Catalogue.builtin()
    store = ReviewStore(db)
    cache = CaseCache(discover_cases(Path(root)), store, catalogue)
    app = FastAPI(title="cervseg review", docs_url=None, redoc_url=None, openapi_url=None)
    app.middleware("http")(_token_guard(token))
    app.state.store = store
    app.state.cases = cache

    @app.get("/")
    def index() -> Response:
        return Response(_static("index.html"), media_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-store"})

    @app.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in STATIC_TYPES:
            raise HTTPException(404, "not found")
        return Response(_static(name), media_type=STATIC_TYPES[name])

    @app.get("/api/cases")
    def cases(reviewer: str = "") -> list[dict]:
        graded: dict[str, int] = {}
        if reviewer:
            for g in store.current_grades(reviewer=reviewer):
                graded[g.case_id] = graded.get(g.case_id, 0) + 1
        return [
            {"id": f.case_id, "gradeable": f.gradeable, "graded": graded.get(f.case_id, 0),
             "has_reference": f.reference_rtstruct is not None, "has_qa": f.qa_file is not None}
            for f in cache.cases.values()
        ]

    @app.get("/api/cases/{case_id}")
    def case_meta(case_id: str) -> dict:
        case = cache.get(case_id)
        g = case.volume.geometry
        return {
            "id": case.files.case_id, "n_slices": case.n_slices, "rows": g.shape[1], "cols": g.shape[2],
            "pixel_spacing": [g.spacing[1], g.spacing[2]],
            "slice_z_mm": [round(float(v), 2) for v in g.slice_normal_coordinates()],
            "structures": [{"name": n, "colour": list(c)} for n, c in case.colours.items()],
            "contour_slices": sorted(case.auto), "worst_first": case.worst_first(),
            "has_reference": bool(case.reference), "has_qa": bool(case.qa),
        }

    def _slice(case: LoadedCase, z: int) -> int:
        if not 0 <= z < case.n_slices:
            raise HTTPException(404, f"slice {z} is outside the CT (0-{case.n_slices - 1})")
        return z

    @app.get("/api/cases/{case_id}/slices/{z}/image")
    def slice_image(case_id: str, z: int) -> Response:
        case = cache.get(case_id)
        return Response(case.slice_bytes(_slice(case, z)), media_type="application/octet-stream",
                        headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/api/cases/{case_id}/slices/{z}/contours")
    def slice_contours(case_id: str, z: int) -> dict:
        case = cache.get(case_id)
        z = _slice(case, z)
        return {"slice": z, "auto": case.auto.get(z, {}), "reference": case.reference.get(z, {}),
                "qa": case.qa.get(z, {})}

    @app.get("/api/cases/{case_id}/grades")
    def case_grades(case_id: str, reviewer: str) -> dict:
        files = cache.files(case_id)
        grades: dict[str, dict[str, int]] = {}
        for g in store.current_grades(case_id=files.case_id, reviewer=reviewer):
            grades.setdefault(str(g.slice_index), {})[g.structure] = g.grade
        comments = {str(z): text for (z, _), text in store.current_comments(files.case_id, reviewer).items()}
        return {"grades": grades, "comments": comments}

    @app.post("/api/grades")
    def add_grade(grade: GradeIn) -> dict:
        case = cache.get(grade.case_id)
        z = _slice(case, grade.slice_index)
        if grade.structure not in case.auto.get(z, {}):
            raise HTTPException(400, f"slice {z} has no automatic contour of {grade.structure}")
        try:
            stored = store.add_grade(case.files.case_id, z, grade.structure, grade.reviewer, grade.grade,
                                     grade.seconds_on_slice)
        except InputError as exc:
            raise HTTPException(400, str(exc)) from None
        return {"id": stored.id, "created_at": stored.created_at}

    @app.post("/api/comments")
    def add_comment(comment: CommentIn) -> dict:
        case = cache.get(comment.case_id)
        z = _slice(case, comment.slice_index)
        try:
            return {"id": store.add_comment(case.files.case_id, z, comment.reviewer, comment.text)}
        except InputError as exc:
            raise HTTPException(400, str(exc)) from None

    return app


class HideCaseFolders(logging.Filter):
    """Rewrites log records so that no path below the review root is shown (folder names may be patient IDs)."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        roots = {str(Path(root)), str(Path(root).resolve()), str(Path(root).absolute())}
        self.pattern = re.compile("(" + "|".join(re.escape(r.rstrip("/")) for r in sorted(roots, key=len, reverse=True))
                                  + r")/[^\s:,;'\"]+")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        hidden = self.pattern.sub(lambda m: m.group(1) + "/<case folder>", message)
        if hidden != message:
            record.msg, record.args = hidden, ()
        return True


def serve(root: Path, db: Path, host: str = "127.0.0.1", port: int = 8765, token: str | None = None) -> None:
    """Run the review app until interrupted (uvicorn's access log off: URLs carry case ids)."""
    import uvicorn

    hide = HideCaseFolders(root)
    for handler in logging.getLogger("cervseg").handlers + logging.getLogger().handlers:
        handler.addFilter(hide)
    app = create_app(root, db, token)
    where = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}/"
    log.info("review page at %s%s", where, "?token=<your token>" if token else "")
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("listening on %s: the page is reachable from other machines%s", host,
                    "" if token else " without a token (use --token)")
    uvicorn.run(app, host=host, port=port, access_log=False, log_level="warning")
