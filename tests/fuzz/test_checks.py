"""The error-contract check the fuzz tests rely on tells good replies from bad ones."""

import pytest

from tests.fuzz._checks import PROBLEM_JSON, problem_errors

GOOD = b'{"type":"about:blank","title":"Not Found","status":404,"detail":"no such route"}'


@pytest.mark.parametrize(
    ("status", "content_type", "body"),
    [
        (404, PROBLEM_JSON, GOOD),
        (404, f"{PROBLEM_JSON}; charset=utf-8", GOOD),
        (200, "text/html", b"<html>"),
        (101, "", b""),
    ],
)
def test_problems_and_successes_pass(status: int, content_type: str, body: bytes) -> None:
    """A problem document for an error, or any success, keeps the contract."""
    assert problem_errors(status, content_type, body) == []


@pytest.mark.parametrize(
    ("status", "content_type", "body", "why"),
    [
        (404, "text/html", b"<h1>Not Found</h1>", "not application/problem+json"),
        (404, "application/json", GOOD, "not application/problem+json"),
        (404, PROBLEM_JSON, b"not json", "not JSON"),
        (404, PROBLEM_JSON, b"[]", "not a JSON object"),
        (404, PROBLEM_JSON, b'{"type":"about:blank","status":404}', "'title'"),
        (400, PROBLEM_JSON, GOOD, "differs from HTTP 400"),
        (500, PROBLEM_JSON, GOOD.replace(b"404", b"500"), "server error 500"),
    ],
)
def test_broken_error_replies_are_named(
    status: int, content_type: str, body: bytes, why: str
) -> None:
    """Server errors, other media types and incomplete documents are each reported."""
    errors = problem_errors(status, content_type, body)
    assert any(why in e for e in errors), errors
