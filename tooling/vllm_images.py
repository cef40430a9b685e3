"""The vLLM releases we build, each on its upstream image: tooling/data/vllm_images.yaml, read once.

The spec accepts exactly these versions (engine.version), the build matrix builds FROM each one's base, and
a base whose digest no public source records is `resolve-at-build`: CI pins it when it builds, so every
image we push still names one immutable base.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

DATA = Path(__file__).parent / "data" / "vllm_images.yaml"
RESOLVE_AT_BUILD = "resolve-at-build"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_VERSION = re.compile(r"\d+\.\d+\.\d+(?:\.post\d+)?")


class BadData(Exception):
    """The data file breaks its own format (a test and every load say where)."""


@dataclass(frozen=True)
class Base:
    """The upstream image one vLLM version is built on."""

    version: str
    name: str  # repository:tag, e.g. vllm/vllm-openai:v0.31.0
    digest: str | None  # sha256:…; None: resolved by CI at build time

    @property
    def pinned(self) -> bool:
        return self.digest is not None

    @property
    def reference(self) -> str:
        """What `FROM` takes: tag@digest when the digest is known, else the tag for CI to resolve."""
        return f"{self.name}@{self.digest}" if self.digest else self.name


@dataclass(frozen=True)
class Catalogue:
    repository: str
    default: str
    bases: dict[str, Base]  # newest first, as listed

    @property
    def versions(self) -> list[str]:
        return list(self.bases)


def parse(text: str) -> Catalogue:
    data = yaml.safe_load(text) or {}
    repository, default, versions = data.get("repository"), data.get("default"), data.get("versions")
    if not isinstance(repository, str) or not isinstance(versions, dict) or not versions:
        raise BadData("vllm_images.yaml needs `repository` and a non-empty `versions` mapping")
    bases = {}
    for version, entry in versions.items():
        if not isinstance(version, str) or not _VERSION.fullmatch(version):
            raise BadData(f'vllm_images.yaml: version {version!r} is not a quoted release such as "0.31.0"')
        digest = (entry or {}).get("digest") if isinstance(entry, dict) else None
        if digest != RESOLVE_AT_BUILD and not (isinstance(digest, str) and _DIGEST.fullmatch(digest)):
            raise BadData(f"vllm_images.yaml: {version}: digest is sha256:<64 hex> or {RESOLVE_AT_BUILD}")
        # One line per version: the image tag's commit is the last commit that changed this line.
        if (
            len(re.findall(rf'^\s*"{re.escape(version)}":\s*\{{[^}}\n]*\}}\s*(#.*)?$', text, re.MULTILINE))
            != 1
        ):
            raise BadData(f'vllm_images.yaml: write "{version}" as one line: "{version}": {{digest: ...}}')
        bases[version] = Base(
            version, f"{repository}:v{version}", None if digest == RESOLVE_AT_BUILD else digest
        )
    if default not in bases:
        raise BadData(f"vllm_images.yaml: default {default!r} is not one of the versions")
    return Catalogue(repository, default, bases)


@cache
def catalogue() -> Catalogue:
    return parse(DATA.read_text(encoding="utf-8"))


def versions() -> list[str]:
    return catalogue().versions


def default() -> str:
    return catalogue().default


def base(version: str) -> Base:
    """The base of a supported version (KeyError for any other: the spec has refused it already)."""
    return catalogue().bases[version]


def line_pattern(version: str) -> str:
    """A `git log -G` regex for the data file line of `version` (what re-pins its base)."""
    return f'"{re.escape(version)}":'
