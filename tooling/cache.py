"""A content-addressed cache on disk: the same inputs (spec bytes, code version) give the same outputs.

Entries are JSON files named by the SHA-256 of their key. Writes go through a temporary file and an
atomic rename, so parallel workers and interrupted runs never leave a half-written entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

DEFAULT_DIR = ".deployctl-cache"


def digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()


class Cache:
    def __init__(self, folder: Path | None):
        self.folder = folder
        # Why entries could not be written (a read-only checkout, a full disk): the run goes on
        # without caching, and the command says so once.
        self.unwritable: str | None = None

    def _path(self, key: str) -> Path:
        assert self.folder is not None
        return self.folder / key[:2] / f"{key}.json"

    @property
    def enabled(self) -> bool:
        return self.folder is not None

    def get(self, key: str) -> dict[str, Any] | None:
        if self.folder is None:
            return None
        try:
            return json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def put(self, key: str, value: dict[str, Any]) -> None:
        if self.folder is None or self.unwritable is not None:
            return
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(value, handle, separators=(",", ":"))
            os.replace(tmp, path)
        except OSError as exc:
            self.unwritable = f"{self.folder}: {exc.strerror or type(exc).__name__}"
