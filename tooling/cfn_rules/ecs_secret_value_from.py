"""E9001: an ECS secret's ValueFrom is a full ARN or a name, never an IAM wildcard pattern."""

from __future__ import annotations

from typing import ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from tooling.cfn_rules._template import containers, text


class EcsSecretValueFrom(CloudFormationLintRule):
    id = "E9001"
    shortdesc = "ECS secrets name a full ARN or a name, not an IAM wildcard"
    description = (
        "ECS resolves Secrets[].ValueFrom (and LogConfiguration.SecretOptions) as the full ARN of a "
        "Secrets Manager secret, or its name in the same Region. An IAM pattern such as "
        "'secret:NAME-??????' matches nothing there, so the task never starts; keep wildcards for IAM "
        "Resource elements."
    )
    source_url = (
        "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/secrets-envvar-secrets-manager.html"
    )
    tags: ClassVar[list[str]] = ["resources", "ecs", "secretsmanager"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        matches = []
        for task, i, container in containers(cfn):
            base = ["Resources", task, "Properties", "ContainerDefinitions", i]
            places = [("Secrets", container.get("Secrets"))]
            places.append(("SecretOptions", (container.get("LogConfiguration") or {}).get("SecretOptions")))
            for key, secrets in places:
                for j, secret in enumerate(secrets or []):
                    value = text(secret.get("ValueFrom")) if isinstance(secret, dict) else None
                    if value is None or ("*" not in value and "?" not in value):
                        continue
                    path = [*base, "LogConfiguration"] if key == "SecretOptions" else list(base)
                    matches.append(
                        RuleMatch(
                            [*path, key, j, "ValueFrom"],
                            f"{task} container {container.get('Name')!s} secret {secret.get('Name')!s}: "
                            f"ValueFrom {value!r} is an IAM wildcard; use the secret's full ARN "
                            "(or its name, in the same Region)",
                        )
                    )
        return matches
