"""Credentials (inference/auth.py) and the edge's rules (inference/edge.py): keys, HS256 and
RS256 tokens (a PEM key and a JWKS file), scopes, the token buckets and the public paths."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from inference.auth import Authenticator, Denied, load_auth_settings
from inference.edge import Edge, TokenBuckets, public
from recsys.errors import ConfigError

CLIENT_KEY, ADMIN_KEY = "client-key-0123456789", "admin-key-0123456789"
SECRET = "hs256-secret-0123456789abcdef0123456789"


def token(key: object, alg: str = "HS256", **claims: object) -> str:
    body = {"sub": "app-1", "exp": int(time.time()) + 60, **claims}
    headers = {"kid": claims.pop("kid")} if "kid" in claims else None
    body.pop("kid", None)
    return jwt.encode(body, key, algorithm=alg, headers=headers)  # type: ignore[arg-type]


def hs256_by_hand(key: bytes, claims: dict[str, object]) -> str:
    """A token PyJWT refuses to make: HS256 with an asymmetric key as the secret."""

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    signing = (
        b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + b"." + b64(json.dumps(claims).encode())
    )
    return (signing + b"." + b64(hmac.new(key, signing, hashlib.sha256).digest())).decode()


def test_api_keys_name_the_caller_and_admin_keys_the_admin() -> None:
    auth = Authenticator(load_auth_settings(enabled=True, api_keys=f"shop={CLIENT_KEY}",
                                            admin_keys=f"ops={ADMIN_KEY}"))  # fmt: skip
    assert auth.caller(CLIENT_KEY).name == "shop" and not auth.caller(CLIENT_KEY).admin
    assert auth.caller(ADMIN_KEY).name == "ops" and auth.caller(ADMIN_KEY).admin
    for bad in (None, "", "nope-nope-nope-nope", CLIENT_KEY + "x"):
        with pytest.raises(Denied) as e:
            auth.caller(bad)
        assert e.value.status == 401


def test_hs256_tokens_need_a_valid_signature_an_exp_and_the_audience() -> None:
    auth = Authenticator(load_auth_settings(enabled=True, jwt_algorithm="HS256", jwt_secret=SECRET,
                                            jwt_audience="recsys"))  # fmt: skip
    assert auth.caller(token(SECRET, aud="recsys")).name == "app-1"
    assert auth.caller(token(SECRET, aud="recsys", scope="read recsys:admin")).admin
    assert auth.caller(token(SECRET, aud="recsys", roles=["recsys:admin"])).admin
    bad = {
        "signature": token("another-secret-0123456789abcdef0123456789", aud="recsys"),
        "expired": token(SECRET, aud="recsys", exp=int(time.time()) - 120),
        "audience": token(SECRET, aud="other"),
        "no exp": jwt.encode({"sub": "x", "aud": "recsys"}, SECRET, algorithm="HS256"),
        "alg none": jwt.encode(
            {"sub": "x", "aud": "recsys", "exp": time.time() + 60}, None, algorithm="none"
        ),
    }
    for why, value in bad.items():
        with pytest.raises(Denied, match="invalid token|unknown API key") as e:
            auth.caller(value)
        assert e.value.status == 401, why


def test_rs256_tokens_from_a_pem_key_or_a_jwks_file(tmp_path: Path) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "key.pem"
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    pem.write_bytes(private.public_key().public_bytes(serialization.Encoding.PEM, spki))
    by_pem = Authenticator(load_auth_settings(enabled=True, jwt_algorithm="RS256", jwt_public_key_file=pem))
    assert by_pem.caller(token(private, "RS256")).name == "app-1"
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}))
    by_jwks = Authenticator(load_auth_settings(enabled=True, jwt_algorithm="RS256", jwks_file=jwks))
    assert by_jwks.caller(token(private, "RS256", kid="k1")).name == "app-1"
    with pytest.raises(Denied, match="no key with kid 'k2'"):
        by_jwks.caller(token(private, "RS256", kid="k2"))
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(Denied, match="invalid token"):
        by_pem.caller(token(other, "RS256"))
    with pytest.raises(Denied, match="invalid token"):  # alg confusion: HS256 keyed by the public PEM
        by_pem.caller(hs256_by_hand(pem.read_bytes(), {"sub": "x", "exp": int(time.time()) + 60}))


def test_bad_auth_settings_are_one_line_naming_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    cases = {
        "no API key, admin key or JWT": {"enabled": True},
        "HS256 needs RECSYS_AUTH_JWT_SECRET": {"jwt_algorithm": "HS256"},
        "jwt_algorithm": {"jwt_algorithm": "none"},
        "rate_limit_per_s": {"rate_limit_per_s": -1},
    }
    for message, given in cases.items():
        with pytest.raises(ConfigError, match=message):
            load_auth_settings(**given)
    with pytest.raises(ConfigError, match="shorter than 16"):
        Authenticator(load_auth_settings(enabled=True, api_keys="shop=short"))
    with pytest.raises(ConfigError, match="not name=key"):
        Authenticator(load_auth_settings(enabled=True, api_keys=CLIENT_KEY))
    monkeypatch.setenv("RECSYS_AUTH_API_KEYS", f"shop={CLIENT_KEY}")
    monkeypatch.setenv("RECSYS_AUTH_ENABLED", "true")
    settings = load_auth_settings()
    assert settings.enabled and CLIENT_KEY not in repr(settings) and CLIENT_KEY not in str(settings)


def test_token_buckets_allow_the_burst_then_the_rate() -> None:
    buckets = TokenBuckets(rate=10, burst=3)
    assert [buckets.wait("a") for _ in range(3)] == [0, 0, 0]
    wait = buckets.wait("a")
    assert 0.05 < wait <= 0.1
    assert buckets.wait("b") == 0  # each client its own bucket
    time.sleep(0.11)
    assert buckets.wait("a") == 0


def test_public_paths_are_the_probes_and_metrics_only() -> None:
    for path in ("/", "/metrics", "/v2/health/live", "/v2/health/ready", "/v2/models/recsys/ready",
                 "/v1/models/recsys"):  # fmt: skip
        assert public(path), path
    for path in ("/v2/models/recsys/infer", "/v2/models/recsys", "/recommend", "/v1/models/recsys:predict",
                 "/v2/repository/models/recsys/load", "/docs", "/v2"):  # fmt: skip
        assert not public(path), path


def test_the_edge_audits_denials_without_the_credential(tmp_path: Path) -> None:
    log = tmp_path / "audit" / "audit.jsonl"
    edge = Edge(
        load_auth_settings(enabled=True, api_keys=f"shop={CLIENT_KEY}", audit_log=str(log)), "predictor"
    )
    with pytest.raises(Denied) as e:
        edge.admit(CLIENT_KEY, True, "10.0.0.7", "POST /v2/repository/models/recsys/unload")
    assert e.value.status == 403
    with pytest.raises(Denied):
        edge.admit("wrong-wrong-wrong-wrong", False, "10.0.0.8", "POST /v2/models/recsys/infer")
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["client"], r["peer"], r["outcome"], r["status"]) for r in lines] == [
        ("shop", "10.0.0.7", "denied", 403), (None, "10.0.0.8", "denied", 401)]  # fmt: skip
    assert all(r["server"] == "predictor" and r["time"].endswith("+00:00") for r in lines)
    assert CLIENT_KEY not in log.read_text() and "wrong-wrong" not in log.read_text()
