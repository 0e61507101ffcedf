"""URLs fit for messages and logs: the one place that hides what a URL may carry as a secret.

A password in the userinfo (``redis://:pw@host``, ``postgresql://u:pw@db/x``) and a query
parameter that names a secret (``?password=``, ``token``, ``api_key``...) are replaced by
``***``; the rest (scheme, host, port, path, other parameters) stays, so the message still says
which server it is about. A URL too broken to parse keeps only what follows its userinfo.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit

SECRET_PARAM = re.compile(
    r"(?i)^(password|passwd|pwd|pass|secret|token|access_token|api[_-]?key|auth|sig|signature)$"
)
MASK = "***"


def redact(url: str) -> str:
    """``url`` with its secrets hidden (the rest of it byte for byte as it was)."""
    try:
        parts = urlsplit(url)
        out = url
        if parts.password is not None:
            port = f":{parts.port}" if parts.port else ""
            out = out.replace(parts.netloc, f"{parts.username or ''}:{MASK}@{parts.hostname or ''}{port}", 1)
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        if any(SECRET_PARAM.match(name) for name, _ in pairs):
            base, _, rest = out.partition("?")
            fragment = "#" + parts.fragment if parts.fragment else ""
            masked = urlencode([(n, MASK if SECRET_PARAM.match(n) else v) for n, v in pairs], safe="*")
            out = f"{base}?{masked}{fragment}"
        return out
    except ValueError:  # a port that is not a number, brackets that do not close, ...
        scheme, sep, rest = url.partition("://")
        rest = rest.rsplit("@", 1)[-1].split("?", 1)[0]
        return f"{scheme}{sep}{rest}" if sep else MASK
