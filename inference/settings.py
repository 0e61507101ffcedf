"""One settings object per server process: flag <- ``RECSYS_<SERVER>_*`` variable <- default,
validated once (pydantic-settings) and passed down.

KServe's own flags (ports, ``--workers``, threads, logging: ``kserve.model_server.parser``) stay
KServe's and reach ``kserve.ModelServer`` as they are. Ours are the fields of
``TransformerSettings`` / ``PredictorSettings``: each one is a flag ``--<field>`` and a variable
``RECSYS_TRANSFORMER_<FIELD>`` (``RECSYS_PREDICTOR_<FIELD>``); a flag given wins. Two of them
are KServe flags too (``--model_name``, ``--predictor_host``): given, the flag wins; else the
variable, else our default. The edge (``auth``) is ``RECSYS_AUTH_*``, which both servers of a
deployment share (the chart sets them from one Secret), and the edge's flags
(inference/edge.py). A bad value is one ``ConfigError`` naming the flag.

The chart's values map onto these fields one to one (tests/deploy/test_settings_schema.py keeps
them in step).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from inference.auth import AuthSettings
from inference.limits import (
    DEFAULT_BODY_TIMEOUT_S,
    DEFAULT_HEADER_TIMEOUT_S,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_REQUEST_BYTES,
    Limits,
)
from recsys.errors import ConfigError
from recsys.ranking.model import Runtime

KSERVE_FLAGS = ("model_name", "predictor_host")  # fields whose flag KServe's parser owns


class ServerSettings(BaseSettings):
    """What both servers share."""

    model_config = SettingsConfigDict(extra="forbid")

    model_name: str = Field("recsys", min_length=1, description="the model name in the URL")
    data_dir: Path | None = Field(
        None, description="project data dir (MLflow store, bundles) [the settings']"
    )
    bind_host: str = Field("127.0.0.1", description="address REST and gRPC listen on; 0.0.0.0 in a pod")
    poll_seconds: float = Field(0.0, ge=0, description="follow the champion: check every N seconds; 0 = off")
    request_logs: bool = Field(False, description="log every request (off: Prometheus counts them)")
    max_request_bytes: int = Field(DEFAULT_MAX_REQUEST_BYTES, ge=1, description="a larger body is 413")
    body_timeout_s: float = Field(DEFAULT_BODY_TIMEOUT_S, gt=0, description="a body silent this long is 408")
    header_timeout_s: float = Field(
        DEFAULT_HEADER_TIMEOUT_S, gt=0, description="headers not complete this long after the first byte: 408"
    )
    max_connections: int = Field(
        DEFAULT_MAX_CONNECTIONS, ge=1, description="open connections per process; more get 503"
    )
    auth: AuthSettings = Field(default_factory=AuthSettings, description="the edge: RECSYS_AUTH_*")

    @property
    def limits(self) -> Limits:
        return Limits(
            self.max_request_bytes, self.body_timeout_s, self.header_timeout_s, self.max_connections
        )


class TransformerSettings(ServerSettings):
    model_config = SettingsConfigDict(env_prefix="RECSYS_TRANSFORMER_", extra="forbid")

    predictor_host: str = Field("localhost:8082", min_length=1, description="the champion's predictor")
    predictor_hosts: str = Field("", description="rankers of experiment variants: alias=host:port,...")
    bundle: Path | None = Field(None, description="bundle directory [the registry's champion]")
    store_url: str | None = Field(None, description="online store [the settings' online_store]")
    store_fallback_url: str | None = Field(None, description="SQLite store read while the store is down")
    experiments: Path | None = Field(None, description="experiments YAML [config/experiments.yaml]")
    exposure_dir: Path | None = Field(None, description="exposure log directory [<data_dir>/exposures]")
    channel_timeout_ms: float = Field(50.0, gt=0, description="each recall channel's timeout")
    predictor_timeout_ms: float = Field(200.0, gt=0, description="each predictor call's timeout")
    store_timeout_ms: float = Field(
        50.0, gt=0, description="each store read's (half for Redis, half fallback)"
    )
    request_timeout_ms: float = Field(250.0, gt=0, description="the whole request's; popular items after it")
    shadow_predictor_host: str = Field("", description="a shadow predictor sampled requests are mirrored to")
    shadow_sample_rate: float = Field(0.1, ge=0, le=1, description="share of ranking requests mirrored")
    shadow_max_in_flight: int = Field(4, gt=0, description="mirrors at once; more are dropped, never queued")
    chain_threads: int = Field(1, gt=0, description="threads running request chains")
    recall_threads: int = Field(2, gt=0, description="threads running recall channels (2+: a hung one)")
    candidates: int | None = Field(
        None, gt=0, description="fused candidates ranked [the bundle's chain.json]"
    )
    category_cap: int | None = Field(None, ge=0, description="items of one category per list, 0 = no cap")
    item_cache_size: int = Field(100_000, ge=0, description="item vectors kept in memory; 0 = none")
    balanced_accept: Literal["on", "off"] = Field("on", description="with --workers > 1, accept in turn")


class PredictorSettings(ServerSettings):
    model_config = SettingsConfigDict(env_prefix="RECSYS_PREDICTOR_", extra="forbid")

    model_uri: str | None = Field(None, description="bundle dir or models:/<name>@<alias> [the champion]")
    runtime: Runtime = Field("onnx", description="ranker runtime")
    scoring_threads: int = Field(4, ge=1, description="threads running the ranker")


def add_flags(parser: argparse.ArgumentParser, model: type[ServerSettings]) -> None:
    """A flag per field (the value parsed by the model, not argparse); KServe's two get no
    default of their own, so that an unset one falls through to the variable."""
    prefix = model.model_config.get("env_prefix", "")
    for name, field in model.model_fields.items():
        if name == "auth" or name in KSERVE_FLAGS:
            continue
        boolean = field.annotation is bool
        parser.add_argument(
            f"--{name}",
            default=None,
            nargs="?" if boolean else None,
            const="true" if boolean else None,
            help=f"{field.description} [env {prefix}{name.upper()}; default {field.default!r}]",
        )
    parser.set_defaults(**{name: None for name in KSERVE_FLAGS if name in model.model_fields})


def settings_from(model: type[ServerSettings], args: argparse.Namespace, auth: AuthSettings) -> Any:
    """The process's settings: the flags given, then the variables; writes the two KServe
    flags back into ``args`` (KServe reads them there)."""
    given = {
        name: getattr(args, name) for name in model.model_fields if getattr(args, name, None) is not None
    }
    given["auth"] = auth
    try:
        settings = model(**given)
    except ValidationError as e:
        err = e.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else "settings"
        raise ConfigError(f"--{name}: {err['msg']} (got {err.get('input')!r})") from None
    for name in KSERVE_FLAGS:
        if name in model.model_fields:
            setattr(args, name, getattr(settings, name))
    return settings
