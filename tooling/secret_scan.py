"""Spotting credentials pasted into a deployment file.

A key in a YAML file ends up in git history, in rendered templates and in plan comments. We refuse it
and point at Secrets Manager. The value itself is never repeated in any message.
"""

from __future__ import annotations

import math
import re
from collections import Counter

# Known shapes first: they are certain and let us name the kind of key.
_KNOWN = [
    ("an OpenAI-style API key", re.compile(r"\bsk-(?:proj-|ant-|svcacct-)?[A-Za-z0-9_\-]{20,}")),
    ("an AWS access key id", re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b")),
    ("a Hugging Face token", re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")),
    ("a GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})\b")),
    ("a Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("a Google API key", re.compile(r"\bAIza[0-9A-Za-z_\-]{35}\b")),
    ("a private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
    ("a JSON Web Token", re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}")),
    ("a password in a URL", re.compile(r"://[^/\s:@]+:[^/\s@]+@")),
]

# Long identifiers that look random but are not secrets.
_NOT_SECRET = re.compile(
    r"^(?:arn:[a-z-]+:|s3://|(?:vpc|subnet|sg|ami|i|vpce|nat|igw|rtb|acl)-[0-9a-f]+$"
    r"|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$)"
)
_TOKEN = re.compile(r"[A-Za-z0-9+/=_\-]{32,}")


def _entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def _looks_random(token: str) -> bool:
    """A long token mixing letters and digits with high entropy: the shape of generated keys.

    Hex digests (a commit sha, a digest pinned on purpose) are entropy-capped at 4 bits per character,
    so they need more length than base64-like keys before we call them secrets.
    """
    classes = sum(bool(re.search(p, token)) for p in (r"[a-z]", r"[A-Z]", r"[0-9]"))
    if classes < 2:
        return False
    if re.fullmatch(r"[0-9a-f]+", token):
        return False  # hex: commit SHAs and image digests, which people pin on purpose
    if "-" in token and all(part.isalpha() or part.isdigit() for part in token.split("-")):
        return False  # a long dashed name such as a model id
    return _entropy(token) >= 4.0 and classes == 3


def find_secret(value: str) -> str | None:
    """The kind of credential `value` contains, or None."""
    for kind, pattern in _KNOWN:
        if pattern.search(value):
            return kind
    if _NOT_SECRET.match(value):
        return None
    for token in _TOKEN.findall(value):
        if _looks_random(token):
            return "a long random token"
    return None
