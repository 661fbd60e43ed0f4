"""The application factory: wires settings, database, blob store and routers, and maps errors to `uforgeError`."""

import logging
import re
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from .. import __version__
from .api import contents, instances, platform, scans
from .api import overlay
from .api.deps import API_PREFIX, Services
from .blobs import open_blob_store
from .db.engine import Database, migrate
from .errors import ApiError
from .jobs import JobRunner
from .jobs import ingest  # noqa: F401  (registers the job handler)
from .settings import Settings
from .wire import resources
from .wire.negotiation import render

log = logging.getLogger("machinescan.server")
_SLASHES = re.compile(r"//+")


class NormalisePath:
    """The UForge SDK asks for `files//delta` and `imports/status/`: collapse doubled and trailing slashes."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = _SLASHES.sub("/", scope["path"])
            if len(path) > 1:
                path = path.rstrip("/")
            scope = {**scope, "path": path, "raw_path": path.encode()}
        await self.app(scope, receive, send)


def _error(request: Request, status_code: int, message: str, headers: dict | None = None):
    body = resources.uforge_error(status_code, message, request.method, str(request.url))
    return render(request, "uforgeError", body, status_code, headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError):
        return _error(request, error.status_code, error.message, error.headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException):
        message = {404: f"no resource at {request.url.path}",
                   405: f"{request.method} is not allowed on {request.url.path}"}.get(
            error.status_code, str(error.detail))
        return _error(request, error.status_code, message, getattr(error, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError):
        problems = "; ".join(f"{'.'.join(str(part) for part in problem['loc'][1:])}: {problem['msg']}"
                             for problem in error.errors())
        return _error(request, 400, f"invalid request: {problems}")

    @app.exception_handler(OverflowError)
    @app.exception_handler(DataError)
    async def out_of_range(request: Request, error: Exception):
        # Ids and sizes beyond 64 bits, which the databases cannot store, come only from the request.
        return _error(request, 400, "a number in the request is out of range (ids and sizes fit in 64 bits)")

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, error: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(request, 500, f"internal error ({type(error).__name__}); the server log has details")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = Database(settings.resolved_database_url())
    migrate(database.engine)
    services = Services(settings, database, open_blob_store(settings.resolved_blobs_url()))
    services.jobs = JobRunner(services, settings.job_threads)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if settings.job_threads > 0:
            services.jobs.start()
        yield
        services.jobs.stop()

    app = FastAPI(title="machinescan", version=__version__, docs_url=f"{API_PREFIX}/docs",
                  openapi_url=f"{API_PREFIX}/openapi.json", redoc_url=None, lifespan=lifespan)
    app.state.services = services
    for router in (platform.router, instances.router, scans.router, contents.router):
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(platform.agent_router)
    overlay.install(app)
    _install_error_handlers(app)
    app.add_middleware(NormalisePath)
    return app
