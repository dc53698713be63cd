"""Secrets out of everything printed, logged or published: passwords in URLs become ``***``.

`redact_url` hides the password of ``scheme://user:password@host`` and the values of secret query
parameters (``?password=``, ``token``, ...); `redact` does it for every URL inside a text (an error
message, a log line, an event). Everything that shows a Redis or a source URL goes through these.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode

MASK = "***"
SECRET_PARAMS = frozenset(
    {"password", "passwd", "pwd", "pass", "secret", "token", "access_token", "auth", "api_key",
     "apikey", "key", "sig", "signature", "credentials"}
)  # fmt: skip
"""Query parameters whose values are secrets (compared lower-case)."""

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>`]+")


def redact_url(url: str) -> str:
    """``url`` with the password of its user info and secret query values replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    end = len(rest)
    for mark in "/?#":
        at = rest.find(mark, 0 if mark != "/" else rest.rfind("@") + 1)
        if at != -1:
            end = min(end, at)
    authority, tail = rest[:end], rest[end:]
    if "@" in authority:
        creds, host = authority.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        authority = f"{user}:{MASK}@{host}" if ":" in creds or not user else f"{MASK}@{host}"
    path, qmark, query = tail.partition("?")
    if qmark:
        query, hash_, fragment = query.partition("#")
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in SECRET_PARAMS for k, _ in pairs):
            query = urlencode(
                [(k, MASK if k.lower() in SECRET_PARAMS else v) for k, v in pairs], safe="*/:,"
            )
        tail = f"{path}?{query}{hash_}{fragment}"
    return f"{scheme}://{authority}{tail}"


def redact(text: str) -> str:
    """``text`` with every URL in it redacted (see `redact_url`)."""
    if "://" not in text:
        return text

    def one(match: re.Match[str]) -> str:
        url = match.group(0)
        core = url.rstrip(").,;:]}")  # punctuation after a URL in prose is not part of it
        return redact_url(core) + url[len(core) :]

    return _URL.sub(one, text)
