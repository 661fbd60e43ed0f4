"""A small client of the machinescan API for the `machinescan` command: where the server is, who you are,
JSON requests, and errors turned into one line that says what to do next."""

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

import httpx

CONFIG_PATH = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "machinescan" / "config.toml"
DEFAULT_URL = "http://127.0.0.1:8080/api"
JSON = {"Accept": "application/json"}


class ClientError(Exception):
    """A failure to show the user as one line."""


@dataclass
class Connection:
    url: str
    user: str
    password: str


def connection_from(url: str | None, user: str | None, password: str | None,
                    config_path: Path = CONFIG_PATH) -> Connection:
    """Flags first, then MACHINESCAN_URL/USER/PASSWORD, then the config file ([server] url, user, password)."""
    config = {}
    if config_path.is_file():
        try:
            config = tomllib.loads(config_path.read_text()).get("server", {})
        except tomllib.TOMLDecodeError as error:
            raise ClientError(f"{config_path} is not valid TOML ({error}): mend it or remove it") from None
    url = url or os.environ.get("MACHINESCAN_URL") or config.get("url") or DEFAULT_URL
    user = user or os.environ.get("MACHINESCAN_USER") or config.get("user")
    password = password or os.environ.get("MACHINESCAN_PASSWORD") or config.get("password")
    if not user:
        raise ClientError("who are you? give --user and --password, set MACHINESCAN_USER and MACHINESCAN_PASSWORD, "
                          f"or write them in {config_path} ([server] user = \"…\", password = \"…\")")
    if password is None:
        raise ClientError(f"no password for {user}: give --password, set MACHINESCAN_PASSWORD, or write it in "
                          f"{config_path} ([server] password = \"…\")")
    return Connection(url.rstrip("/"), user, password)


class Api:
    def __init__(self, connection: Connection, timeout: float = 60):
        self.connection = connection
        self.http = httpx.Client(base_url=connection.url, auth=(connection.user, connection.password),
                                 timeout=timeout, headers=JSON)

    @property
    def user_path(self) -> str:
        return f"/users/{self.connection.user}"

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.ConnectError:
            raise ClientError(f"cannot reach the server at {self.connection.url}: is it running "
                              f"(machinescan serve), and is --url right?") from None
        except httpx.TransportError as error:
            raise ClientError(f"the connection to {self.connection.url} failed: {error}") from None
        if response.status_code >= 400:
            hint = ""
            if response.status_code == 404 and not self.connection.url.endswith("/api"):
                hint = f" (the API lives under /api: try --url {self.connection.url}/api)"
            raise ClientError(explain(response) + hint)
        return response

    def get(self, path: str, **params) -> dict:
        return self.request("GET", path, params=params).json()

    def pages(self, path: str, key: str, page_size: int = 10000, **params):
        """Every item of a paged list, fetched a page at a time."""
        index = 0
        while True:
            page = self.get(path, index=index, max=page_size, **params)
            items = page.get(key, [])
            yield from items
            index += len(items)
            if not items or index >= page.get("total", 0):
                return

    def find_scan(self, scan_id: int) -> dict:
        scans = self.get(f"{self.user_path}/scans", id=scan_id).get("scans", [])
        if not scans:
            raise ClientError(f"no scan {scan_id}: `machinescan list` shows your scans")
        return scans[0]

    def scan_path(self, scan_id: int) -> str:
        return "/" + self.find_scan(scan_id)["uri"]


def explain(response: httpx.Response) -> str:
    try:
        message = response.json()["localizedErrorMsg"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text[:200] or response.reason_phrase
    hints = {401: " (check --user/--password)", 403: " (ask an administrator)"}
    return f"the server answered {response.status_code}: {message}{hints.get(response.status_code, '')}"
