"""Commands that act on local state: `serve` and `user …` (they take --data-dir / --database-url)."""

import argparse
import secrets
import sys

from sqlalchemy import select

from ..server.auth import MIGRATION_ACCESS, add_user, find_user, new_api_key
from ..server.db.engine import Database, migrate
from ..server.db.models import User
from ..server.errors import ApiError
from ..server.settings import Settings


class CommandError(Exception):
    pass


def settings_from(args: argparse.Namespace) -> Settings:
    overrides = {name: value for name, value in (
        ("data_dir", args.data_dir), ("database_url", args.database_url),
        ("host", getattr(args, "host", None)), ("port", getattr(args, "port", None)),
    ) if value is not None}
    return Settings(**overrides)


def open_database(settings: Settings) -> Database:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = Database(settings.resolved_database_url())
    migrate(database.engine)
    return database


def add_state_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", help="folder of the embedded database and blobs "
                        "(default ./machinescan-data, or MACHINESCAN_DATA_DIR)")
    parser.add_argument("--database-url", help="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db "
                        "(default: SQLite in the data folder, or MACHINESCAN_DATABASE_URL)")


def add_commands(commands) -> None:
    serve = commands.add_parser("serve", help="run the API server",
                                description="Run the API server at http://HOST:PORT/api.")
    add_state_options(serve)
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8080)")
    serve.set_defaults(run=run_serve)

    user = commands.add_parser("user", help="add, list, delete users; API keys and entitlements")
    actions = user.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="add a user (password read from standard input)")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true", help="may act on every user's resources")
    add.add_argument("--entitlement", action="append", default=[], metavar="NAME",
                     help=f"grant an entitlement (repeatable); scans need {MIGRATION_ACCESS}")
    add.add_argument("--email")
    add.add_argument("--password-stdin", action="store_true", required=True,
                     help="read the password from the first line of standard input")
    add.set_defaults(run=run_user_add)
    listing = actions.add_parser("list", help="list users")
    listing.set_defaults(run=run_user_list)
    delete = actions.add_parser("delete", help="delete a user and everything they own")
    delete.add_argument("name")
    delete.set_defaults(run=run_user_delete)
    apikey = actions.add_parser("apikey", help="create an API key pair for a user and print it")
    apikey.add_argument("name")
    apikey.set_defaults(run=run_user_apikey)
    entitle = actions.add_parser("entitle", help="grant entitlements to a user")
    entitle.add_argument("name")
    entitle.add_argument("entitlements", nargs="+", metavar="ENTITLEMENT")
    entitle.set_defaults(run=run_user_entitle)
    for parser in (add, listing, delete, apikey, entitle):
        add_state_options(parser)


def ensure_first_admin(database: Database) -> tuple[str, str] | None:
    """Create `admin` with a random password when there is no user at all; return the credentials once."""
    with database.session() as session:
        if session.scalar(select(User.id).limit(1)) is not None:
            return None
        password = secrets.token_urlsafe(12)
        add_user(session, "admin", password, admin=True, entitlements=(MIGRATION_ACCESS,))
        return "admin", password


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from ..server.app import create_app

    settings = settings_from(args)
    app = create_app(settings)
    credentials = ensure_first_admin(app.state.services.database)
    if credentials:
        print(f"First administrator created (shown only this once): user {credentials[0]}, "
              f"password {credentials[1]}", flush=True)
    print(f"machinescan serving http://{settings.host}:{settings.port}/api "
          f"(data in {settings.data_dir.resolve()})", flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")
    return 0


def _read_password() -> str:
    password = sys.stdin.readline().rstrip("\n")
    if not password:
        raise CommandError("no password on standard input (example: echo 's3cret' | machinescan user add …)")
    return password


def run_user_add(args: argparse.Namespace) -> int:
    password = _read_password()
    with open_database(settings_from(args)).session() as session:
        try:
            user = add_user(session, args.name, password, admin=args.admin,
                            entitlements=tuple(args.entitlement), email=args.email)
        except ApiError as error:
            raise CommandError(error.message) from None
        print(f"user {user.login_name} added" + (" (administrator)" if user.is_admin else ""))
    if not args.admin and MIGRATION_ACCESS not in args.entitlement:
        print(f"note: {args.name} cannot scan yet; grant it with: machinescan user entitle {args.name} "
              f"{MIGRATION_ACCESS}", file=sys.stderr)
    return 0


def run_user_list(args: argparse.Namespace) -> int:
    with open_database(settings_from(args)).session() as session:
        users = session.scalars(select(User).order_by(User.login_name)).all()
        print(f"{'USER':<24} {'ADMIN':<6} ENTITLEMENTS")
        for user in users:
            print(f"{user.login_name:<24} {'yes' if user.is_admin else 'no':<6} {user.entitlements or '-'}")
    return 0


def _find(session, name: str) -> User:
    try:
        return find_user(session, name)
    except ApiError as error:
        raise CommandError(error.message) from None


def run_user_delete(args: argparse.Namespace) -> int:
    from ..server.blobs import open_blob_store
    from ..server.db.queries import delete_scans, user_scans_query

    settings = settings_from(args)
    with open_database(settings).session() as session:
        user = _find(session, args.name)
        prefixes = delete_scans(session, list(session.scalars(user_scans_query(user))))
        session.delete(user)
    blobs = open_blob_store(settings.resolved_blobs_url())
    for prefix in prefixes:
        blobs.delete_prefix(prefix)
    print(f"user {args.name} deleted with {len(prefixes)} scan(s)")
    return 0


def run_user_apikey(args: argparse.Namespace) -> int:
    with open_database(settings_from(args)).session() as session:
        key = new_api_key(session, _find(session, args.name))
        print(f"public key: {key.public_key}\nsecret key: {key.secret_key}")
    return 0


def run_user_entitle(args: argparse.Namespace) -> int:
    with open_database(settings_from(args)).session() as session:
        user = _find(session, args.name)
        user.entitlements = " ".join(sorted(set(user.entitlements.split()) | set(args.entitlements)))
        print(f"user {user.login_name} entitlements: {user.entitlements}")
    return 0
