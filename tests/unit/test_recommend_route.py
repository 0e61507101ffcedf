"""GET /recommend has the v2 route's limits and messages, and an OpenAPI description that says so."""

from __future__ import annotations

import pytest

from inference.errors import RequestError
from inference.recommend_route import OPENAPI, parse_query
from inference.transformer import MAX_EXCLUDE


def test_a_good_query_is_the_request_v2_would_build() -> None:
    req = parse_query(b"user_id=u%C3%BC1&k=5&scene=home&exclude=i1,i2,,i3")
    assert (req.user_id, req.k, req.scene, req.exclude) == ("uü1", 5, "home", {"i1", "i2", "i3"})
    assert parse_query(b"user_id=u1").k == 10


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (b"k=5", "'user_id' is missing"),
        (b"user_id=", "'user_id': ids must be 1..256"),
        (b"user_id=%ff%fe", "not UTF-8"),
        (b"user_id=u1&k=abc", "'k': 'abc' is not an integer"),
        (b"user_id=u1&k=501", "'k': 501 is out of range"),
        (b"user_id=u1&user_id=u2", "'user_id': given twice"),
        (b"user_id=u1&colour=red", "'colour' is unknown"),
        (
            b"user_id=u1&exclude=" + b",".join(b"i%d" % n for n in range(MAX_EXCLUDE + 500)),
            "more than 1000 ids",
        ),
        (b"user_id=" + b"x" * 300, "1..256 characters"),
    ],
)
def test_bad_queries_are_400_naming_the_parameter(query: bytes, message: str) -> None:
    with pytest.raises(RequestError, match=message) as err:
        parse_query(query)
    assert err.value.status == 400


def test_the_openapi_description_says_what_the_route_does() -> None:
    params = {p["name"]: p for p in OPENAPI["parameters"]}
    assert params["user_id"]["required"] is True and not params["k"]["required"]
    assert set(OPENAPI["responses"]) == {"200", "400"}  # no 422: the route answers 400
