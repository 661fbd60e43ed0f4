"""Request dependencies: the services of the app, a database session, the caller and the user acted upon."""

from collections.abc import Iterator
from dataclasses import dataclass

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from ..auth import MIGRATION_ACCESS, authenticate, find_user
from ..blobs import BlobStore
from ..db.engine import Database
from ..db.models import User
from ..errors import Forbidden, NotFound
from ..jobs import JobRunner
from ..settings import Settings

API_PREFIX = "/api"


@dataclass
class Services:
    settings: Settings
    database: Database
    blobs: BlobStore
    jobs: "JobRunner | None" = None  # the in-process runner; woken when work is enqueued


def services(request: Request) -> Services:
    return request.app.state.services


def db_session(request: Request) -> Iterator[Session]:
    with services(request).database.session() as session:
        yield session


def caller(request: Request, session: Session = Depends(db_session)) -> User:
    path_from_base = request.url.path.removeprefix(API_PREFIX).lstrip("/")
    return authenticate(session, request.headers.get("authorization"), path_from_base, request.url.query)


def acted_upon(uid: str, session: Session = Depends(db_session), user: User = Depends(caller)) -> User:
    """The user named in the path, if the caller may act on it; another user's resources do not exist."""
    if uid == user.login_name:
        return user
    if not user.is_admin:
        raise NotFound(f"no user {uid!r}")
    try:
        return find_user(session, uid)
    except NotFound:
        raise NotFound(f"no user {uid!r}") from None


def migration_user(request: Request, user: User = Depends(acted_upon),
                   calling: User = Depends(caller)) -> User:
    """The owner of scanned instances and scans: needs the `migration_access` entitlement (admins act freely)."""
    if not calling.is_admin and not user.has_entitlement(MIGRATION_ACCESS):
        raise Forbidden(f"user {user.login_name!r} lacks the entitlement {MIGRATION_ACCESS!r}; "
                        f"an administrator can grant it: machinescan user entitle {user.login_name} "
                        f"{MIGRATION_ACCESS}")
    return user
