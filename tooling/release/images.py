"""Which image each stack runs, as a pure function of the checkout, and the images CI builds for it.

An image's tag is the last commit on HEAD that changed its inputs (and, for vLLM, the engine version in
front): `<commit>` for the gateway, `<vllm version>-<commit>` for vLLM. A vLLM version's inputs include
its own line of tooling/data/vllm_images.yaml, so pinning one version's base digest rebuilds that version
and no other. A release therefore knows every stack's tags without being told: a deployment merged alone
gets the images built when their inputs last changed, a version bump names an image CI builds for that
version, and a re-run computes the same tags and finds them already pushed (ECR tags are immutable, so
one tag is one digest; a second push under it fails with ImageTagAlreadyExistsException:
https://docs.aws.amazon.com/AmazonECR/latest/userguide/image-tag-mutability.html).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from templates.images import GATEWAY_REPOSITORY, VLLM_REPOSITORY
from tooling import gitbase, vllm_images
from tooling.changes import IMAGE_INPUTS

GATEWAY_PARAMETER = "GatewayImageTag"
VLLM_PARAMETER = "VllmImageTag"
DATA_FILE = "tooling/data/vllm_images.yaml"
# The gateway runs on Fargate in either architecture (compute.architecture arm64 or x86_64); vLLM's
# upstream image is built for x86_64 GPUs, which every GPU instance type we support is.
GATEWAY_PLATFORMS = ("linux/arm64", "linux/amd64")
VLLM_PLATFORMS = ("linux/amd64",)


class NoImageCommit(Exception):
    """The checkout has no commit that built the image's inputs (not a git checkout, or none committed)."""


def _last(root: Path, *args: str) -> str:
    try:
        return str(gitbase.git(root, "log", "-1", "--format=%H", "HEAD", *args)).strip()
    except gitbase.GitError as exc:
        raise NoImageCommit(str(exc)) from None


def image_commit(root: Path, image: str, version: str | None = None) -> str:
    """The last commit on HEAD that changed `image`'s inputs (for vLLM, those of `version` too)."""
    inputs = IMAGE_INPUTS[image]
    try:
        commit = _last(root, "--", *inputs)
        if image == "vllm" and version:
            # The version's own line of the data file: its base image and digest.
            line = _last(root, "-G", vllm_images.line_pattern(version), "--", DATA_FILE)
            if line and commit and line != commit:
                # The newer of the two: in topological order a descendant comes before its ancestors
                # (commit times can tie, or lie).
                commit = str(gitbase.git(root, "rev-list", "-n", "1", "--topo-order", commit, line)).strip()
            commit = commit or line
    except (NoImageCommit, gitbase.GitError) as exc:
        raise NoImageCommit(f"{image}: {exc}") from None
    if not commit:
        raise NoImageCommit(f"{image}: no commit on HEAD changes {', '.join(inputs)}")
    return commit


def vllm_tag(version: str, commit: str) -> str:
    return f"{version}-{commit}"


def _tags(
    root: Path, engine_type: str, version: str | None, commits: dict[str, str], wanted: set[str] | None = None
) -> dict[str, str]:
    def commit(image: str, of: str | None = None) -> str:
        key = f"{image}:{of}" if of else image
        if key not in commits:
            try:
                commits[key] = image_commit(root, image, of)
            except NoImageCommit:
                commits[key] = ""  # asked once: a plan of many stacks does not ask git again
                raise
        if not commits[key]:
            raise NoImageCommit(f"{image}: no commit on HEAD builds it")
        return commits[key]

    tags = {}
    if wanted is None or GATEWAY_PARAMETER in wanted:
        tags[GATEWAY_PARAMETER] = commit("gateway")
    if engine_type == "vllm" and version and (wanted is None or VLLM_PARAMETER in wanted):
        tags[VLLM_PARAMETER] = vllm_tag(version, commit("vllm", version))
    return tags


def stack_image_tags(root: Path, spec: Any, *, commits: dict[str, str] | None = None) -> dict[str, str]:
    """Parameter name -> tag for every image the deployment's stack runs."""
    engine = spec.engine
    version = getattr(engine, "version", None)
    return _tags(root, getattr(engine, "type", ""), version, commits if commits is not None else {})


def state_image_tags(root: Path, state: Any, *, commits: dict[str, str] | None = None) -> dict[str, str]:
    """The same tags for a rendered stack (tooling/snapshot.py StackState), for the image parameters
    its template declares: what deploy and plan set where no tag is given and none can be kept."""
    # A template names an image parameter only where it declares it (Parameters, and its Ref): a search
    # of the text is enough, and a plan of hundreds of stacks parses no template for it.
    text = state.text or ""
    declared = {key for key in (GATEWAY_PARAMETER, VLLM_PARAMETER) if f'"{key}"' in text}
    version = getattr(state, "vllm_version", None)
    engine_type = "vllm" if VLLM_PARAMETER in declared else "external"
    return _tags(root, engine_type, version, commits if commits is not None else {}, declared)


def checkout_tags(root: Path, states: Iterable[Any]) -> dict[str, dict[str, str]]:
    """Stack name -> the checkout's image tags, for every valid stack whose images have a commit (a
    checkout without git history names none: a deploy then needs --image-tag, as it always did)."""
    commits: dict[str, str] = {}
    out = {}
    for state in states:
        if state.text is None or state.errors:
            continue
        try:
            out[state.stack_name] = state_image_tags(root, state, commits=commits)
        except NoImageCommit:
            continue
    return out


@dataclass(frozen=True)
class Build:
    """One image CI builds and pushes once to the CI registry (ECR replication copies it onwards)."""

    image: str  # gateway | vllm
    repository: str
    tag: str
    dockerfile: str
    platforms: tuple[str, ...]
    context: str = "."
    version: str | None = None  # vLLM's engine.version
    base: dict[str, Any] | None = None  # {name, digest, resolve}: the upstream image it is built FROM
    build_args: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["platforms"] = list(self.platforms)
        return data


def _vllm_build(version: str, commit: str) -> Build:
    base = vllm_images.base(version)
    return Build(
        image="vllm",
        repository=VLLM_REPOSITORY,
        tag=vllm_tag(version, commit),
        dockerfile="Dockerfile.vllm",
        platforms=VLLM_PLATFORMS,
        version=version,
        # resolve: CI pins the tag to its digest before it builds (`deployctl images` says how).
        base={"name": base.name, "digest": base.digest, "resolve": not base.pinned},
        build_args={"VLLM_VERSION": version, "VLLM_BASE_IMAGE": base.reference},
    )


def builds(root: Path, specs: Iterable[Any]) -> list[Build]:
    """The images a checkout's deployments need: the gateway once, vLLM once per engine version in use."""
    specs = list(specs)
    versions = sorted({s.engine.version for s in specs if getattr(s.engine, "type", "") == "vllm"})
    gateway = Build(
        image="gateway",
        repository=GATEWAY_REPOSITORY,
        tag=image_commit(root, "gateway"),
        dockerfile="inference_server/Dockerfile",
        platforms=GATEWAY_PLATFORMS,
    )
    return [gateway, *(_vllm_build(v, image_commit(root, "vllm", v)) for v in versions)]


def build_matrix(root: Path, specs: Iterable[Any]) -> dict[str, Any]:
    """`builds` keyed the way a release reads them: {"gateway": {...}, "vllm": [{version, tag, ...}]}."""
    found = builds(root, specs)
    return {
        "gateway": found[0].to_json(),
        "vllm": [b.to_json() for b in found[1:]],
    }


def github_matrix(found: Iterable[Build]) -> dict[str, Any]:
    """A job matrix (`strategy.matrix: ${{ fromJSON(...) }}`): one entry a build, every value a string
    in the form docker/build-push-action takes it (platforms comma-separated, build-args one a line)."""
    include = []
    for build in found:
        include.append(
            {
                "image": build.image,
                "repository": build.repository,
                "tag": build.tag,
                "dockerfile": build.dockerfile,
                "context": build.context,
                "platforms": ",".join(build.platforms),
                "version": build.version or "",
                "base": (build.base or {}).get("name", ""),
                "base_digest": (build.base or {}).get("digest") or "",
                "resolve_base": "true" if (build.base or {}).get("resolve") else "false",
                "build_args": "\n".join(f"{k}={v}" for k, v in sorted(build.build_args.items())),
                # One layer cache per image, version and platform set (the GitHub Actions cache).
                "cache_scope": "-".join(
                    [build.image, *([build.version] if build.version else []), *build.platforms]
                ).replace("/", "_"),
            }
        )
    return {"include": include}
