"""One error hierarchy for the whole project.

Every error carries an HTTP-like status so that the online layer maps it in one place and the
CLI prints one readable line (``recsys: error: ...``) and exits non-zero.
"""

from __future__ import annotations


class RecsysError(Exception):
    """Base class. ``status`` is the HTTP status the online layer answers with."""

    status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(RecsysError):
    """A configuration value (YAML, environment, flag) is invalid."""

    status = 400


class InvalidInput(RecsysError):
    """Input data is malformed; the message names the file/line/field where known."""

    status = 400


class SourceError(RecsysError):
    """The source database is unreachable, unsupported or lacks a table."""

    status = 503


class PipelineError(RecsysError):
    """A pipeline step failed."""

    status = 500


class QualityGateFailed(PipelineError):
    """The data quality score is below the threshold: the pipeline stops before training."""

    status = 422


class StoreError(RecsysError):
    """The online store failed or lacks what was asked (unknown version, corrupt value)."""

    status = 503


class StoreUnavailable(StoreError):
    """The online store cannot be reached (refused, timed out); callers may fall back."""


class StoreTimeout(StoreUnavailable):
    """The online store did not answer within its socket timeout."""


class VersionMissing(StoreError):
    """The online store answered but lacks the version asked for, or has no active one (a Redis
    restarted empty, a version pruned): a store in front of a fallback counts this as an outage."""


class ModelRegistryError(RecsysError):
    """The model registry refused or failed an operation (no previous champion, unknown version)."""

    status = 409
