"""A real server on a free loopback port, on SQLite and (when MACHINESCAN_TEST_POSTGRES_URL is set) PostgreSQL."""

import os
import uuid

import pytest
from servers import RunningServer, start_server
from sqlalchemy import create_engine, text

from machinescan.server.db.engine import Database

POSTGRES_URL = os.environ.get("MACHINESCAN_TEST_POSTGRES_URL")


def _postgres_schema_url(base_url: str) -> tuple[str, str]:
    schema = f"ms_test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(base_url)
    with engine.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    separator = "&" if "?" in base_url else "?"
    return schema, f"{base_url}{separator}options=-csearch_path%3D{schema}"


def _drop_schema(base_url: str, schema: str) -> None:
    engine = create_engine(base_url)
    with engine.begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
    not POSTGRES_URL, reason="MACHINESCAN_TEST_POSTGRES_URL is not set"))]


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request, tmp_path_factory):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'db.sqlite'}"
        return
    schema, url = _postgres_schema_url(POSTGRES_URL)
    yield url
    _drop_schema(POSTGRES_URL, schema)


@pytest.fixture
def private_database_url(database_url, tmp_path):
    """A database of the same kind as `database_url`, for a test that runs servers of its own."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'private.sqlite'}"
        return
    schema, url = _postgres_schema_url(POSTGRES_URL)
    yield url
    _drop_schema(POSTGRES_URL, schema)


@pytest.fixture(scope="session")
def server(database_url, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("data")
    process = start_server(data_dir, database_url)
    database = Database(database_url)
    yield RunningServer(f"http://127.0.0.1:{process.port}/api", data_dir, database_url, process, database,
                        data_dir / "server.log")
    process.terminate()
    process.wait(timeout=10)
    database.engine.dispose()


@pytest.fixture
def alice(server):
    return server.add_user()


@pytest.fixture
def bob(server):
    return server.add_user()
