"""Errors of the serving layer.

Request errors are both a project ``InvalidInput`` (status 400, what our REST handler maps) and
KServe's ``InvalidInput``, so that KServe's own gRPC interceptor answers INVALID_ARGUMENT too
instead of INTERNAL: one raise, the right code on both transports.
"""

from __future__ import annotations

from kserve.errors import InvalidInput as KServeInvalidInput

from recsys.errors import InvalidInput, RecsysError


class RequestError(InvalidInput, KServeInvalidInput):
    """The inference request is malformed; the message names the tensor or parameter.

    ``RecsysError.__init__`` reaches ``KServeInvalidInput.__init__`` through the MRO, which sets
    ``.reason`` (what the gRPC interceptor reads); ``.message`` and ``str()`` stay ours.
    """


class SchemaMismatch(RequestError):
    """The caller built its features for another schema than the served bundle's."""


class ReloadFailed(RecsysError):
    """A reload could not load the new bundle; the previous one keeps serving."""

    status = 503
