"""Users and who is calling: password hashing, HTTP Basic, UForge API-key signatures, entitlements."""

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from urllib.parse import parse_qsl

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.orm import Session

from .db.models import ApiKey, User
from .errors import Conflict, NotFound, Unauthorized

MIGRATION_ACCESS = "migration_access"
_hasher = PasswordHasher()
_UNKNOWN_USER_HASH = _hasher.hash(secrets.token_hex(16))  # checked against for logins that do not exist


def hash_password(password: str) -> str:
    return _hasher.hash(password)


class VerifiedCredentials:
    """Remembers recent successful password checks for a few minutes.

    Clients send Basic credentials on every request (an overlay is hundreds of chunk requests), and a
    memory-hard hash costs tens of milliseconds by design; the cache keys on a keyed digest of the
    login, the password and the stored hash, so a changed password or hash never hits.
    """

    def __init__(self, ttl_seconds: float = 300, capacity: int = 1024):
        self._key = secrets.token_bytes(32)
        self._ttl = ttl_seconds
        self._capacity = capacity
        self._entries: OrderedDict[bytes, float] = OrderedDict()
        self._lock = threading.Lock()

    def _digest(self, login: str, password: str, stored_hash: str) -> bytes:
        message = "\0".join((login, password, stored_hash)).encode()
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def check(self, user: User, password: str) -> bool:
        digest = self._digest(user.login_name, password, user.password_hash)
        with self._lock:
            expiry = self._entries.get(digest)
            if expiry is not None and expiry > time.monotonic():
                return True
        try:
            _hasher.verify(user.password_hash, password)
        except (VerifyMismatchError, InvalidHashError):
            return False
        with self._lock:
            self._entries[digest] = time.monotonic() + self._ttl
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)
        return True


    def check_unknown(self, password: str) -> None:
        """Spend what checking a wrong password costs."""
        try:
            _hasher.verify(_UNKNOWN_USER_HASH, password)
        except (VerifyMismatchError, InvalidHashError):
            pass


_verified = VerifiedCredentials()


def authenticate(session: Session, authorization: str | None, path_from_base: str, raw_query: str) -> User:
    """The calling user, from an API-key signature in the query or HTTP Basic credentials."""
    if any(name == "apiKey" for name, _ in parse_qsl(raw_query, keep_blank_values=True)):
        return _by_api_key(session, path_from_base, raw_query)
    if authorization and authorization.lower().startswith("basic "):
        return _by_basic(session, authorization[6:])
    raise Unauthorized("authentication required: send HTTP Basic credentials or an apiKey and signature")


def _by_basic(session: Session, encoded: str) -> User:
    try:
        login, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthorized("malformed HTTP Basic credentials") from None
    user = session.scalar(select(User).where(User.login_name == login))
    if user is None:
        _verified.check_unknown(password)  # as slow as a wrong password, so that timing tells no user names
        raise Unauthorized("wrong user name or password")
    if not _verified.check(user, password):
        raise Unauthorized("wrong user name or password")
    return user


def api_key_signature(secret_key: str, path_and_query: str) -> str:
    digest = hmac.new(secret_key.encode(), path_and_query.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _by_api_key(session: Session, path_from_base: str, raw_query: str) -> User:
    signed_query, separator, signature_part = raw_query.rpartition("&signature=")
    # The signature ends the query: parameters after it would be acted on without being signed.
    if not separator or "&" in signature_part:
        raise Unauthorized("an apiKey request must end with &signature=<signature of the rest>")
    public_key = dict(parse_qsl(signed_query)).get("apiKey", "")
    signature = dict(parse_qsl("signature=" + signature_part)).get("signature", "")
    api_key = session.scalar(select(ApiKey).where(ApiKey.public_key == public_key))
    if api_key is None:
        raise Unauthorized("unknown API key")
    expected = api_key_signature(api_key.secret_key, f"{path_from_base}?{signed_query}")
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise Unauthorized("wrong API key signature")
    return api_key.user


# ---------------------------------------------------------------- user administration (CLI)


def add_user(session: Session, login: str, password: str, admin: bool = False,
             entitlements: tuple[str, ...] = (), email: str | None = None) -> User:
    if session.scalar(select(User).where(User.login_name == login)) is not None:
        raise Conflict(f"user {login!r} already exists")
    user = User(login_name=login, password_hash=hash_password(password), is_admin=admin,
                entitlements=" ".join(sorted(set(entitlements))), email=email)
    session.add(user)
    session.flush()
    return user


def find_user(session: Session, login: str) -> User:
    user = session.scalar(select(User).where(User.login_name == login))
    if user is None:
        raise NotFound(f"no user {login!r}")
    return user


def new_api_key(session: Session, user: User) -> ApiKey:
    api_key = ApiKey(user=user, public_key=secrets.token_urlsafe(24), secret_key=secrets.token_urlsafe(48))
    session.add(api_key)
    session.flush()
    return api_key
