"""`deployctl bootstrap`: make the account the credentials reach ready for its environments' deployments.

In order, idempotently (each step is a no-op when already done, so a re-run after any failure resumes):
1. the regional stack (`deployctl-bootstrap`: artifacts bucket, ECR repositories) in every region this
   account's deployments run in, plus the CI region in the CI account; a bucket or repository of our
   name that exists outside the stack is used as it is, unmanaged, and reported;
2. the account stack (`deployctl-account`: OIDC provider or the adopted one, boundary, execution role,
   per-environment roles) in the account's home region, or wherever it already is;
3. ECR: in the CI account, the replication configuration to every (account, region) running
   deployments; elsewhere, the registry policy letting the CI account replicate in;
4. the `deployctl:stack` cost-allocation tag (budgets read $0 until it is active).

A stack that failed its creation (ROLLBACK_COMPLETE and the other RECREATE states) is deleted and created
again; UPDATE_ROLLBACK_FAILED is continued first. Nothing without our names is ever deleted.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from templates import bootstrap as stacks
from templates.images import GATEWAY_REPOSITORY, VLLM_REPOSITORY
from templates.stack import render
from tooling import aws
from tooling import cloudformation as cf
from tooling.accounts import billing, replication
from tooling.accounts.environments import Environments

MANAGED_BY = {"deployctl:managed-by": "deployctl-bootstrap"}
OIDC_URL = "token.actions.githubusercontent.com"


class BootstrapError(Exception):
    """A refusal with a message for the administrator; nothing was changed by the step that refused."""


@dataclass
class Report:
    account: str
    lines: list[str] = field(default_factory=list)
    failed: bool = False

    def say(self, line: str) -> None:
        self.lines.append(line)


def regions_in_use(config: Environments, deployments: dict[str, set[str]], account: str) -> list[str]:
    """The regions of `account` that need a regional stack: where its environments' deployments run
    (`deployments`: environment -> regions of its valid specs), and the CI region in the CI account."""
    regions: list[str] = []
    for name, env in config.environments.items():
        if env.account_id == account:
            regions += sorted(r for r in deployments.get(name, set()) if r not in regions)
    if account == config.ci.account_id and config.ci.region not in regions:
        regions.insert(0, config.ci.region)
    return regions


def destinations(config: Environments, deployments: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Every (account, region) running a deployment, except the CI registry itself."""
    pairs: list[tuple[str, str]] = []
    for name, env in config.environments.items():
        for region in sorted(deployments.get(name, set())):
            pair = (env.account_id, region)
            if pair != (config.ci.account_id, config.ci.region) and pair not in pairs:
                pairs.append(pair)
    return pairs


def misplaced(config: Environments, deployments: dict[str, set[str]]) -> list[str]:
    """Deployments in a region their environment does not allow, or in an undeclared environment."""
    problems = []
    for name, regions in sorted(deployments.items()):
        env = config.environments.get(name)
        if env is None:
            problems.append(f"environment {name} has deployments but is not in environments.yaml")
            continue
        problems += [
            f"{name}: a deployment runs in {r}, which environments.yaml does not list for {name}"
            for r in sorted(regions - set(env.regions))
        ]
    return problems


def run(
    config: Environments,
    deployments: dict[str, set[str]],
    *,
    on_event: Callable[[str], None] = lambda line: None,
    timeout: float = 1800,
) -> Report:
    probe = config.ci.region
    account = aws.account_id(probe)
    report = Report(account)
    environments = config.accounts().get(account, [])
    if not environments and account != config.ci.account_id:
        known = ", ".join(f"{a} ({', '.join(e)})" for a, e in config.accounts().items())
        raise BootstrapError(
            f"these credentials reach account {account}, which environments.yaml does not use "
            f"(its accounts: {known}; CI registry {config.ci.account_id})"
        )
    if problems := misplaced(config, deployments):
        raise BootstrapError("; ".join(problems))
    regions = regions_in_use(config, deployments, account)
    if not regions:
        regions = [config.home_region(account)]  # roles before the first deployment, so CI can plan it
    home = _home(config, account, regions)
    if home not in regions:
        regions.insert(0, home)

    for region in regions:
        _regional(region, report, on_event, timeout)
    ci = account == config.ci.account_id
    _account(config, account, environments, home, ci, report, on_event, timeout)
    if report.failed:
        return report

    if ci:
        targets = destinations(config, deployments)
        written = replication.write_configuration(aws.client("ecr", config.ci.region), targets)
        shown = ", ".join(f"{a}/{r}" for a, r in targets) or "nowhere yet"
        report.say(
            f"{config.ci.region}: ECR replication from the CI registry to {shown}"
            + (" (written)" if written else " (up to date)")
        )
    if environments and not ci:  # within the CI account, replication needs no registry policy
        for region in regions:
            written = replication.write_registry_policy(
                aws.client("ecr", region), config.ci.account_id, account, region
            )
            report.say(
                f"{region}: registry policy lets {config.ci.account_id} replicate into "
                f"{stacks.REPOSITORY_PREFIX}*" + (" (written)" if written else " (up to date)")
            )
    activation = billing.activate(aws.client("ce", billing.REGION))
    report.say(activation.message)
    return report


def _home(config: Environments, account: str, regions: list[str]) -> str:
    """Where the account stack is: wherever it already exists, else the configured home region."""
    candidates = [*config.regions_of(account), *regions]
    if account == config.ci.account_id:
        candidates.append(config.ci.region)
    for region in dict.fromkeys(candidates):
        if cf.describe(aws.client("cloudformation", region), stacks.ACCOUNT_STACK_NAME) is not None:
            return region
    return config.home_region(account) if config.regions_of(account) else config.ci.region


# ------------------------------------------------------------------ the two stacks


def _regional(region: str, report: Report, on_event: Callable[[str], None], timeout: float) -> None:
    cfn = aws.client("cloudformation", region)
    stack = _recover(cfn, stacks.STACK_NAME, report, region, timeout)
    ours = _physical_ids(cfn, stacks.STACK_NAME) if stack is not None else {}
    params = []
    account = aws.account_id(region)
    bucket = f"deployctl-artifacts-{account}-{region}"
    for logical, exists in (
        ("ArtifactsBucket", _bucket_exists(region, bucket)),
        ("GatewayRepository", _repository_exists(region, GATEWAY_REPOSITORY)),
        ("VllmRepository", _repository_exists(region, VLLM_REPOSITORY)),
    ):
        foreign = exists and logical not in ours
        if foreign:
            report.say(
                f"{region}: {logical} exists outside the bootstrap stack; using it as it is, unmanaged "
                "(delete it, or keep it: bootstrap never changes what it did not create)"
            )
        params.append({"ParameterKey": f"Create{logical}", "ParameterValue": "false" if foreign else "true"})
    _apply(cfn, region, stacks.STACK_NAME, render(stacks.build_regional()), params, stack, report, on_event,
           timeout)  # fmt: skip


def _account(
    config: Environments, account: str, environments: list[str], region: str, ci: bool, report: Report,
    on_event: Callable[[str], None], timeout: float,
) -> None:  # fmt: skip
    cfn = aws.client("cloudformation", region)
    stack = _recover(cfn, stacks.ACCOUNT_STACK_NAME, report, region, timeout)
    provider = _provider(config, account, cfn, stack)
    text = render(
        stacks.build_account(
            tuple(environments), config.github_repository, ci_registry=ci, ci_region=config.ci.region
        )
    )
    if provider:
        report.say(f"GitHub OIDC provider: adopting {provider}")
    params = [{"ParameterKey": "OidcProviderArn", "ParameterValue": provider or ""}]
    _apply(cfn, region, stacks.ACCOUNT_STACK_NAME, text, params, stack, report, on_event, timeout)


def _provider(config: Environments, account: str, cfn: Any, stack: dict[str, Any] | None) -> str | None:
    """The OIDC provider to adopt: the declared one, else one the account has and our stack did not make."""
    if declared := config.provider_arn(account):
        return declared
    ours = _physical_ids(cfn, stacks.ACCOUNT_STACK_NAME).get("GitHubOidcProvider") if stack else None
    iam = aws.client("iam", config.ci.region)
    for entry in iam.list_open_id_connect_providers().get("OpenIDConnectProviderList", []):
        arn = entry["Arn"]
        if not arn.endswith(f"oidc-provider/{OIDC_URL}") or arn == ours:
            continue
        clients = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn).get("ClientIDList", [])
        if "sts.amazonaws.com" not in clients:
            raise BootstrapError(
                f"{arn} exists but does not list the audience sts.amazonaws.com, which the roles' trust "
                "requires; add it (aws iam add-client-id-to-open-id-connect-provider --client-id "
                "sts.amazonaws.com) or name another provider in environments.yaml"
            )
        return arn
    return None


def _recover(cfn: Any, name: str, report: Report, region: str, timeout: float) -> dict[str, Any] | None:
    stack = cf.describe(cfn, name)
    if (
        stack is not None
        and stack["StackStatus"].endswith("_IN_PROGRESS")
        and (stack["StackStatus"] != "REVIEW_IN_PROGRESS")
    ):
        stack = cf.wait(cfn, name, timeout=timeout)
    if stack is not None and stack["StackStatus"] == "UPDATE_ROLLBACK_FAILED":
        report.say(f"{region}: {name} UPDATE_ROLLBACK_FAILED: continuing the rollback")
        cfn.continue_update_rollback(StackName=name)
        stack = cf.wait(cfn, name, timeout=timeout)
    if stack is not None and stack["StackStatus"] in cf.RECREATE:
        report.say(
            f"{region}: {name} is {stack['StackStatus']} (a failed create): deleting it to create again"
        )
        cf.delete_stack(cfn, name, timeout=timeout)
        stack = None
    return stack


def _apply(
    cfn: Any, region: str, name: str, text: str, params: list[dict[str, str]], stack: dict[str, Any] | None,
    report: Report, on_event: Callable[[str], None], timeout: float,
) -> None:  # fmt: skip
    events = cf.Events()
    applied = cf.apply_change_set(
        cfn,
        name,
        f"deployctl-bootstrap-{uuid.uuid4().hex[:12]}",
        kind="CREATE" if stack is None else "UPDATE",
        template=cf.template_argument(text, name, region, purpose="bootstrap"),
        parameters=params,
        tags=MANAGED_BY,
        events=events,
        timeout=timeout,
        on_event=on_event,
    )
    if applied.outcome == "no-change":
        report.say(f"{region}: {name} is up to date")
        return
    if applied.outcome == "change-set-failed":
        report.failed = True
        report.say(f"{region}: {name} change set failed: {applied.reason}")
        return
    if applied.error is not None:
        report.failed = True
        message = applied.error.response["Error"].get("Message", applied.error)
        report.say(f"{region}: {name} could not start: {message}")
        return
    final = applied.final
    status = (final or {}).get("StackStatus", "GONE")
    report.say(f"{region}: {name} {status}")
    if status not in cf.SUCCESS:
        report.failed = True
        for failure in events.failures:
            report.say(f"  {failure}")
        report.say(f"  run `deployctl bootstrap` again once the cause is fixed: {name} is recreated")


def _physical_ids(cfn: Any, name: str) -> dict[str, str]:
    try:
        pages = cfn.get_paginator("list_stack_resources").paginate(StackName=name)
        return {
            r["LogicalResourceId"]: r.get("PhysicalResourceId", "")
            for page in pages
            for r in page["StackResourceSummaries"]
            if not r["ResourceStatus"].startswith("DELETE")
        }
    except ClientError:
        return {}


def _bucket_exists(region: str, bucket: str) -> bool:
    try:
        aws.client("s3", region).head_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("404", "NoSuchBucket", "NotFound"):
            return False
        raise
    return True


def _repository_exists(region: str, name: str) -> bool:
    try:
        aws.client("ecr", region).describe_repositories(repositoryNames=[name])
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "RepositoryNotFoundException":
            return False
        raise
    return True
