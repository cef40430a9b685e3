"""ECR replication, registry policies, the image check and the cost-allocation tag, call by call.

moto stores replication configurations and registry policies (the emulator tests use it), but allows one
replication rule only and has no Cost Explorer tag API; here botocore's Stubber answers with the
responses the API references document, so merging with other tools' rules and statements and every
documented refusal of UpdateCostAllocationTagsStatus are covered.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from tooling.accounts import billing, images, replication

OTHER_RULE = {
    "destinations": [{"region": "ap-south-1", "registryId": "555555555555"}],
    "repositoryFilters": [{"filter": "team-x", "filterType": "PREFIX_MATCH"}],
}
OURS = replication.FILTER


def client(service: str, region: str = "us-east-1") -> Any:
    return boto3.client(service, region_name=region, aws_access_key_id="x", aws_secret_access_key="x")


def test_replication_keeps_other_rules_and_replaces_ours() -> None:
    ecr = client("ecr")
    stale = {
        "destinations": [{"region": "us-west-2", "registryId": "333333333333"}],
        "repositoryFilters": [OURS],
    }
    wanted = {
        "rules": [
            OTHER_RULE,
            {
                "destinations": [{"region": "eu-west-1", "registryId": "333333333333"}],
                "repositoryFilters": [OURS],
            },
        ]
    }
    with Stubber(ecr) as stub:
        stub.add_response(
            "describe_registry",
            {"registryId": "111111111111", "replicationConfiguration": {"rules": [OTHER_RULE, stale]}},
        )
        stub.add_response(
            "put_replication_configuration",
            {"replicationConfiguration": wanted},
            {"replicationConfiguration": wanted},
        )
        assert replication.write_configuration(ecr, [("333333333333", "eu-west-1")]) is True
        stub.add_response(
            "describe_registry", {"registryId": "111111111111", "replicationConfiguration": wanted}
        )
        assert replication.write_configuration(ecr, [("333333333333", "eu-west-1")]) is False


def test_too_many_destinations_for_one_rule_is_refused() -> None:
    with pytest.raises(ValueError, match="at most 25"):
        replication.configuration(None, [(f"{i:012d}", "us-east-1") for i in range(26)])


def test_the_registry_policy_keeps_other_statements() -> None:
    ecr = client("ecr", "eu-west-1")
    other = {
        "Sid": "PullThroughCache",
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::444444444444:root"},
        "Action": ["ecr:BatchImportUpstreamImage"],
        "Resource": "arn:aws:ecr:eu-west-1:333333333333:repository/*",
    }
    existing = json.dumps({"Version": "2012-10-17", "Statement": [other]})
    with Stubber(ecr) as stub:
        stub.add_response("get_registry_policy", {"registryId": "333333333333", "policyText": existing})
        expected = replication.registry_policy(existing, "111111111111", "333333333333", "eu-west-1")
        stub.add_response(
            "put_registry_policy",
            {"registryId": "333333333333", "policyText": "{}"},
            {"policyText": json.dumps(expected, sort_keys=True)},
        )
        assert replication.write_registry_policy(ecr, "111111111111", "333333333333", "eu-west-1") is True
    assert expected["Statement"][0] == other
    assert expected["Statement"][1] == {
        "Sid": replication.POLICY_SID,
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::111111111111:root"},
        "Action": ["ecr:CreateRepository", "ecr:ReplicateImage"],
        "Resource": "arn:aws:ecr:eu-west-1:333333333333:repository/deployctl/*",
    }


def test_a_registry_without_a_policy_gets_ours() -> None:
    ecr = client("ecr")
    with Stubber(ecr) as stub:
        stub.add_client_error("get_registry_policy", "RegistryPolicyNotFoundException", "not found", 400)
        stub.add_response("put_registry_policy", {"registryId": "333333333333", "policyText": "{}"})
        assert replication.write_registry_policy(ecr, "111111111111", "333333333333", "us-east-1") is True


# ---------------------------------------------------------------------- cost allocation tag

TAG_STATUS = {"CostAllocationTagsStatus": [{"TagKey": "deployctl:stack", "Status": "Active"}]}


def test_the_tag_is_activated() -> None:
    ce = client("ce")
    with Stubber(ce) as stub:
        stub.add_response("update_cost_allocation_tags_status", {"Errors": []}, TAG_STATUS)
        result = billing.activate(ce)
    assert result.active
    assert result.message == "cost allocation tag deployctl:stack is active"


def test_a_tag_not_yet_in_billing_data_is_retried_later() -> None:
    ce = client("ce")
    error = {"TagKey": "deployctl:stack", "Code": "TagKeysNotFoundException", "Message": "Tag keys not found"}
    with Stubber(ce) as stub:
        stub.add_response("update_cost_allocation_tags_status", {"Errors": [error]}, TAG_STATUS)
        result = billing.activate(ce)
    assert not result.active
    assert "only after it appears in billing data" in result.message
    assert "the next bootstrap or deploy tries again" in result.message
    assert "budgets read $0" in result.message


def test_a_member_account_of_an_organization_is_told_who_activates_it() -> None:
    ce = client("ce")
    with Stubber(ce) as stub:
        stub.add_client_error(
            "update_cost_allocation_tags_status",
            "AccessDeniedException",
            "Failed to update Cost Allocation Tag: "
            "Linked account doesn't have access to cost allocation tags.",
            400,
        )
        result = billing.activate(ce)
    assert not result.active
    assert "the management account activates it" in result.message


def test_a_limit_is_reported_not_raised() -> None:
    ce = client("ce")
    with Stubber(ce) as stub:
        stub.add_client_error(
            "update_cost_allocation_tags_status", "LimitExceededException", "slow down", 400
        )
        result = billing.activate(ce)
    assert not result.active
    assert "LimitExceededException" in result.message


# ---------------------------------------------------------------------- the image check


def test_only_declared_image_parameters_are_checked() -> None:
    template = json.dumps({"Parameters": {"GatewayImageTag": {"Type": "String"}}, "Resources": {}})
    assert images.wanted(template, {"GatewayImageTag": "v1", "VllmImageTag": "v1"}) == {
        "deployctl/gateway": "v1"
    }
    assert images.wanted(template, {"GatewayImageTag": "not-yet-built"}) == {}
    assert images.wanted(json.dumps({"Resources": {}}), {"GatewayImageTag": "v1"}) == {}


def test_a_missing_tag_is_reported_with_its_region(monkeypatch: pytest.MonkeyPatch) -> None:
    ecr = client("ecr", "eu-west-1")
    monkeypatch.setattr("tooling.aws.client", lambda service, region: ecr)
    with Stubber(ecr) as stub:
        stub.add_client_error(
            "describe_images",
            "ImageNotFoundException",
            "not found",
            400,
            expected_params={"repositoryName": "deployctl/vllm", "imageIds": [{"imageTag": "v9"}]},
        )
        (problem,) = images.check("prod-chat", "eu-west-1", {"deployctl/vllm": "v9"})
    assert problem.startswith("prod-chat: image deployctl/vllm:v9 is not in eu-west-1's ECR repository")
    assert problem.endswith("Nothing was changed.")


def test_the_plan_says_the_budget_tag_must_be_active() -> None:
    from tooling import plan_output
    from tooling.plan import Plan, StackPlan

    new = Plan("aws", [StackPlan("dev", "chat", "dev-chat", "create")], [])
    assert plan_output.BUDGET_TAG_NOTE in plan_output.markdown(new)
    same = Plan("aws", [StackPlan("dev", "chat", "dev-chat", "no-change")], [])
    assert plan_output.BUDGET_TAG_NOTE not in plan_output.markdown(same)
