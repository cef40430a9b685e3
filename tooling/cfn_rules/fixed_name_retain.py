"""E9002: a resource with a fixed physical name is not kept by DeletionPolicy Retain on a failed create."""

from __future__ import annotations

from functools import cache
from typing import ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.schema import PROVIDER_SCHEMA_MANAGER, ResourceNotFoundError
from cfnlint.template import Template


@cache
def name_properties(region: str, resource_type: str) -> tuple[str, ...]:
    """The properties that give `resource_type` its physical name, from its registry schema: create-only
    properties called Name or <Type>Name (LogGroupName, BucketName, RoleName, EndpointName, ...)."""
    try:
        schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema(region, resource_type).schema
    except ResourceNotFoundError:
        return ()
    kind = resource_type.rsplit("::", maxsplit=1)[-1]
    create_only = [p.rsplit("/", 1)[-1] for p in schema.get("createOnlyProperties", [])]
    identifiers = [p.rsplit("/", 1)[-1] for p in schema.get("primaryIdentifier", [])]
    read_only = {p.rsplit("/", 1)[-1] for p in schema.get("readOnlyProperties", [])}
    found = [p for p in create_only if p.endswith("Name") and kind.endswith(p[: -len("Name")])]
    found += [p for p in identifiers if p.endswith("Name") and p not in read_only and p not in found]
    return tuple(found)


class FixedNameRetain(CloudFormationLintRule):
    id = "E9002"
    shortdesc = "Fixed-name resources use RetainExceptOnCreate, not Retain"
    description = (
        "A resource with a fixed physical name and DeletionPolicy Retain survives the rollback of a "
        "failed create, so every later create of the stack fails with 'already exists'. "
        "RetainExceptOnCreate keeps it on later deletes but removes it when the create that made it rolls "
        "back. (UpdateReplacePolicy does not accept RetainExceptOnCreate; a fixed-name resource cannot be "
        "replaced anyway, so Retain there is harmless.)"
    )
    source_url = "https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-attribute-deletionpolicy.html"
    tags: ClassVar[list[str]] = ["resources", "deletionpolicy"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        region = cfn.regions[0] if cfn.regions else "us-east-1"
        matches = []
        for logical_id, res in cfn.get_resources().items():
            if res.get("DeletionPolicy") != "Retain" or not isinstance(res.get("Type"), str):
                continue
            given = res.get("Properties") or {}
            named = [p for p in name_properties(region, res["Type"]) if p in given]
            if named:
                matches.append(
                    RuleMatch(
                        ["Resources", logical_id, "DeletionPolicy"],
                        f"{logical_id} has a fixed name ({named[0]}) and DeletionPolicy Retain: a failed "
                        "create leaves it behind and every retry fails; use RetainExceptOnCreate "
                        "(or drop the fixed name)",
                    )
                )
        return matches
