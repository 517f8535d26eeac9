"""JSON:API error objects. Every refusal the sandbox makes goes through `ApiError`."""

from __future__ import annotations

from http import HTTPStatus


class ApiError(Exception):
    """An error response: status, title, detail and the query parameter it is about."""

    def __init__(self, status: int, detail: str, *, parameter: str | None = None, title: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.parameter = parameter
        self.title = title or HTTPStatus(status).phrase

    def document(self) -> dict[str, object]:
        error: dict[str, object] = {"status": str(self.status), "title": self.title, "detail": self.detail}
        if self.parameter is not None:
            error["source"] = {"parameter": self.parameter}
        return {"errors": [error]}


def bad_request(detail: str, parameter: str | None = None) -> ApiError:
    return ApiError(400, detail, parameter=parameter)
