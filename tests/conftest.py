"""Shared fixtures: real source databases (SQLite file, PostgreSQL on loopback) and, for the
serving tests, one private Redis and one trained, published bundle per session."""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from serving_helpers import RedisServer, run

PG_HOST, PG_PORT = "127.0.0.1", 5432
REPO_ROOT = Path(__file__).resolve().parents[1]
# CI sets this so that a missing service fails the run instead of skipping its tests
REQUIRE_SERVICES = os.environ.get("RECSYS_REQUIRE_SERVICES") == "1"


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _need(service: str, host: str, port: int) -> None:
    if port_open(host, port):
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"{service} on {host}:{port} is not reachable (RECSYS_REQUIRE_SERVICES=1)")
    pytest.skip(f"{service} on {host}:{port} is not reachable")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'source.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh database on the real PostgreSQL server, dropped afterwards."""
    _need("PostgreSQL", PG_HOST, PG_PORT)
    import psycopg

    name = f"recsys_test_{uuid.uuid4().hex[:10]}"
    admin = f"host={PG_HOST} port={PG_PORT} user=postgres dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def source_url(request: pytest.FixtureRequest) -> str:
    """Each backend in turn: one shared suite per interface."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("postgres_url")


@pytest.fixture(scope="session")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def served_data(tmp_path_factory: pytest.TempPathFactory, private_redis: RedisServer) -> Path:
    """A small marketplace trained by the local pipeline and published to the private Redis (and
    the SQLite fallback in the data dir)."""
    d = tmp_path_factory.mktemp("served")
    env = {"RECSYS_ONLINE_STORE": private_redis.url}
    run("data", "generate", "--users", "300", "--items", "120", "--days", "14", "--seed", "7",
        "--data-dir", str(d), cwd=d, env=env)  # fmt: skip
    run("pipeline", "run", "--local", "--json", "--data-dir", str(d), cwd=d, env=env)
    return d


@pytest.fixture(scope="session")
def served_bundle(served_data: Path) -> Path:
    return Path(json.loads((served_data / "bundles" / "LATEST.json").read_text())["path"])
