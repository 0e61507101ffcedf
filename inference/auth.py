"""Who is calling: API keys and JWT bearer tokens, checked the same way on REST and gRPC.

Settings come from ``RECSYS_AUTH_*`` variables (and a few flags, never secrets: see
``add_edge_flags`` in inference/edge.py). Off by default, for the local demo; the chart turns it
on with the keys from a Secret. Three kinds of route:

* public: health, readiness and ``/metrics`` (probes and Prometheus; keep them in the cluster
  with the chart's NetworkPolicies);
* admin: the model repository (``load``, ``unload``: a reload of the champion), which needs an
  admin credential: a key of ``admin_keys`` or a token carrying ``admin_scope``;
* everything else (infer, /recommend, metadata): any valid credential.

A credential is ``Authorization: Bearer <key or JWT>`` or ``X-API-Key: <key>`` (gRPC: the same
names as metadata). Keys are compared by their SHA-256, so a lookup leaks nothing of a key.
Tokens are HS256 (``jwt_secret``) or RS256 (a PEM public key or a JWKS file, by ``kid``); ``exp``
is required, ``aud``/``iss`` checked when configured. A verified token is cached until its
``exp``, so a client that sends the same token on every request is verified once.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from recsys.errors import ConfigError

MIN_KEY_CHARS = 16
TOKEN_CACHE_SIZE = 10_000


class AuthSettings(BaseSettings):
    """The edge of one server process: authentication, rate limit, audit log."""

    model_config = SettingsConfigDict(env_prefix="RECSYS_AUTH_", extra="forbid")

    enabled: bool = Field(False, description="require a credential on every non-public route")
    api_keys: SecretStr = Field(SecretStr(""), description="client=key,... (from a Secret)")
    admin_keys: SecretStr = Field(SecretStr(""), description="admin=key,... for load/unload")
    jwt_algorithm: Literal["HS256", "RS256"] | None = Field(None, description="accept JWT bearer tokens")
    jwt_secret: SecretStr | None = Field(None, description="HS256 shared secret (from a Secret)")
    jwt_public_key_file: Path | None = Field(None, description="RS256: PEM public key")
    jwks_file: Path | None = Field(None, description="RS256: a JWKS file; the token's kid picks the key")
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    admin_scope: str = Field("recsys:admin", description="a token with this scope may call admin routes")
    rate_limit_per_s: float = Field(0.0, ge=0, description="requests per second per client; 0 = off")
    rate_limit_burst: int = Field(50, ge=1, description="requests a client may send at once")
    audit_log: str | None = Field(
        "-", description="JSONL audit of admin calls and auth failures: a file, - for stderr, empty = off"
    )
    predictor_key: SecretStr | None = Field(
        None, description="the key a transformer sends to its predictors and shadow (from a Secret)"
    )

    @model_validator(mode="after")
    def _complete(self) -> AuthSettings:
        if self.jwt_algorithm == "HS256" and not self.jwt_secret:
            raise ValueError("jwt_algorithm HS256 needs RECSYS_AUTH_JWT_SECRET")
        if self.jwt_algorithm == "RS256" and not (self.jwt_public_key_file or self.jwks_file):
            raise ValueError("jwt_algorithm RS256 needs jwt_public_key_file or jwks_file")
        if self.enabled and not (self.api_keys.get_secret_value() or self.admin_keys.get_secret_value()
                                 or self.jwt_algorithm):  # fmt: skip
            raise ValueError("auth is enabled but no API key, admin key or JWT algorithm is configured")
        return self


def load_auth_settings(**overrides: Any) -> AuthSettings:
    """``RECSYS_AUTH_*`` with the flags given (``None`` values ignored); ConfigError naming the
    field on a bad value."""
    try:
        return AuthSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "auth"
        raise ConfigError(f"auth: {field}: {err['msg']}") from None


@dataclass(frozen=True)
class Caller:
    """An authenticated caller; ``admin`` may call the admin routes."""

    name: str
    admin: bool


class Denied(Exception):  # noqa: N818 - an outcome, not a failure of the server
    """The credential is missing or invalid (401) or not an admin's (403)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def _keys(spec: SecretStr, kind: str) -> dict[str, str]:
    """``name=key,...`` -> sha256(key) -> name."""
    out: dict[str, str] = {}
    for entry in filter(None, (e.strip() for e in spec.get_secret_value().split(","))):
        name, sep, key = entry.partition("=")
        if not sep or not name or not key:
            raise ConfigError(f"auth: {kind}: an entry is not name=key (name {name!r})")
        if len(key) < MIN_KEY_CHARS:
            raise ConfigError(f"auth: {kind}: the key of {name!r} is shorter than {MIN_KEY_CHARS} characters")
        out[_digest(key)] = name
    return out


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class Authenticator:
    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings
        self.clients = _keys(settings.api_keys, "api_keys")
        self.admins = _keys(settings.admin_keys, "admin_keys")
        self._tokens: dict[str, tuple[Caller, float]] = {}
        self._key: Any = None
        self._jwks: dict[str, Any] = {}
        if settings.jwt_algorithm == "HS256":
            assert settings.jwt_secret is not None
            self._key = settings.jwt_secret.get_secret_value()
        elif settings.jwt_algorithm == "RS256":
            self._load_public_keys()

    def _load_public_keys(self) -> None:
        s = self.settings
        try:
            if s.jwt_public_key_file is not None:
                self._key = load_pem_public_key(s.jwt_public_key_file.read_bytes())
            if s.jwks_file is not None:
                keys = jwt.PyJWKSet.from_json(s.jwks_file.read_text()).keys
                self._jwks = {k.key_id: k.key for k in keys if k.key_id}
                if not self._jwks:
                    raise ConfigError(f"auth: jwks_file {s.jwks_file} holds no key with a kid")
        except (OSError, ValueError, jwt.PyJWTError) as e:
            raise ConfigError(f"auth: cannot read the RS256 public key: {e}") from e

    def caller(self, credential: str | None) -> Caller:
        """The caller a credential names; Denied(401) when it names none."""
        if not credential:
            raise Denied(401, "no credential: send Authorization: Bearer <key or token>, or X-API-Key")
        digest = _digest(credential)
        if digest in self.admins:
            return Caller(self.admins[digest], admin=True)
        if digest in self.clients:
            return Caller(self.clients[digest], admin=False)
        if self.settings.jwt_algorithm is None or credential.count(".") != 2:
            raise Denied(401, "unknown API key")
        return self._token(credential)

    def _token(self, token: str) -> Caller:
        now = time.time()
        cached = self._tokens.get(token)
        if cached is not None and cached[1] > now:
            return cached[0]
        s = self.settings
        try:
            key = self._key
            if self._jwks:
                kid = jwt.get_unverified_header(token).get("kid")
                key = self._jwks.get(kid, self._key)
                if key is None:
                    raise Denied(401, f"invalid token: no key with kid {kid!r}")
            claims = jwt.decode(
                token, key, algorithms=[s.jwt_algorithm or ""], audience=s.jwt_audience,
                issuer=s.jwt_issuer, leeway=30, options={"require": ["exp", "sub"]},
            )  # fmt: skip
        except jwt.PyJWTError as e:
            raise Denied(401, f"invalid token: {e}") from None
        caller = Caller(str(claims["sub"]), admin=s.admin_scope in _scopes(claims))
        if len(self._tokens) >= TOKEN_CACHE_SIZE:
            self._tokens.clear()
        self._tokens[token] = (caller, float(claims["exp"]))
        return caller


def _scopes(claims: dict[str, Any]) -> set[str]:
    """OAuth2's space-separated ``scope``, or a ``scopes``/``roles`` list."""
    found: set[str] = set()
    if isinstance(claims.get("scope"), str):
        found.update(claims["scope"].split())
    for name in ("scopes", "roles"):
        if isinstance(claims.get(name), list):
            found.update(str(v) for v in claims[name])
    return found
