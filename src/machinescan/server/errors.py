"""The server's exception hierarchy; each error carries its HTTP status, mapped to a `uforgeError` body in app.py."""


class ApiError(Exception):
    status_code = 500

    def __init__(self, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequest(ApiError):
    status_code = 400


class Unauthorized(ApiError):
    status_code = 401

    def __init__(self, message: str):
        super().__init__(message, {"WWW-Authenticate": 'Basic realm="machinescan"'})


class Forbidden(ApiError):
    status_code = 403


class NotFound(ApiError):
    status_code = 404


class Conflict(ApiError):
    status_code = 409


class Gone(ApiError):
    status_code = 410


class PayloadTooLarge(ApiError):
    status_code = 413


class NotImplementedYet(ApiError):
    status_code = 501
