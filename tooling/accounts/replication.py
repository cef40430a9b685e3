"""ECR replication: images pushed once, to the CI registry, copied by ECR to every account and region in use.

Two halves, both written by bootstrap:
- the CI registry's replication configuration (PutReplicationConfiguration, in the CI account and region):
  one rule for our repositories (prefix `deployctl/`) with every destination registry and region;
  https://docs.aws.amazon.com/AmazonECR/latest/userguide/registry-settings-configure.html
- in every other account, per region, a registry policy statement that lets the CI account replicate
  into our repositories (ecr:ReplicateImage, and ecr:CreateRepository should one be missing);
  https://docs.aws.amazon.com/AmazonECR/latest/userguide/registry-permissions-create-replication.html
  Same-account, cross-region replication needs no registry policy.

Both are registry-wide settings other tools may also use: rules and statements that are not ours are kept
as they are, ours are replaced. ECR replicates only what is pushed after the configuration exists.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from templates.bootstrap import REPOSITORY_PREFIX

FILTER = {"filter": REPOSITORY_PREFIX.rstrip("/"), "filterType": "PREFIX_MATCH"}
POLICY_SID = "DeployctlReplicationFromCi"
# Destinations per replication rule (AWS::ECR::ReplicationConfiguration ReplicationRule, Maximum 25).
MAX_DESTINATIONS = 25


def _ours(rule: dict[str, Any]) -> bool:
    return rule.get("repositoryFilters") == [FILTER]


def configuration(existing: dict[str, Any] | None, destinations: list[tuple[str, str]]) -> dict[str, Any]:
    """The registry's replication configuration with our rule set to `destinations` (account, region)."""
    if len(destinations) > MAX_DESTINATIONS:
        raise ValueError(
            f"{len(destinations)} destination registries; one ECR replication rule takes at most "
            f"{MAX_DESTINATIONS}"
        )
    rules = [r for r in (existing or {}).get("rules", []) if not _ours(r)]
    if destinations:
        rules.append(
            {
                "destinations": [{"region": r, "registryId": a} for a, r in destinations],
                "repositoryFilters": [FILTER],
            }
        )
    return {"rules": rules}


def write_configuration(ecr: Any, destinations: list[tuple[str, str]]) -> bool:
    """PutReplicationConfiguration in the CI registry when ours differs; True when it was written."""
    existing = ecr.describe_registry().get("replicationConfiguration")
    wanted = configuration(existing, destinations)
    if _normal(existing) == _normal(wanted):
        return False
    ecr.put_replication_configuration(replicationConfiguration=wanted)
    return True


def _normal(config: dict[str, Any] | None) -> Any:
    return json.dumps(config or {"rules": []}, sort_keys=True)


def registry_policy(existing: str | None, ci_account: str, account: str, region: str, partition: str = "aws"
                    ) -> dict[str, Any]:  # fmt: skip
    """The destination registry's policy with our statement (other statements kept)."""
    document = json.loads(existing) if existing else {"Version": "2012-10-17", "Statement": []}
    statements = document.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    statements = [s for s in statements if s.get("Sid") != POLICY_SID]
    statements.append(
        {
            "Sid": POLICY_SID,
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:{partition}:iam::{ci_account}:root"},
            "Action": ["ecr:CreateRepository", "ecr:ReplicateImage"],
            "Resource": f"arn:{partition}:ecr:{region}:{account}:repository/{REPOSITORY_PREFIX}*",
        }
    )
    return {**document, "Version": "2012-10-17", "Statement": statements}


def write_registry_policy(ecr: Any, ci_account: str, account: str, region: str) -> bool:
    """PutRegistryPolicy in a destination registry when ours is missing or differs."""
    try:
        existing = ecr.get_registry_policy()["policyText"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "RegistryPolicyNotFoundException":
            raise
        existing = None
    wanted = registry_policy(existing, ci_account, account, region)
    if existing and json.loads(existing) == wanted:
        return False
    ecr.put_registry_policy(policyText=json.dumps(wanted, sort_keys=True))
    return True
