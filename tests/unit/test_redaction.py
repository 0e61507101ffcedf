"""URLs in messages (recsys/redaction.py): passwords in the userinfo and in the query are hidden,
everything that says which server it is stays."""

from __future__ import annotations

import pytest

from recsys.redaction import redact


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@redis:6379/0", "redis://:***@redis:6379/0"),
        (
            "postgresql+psycopg://shop:s3cret@db.example:5432/shop",
            "postgresql+psycopg://shop:***@db.example:5432/shop",
        ),
        ("redis://redis:6379/0?password=s3cret&db=1", "redis://redis:6379/0?password=***&db=1"),
        (
            "postgresql://u@db/x?sslmode=require&PASSWORD=s3cret",
            "postgresql://u@db/x?sslmode=require&PASSWORD=***",
        ),
        ("https://mlflow.example/?token=s3cret", "https://mlflow.example/?token=***"),
        ("sqlite:////var/lib/recsys/store.db", "sqlite:////var/lib/recsys/store.db"),
        ("redis://redis:6379/0", "redis://redis:6379/0"),
        ("redis://:s3cret@redis:notaport/0?password=s3cret", "redis://redis:notaport/0"),
    ],
)
def test_secrets_are_hidden_and_the_server_is_named(url: str, shown: str) -> None:
    assert redact(url) == shown
    assert "s3cret" not in redact(url)


def test_a_store_that_cannot_be_reached_names_it_without_the_query_password() -> None:
    """The issue's finding: ?password=... was printed in clear in the "cannot reach" error."""
    from recsys.errors import StoreUnavailable
    from recsys.store import open_store

    store = open_store("redis://127.0.0.1:1/0?password=s3cret", connect_timeout_s=0.2, retries=0)
    with pytest.raises(StoreUnavailable) as e:
        store.ping()
    assert "redis://127.0.0.1:1/0?password=***" in str(e.value) and "s3cret" not in str(e.value)
