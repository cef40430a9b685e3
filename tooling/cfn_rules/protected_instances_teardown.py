"""E9003: a stack whose instances are protected from scale-in can still be deleted."""

from __future__ import annotations

from typing import ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from tooling.cfn_rules._ecs import (
    ASG,
    CAPACITY_PROVIDER,
    associations_of,
    capacity_provider_group,
    service_providers,
)
from tooling.cfn_rules._template import depends_on, mentions, props, target, truthy


def _is_custom(kind: object) -> bool:
    return isinstance(kind, str) and (
        kind.startswith("Custom::") or kind == "AWS::CloudFormation::CustomResource"
    )


class ProtectedInstancesTeardown(CloudFormationLintRule):
    id = "E9003"
    shortdesc = "Scale-in protected capacity has a delete path"
    description = (
        "With ECS managed termination protection the Auto Scaling group and its instances must be "
        "protected from scale-in, and managed scaling must be on. Once the capacity provider is gone nothing "
        "lifts that protection, so CloudFormation's delete of the group (on a rollback, a prune or a stack "
        "delete) waits on instances that never terminate. The template needs a custom resource that is "
        "given the group (and so is deleted before it) to force-delete it or lift the protection, and every "
        "ECS service on the capacity must depend on the cluster's capacity provider associations and on that "
        "resource, so the service and its tasks are gone first."
    )
    source_url = (
        "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/managed-termination-protection.html"
    )
    tags: ClassVar[list[str]] = ["resources", "ecs", "autoscaling", "deletion"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        matches = []
        providers = cfn.get_resources([CAPACITY_PROVIDER])
        protected: dict[str, str] = {}  # ASG -> why
        for name, res in providers.items():
            group = props(res).get("AutoScalingGroupProvider", {}) or {}
            asg = capacity_provider_group(cfn, name)
            if group.get("ManagedTerminationProtection") != "ENABLED" or asg is None:
                continue
            path = ["Resources", name, "Properties", "AutoScalingGroupProvider"]
            protected[asg] = f"capacity provider {name} has ManagedTerminationProtection ENABLED"
            if not truthy(props(cfn.template["Resources"][asg]).get("NewInstancesProtectedFromScaleIn")):
                matches.append(
                    RuleMatch(
                        [*path, "ManagedTerminationProtection"],
                        f"{name}: managed termination protection needs {asg} to set "
                        "NewInstancesProtectedFromScaleIn true",
                    )
                )
            if (group.get("ManagedScaling") or {}).get("Status") != "ENABLED":
                matches.append(
                    RuleMatch(
                        [*path, "ManagedTerminationProtection"],
                        f"{name}: managed termination protection needs ManagedScaling Status ENABLED",
                    )
                )
        for asg, res in cfn.get_resources([ASG]).items():
            if truthy(props(res).get("NewInstancesProtectedFromScaleIn")):
                protected.setdefault(asg, "NewInstancesProtectedFromScaleIn is true")
        for asg, why in sorted(protected.items()):
            releasers = [
                name
                for name, res in cfn.get_resources().items()
                if _is_custom(res.get("Type")) and mentions(props(res), asg)
            ]
            if not releasers:
                matches.append(
                    RuleMatch(
                        ["Resources", asg],
                        f"{asg}: {why}, but no custom resource is given the group to lift the protection "
                        "(or force-delete it) before CloudFormation deletes it; a delete or rollback hangs",
                    )
                )
            for service, res in cfn.get_resources(["AWS::ECS::Service"]).items():
                if asg not in {capacity_provider_group(cfn, p) for p in service_providers(cfn, res)}:
                    continue
                cluster = target(props(res).get("Cluster"))
                for association in associations_of(cfn, cluster):
                    if not depends_on(cfn, service, association):
                        matches.append(
                            RuleMatch(
                                ["Resources", service],
                                f"{service} runs on {asg} but does not depend on {association}: it may be "
                                "deleted after the capacity provider association, with tasks still running",
                            )
                        )
                for releaser in releasers:
                    if not depends_on(cfn, service, releaser):
                        matches.append(
                            RuleMatch(
                                ["Resources", service],
                                f"{service} runs on {asg} but does not depend on {releaser}: the protection "
                                "may be lifted before the service and its tasks are deleted",
                            )
                        )
        return matches
