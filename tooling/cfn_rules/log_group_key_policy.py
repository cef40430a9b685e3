"""E9014: a KMS key that encrypts a log group lets CloudWatch Logs use it, for log groups only."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from tooling.cfn_rules._template import as_list, props, resource, statements, target, text

CONTEXT_KEY = "kms:EncryptionContext:aws:logs:arn"
ACTIONS = ("kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey")


def _logs_principal(statement: dict) -> bool:
    services = (
        as_list((statement.get("Principal") or {}).get("Service"))
        if isinstance(statement.get("Principal"), dict)
        else []
    )
    for service in services:
        name = text(service) or ""
        if name.startswith("logs.") and name.endswith(".amazonaws.com"):
            return True
    return False


def _has_context(statement: dict) -> bool:
    conditions = statement.get("Condition") or {}
    return isinstance(conditions, dict) and any(
        isinstance(block, dict) and CONTEXT_KEY in block for block in conditions.values()
    )


def _grants(statement: dict, action: str) -> bool:
    return any(
        isinstance(a, str) and fnmatchcase(action.lower(), a.lower())
        for a in as_list(statement.get("Action"))
    )


class LogGroupKeyPolicy(CloudFormationLintRule):
    id = "E9014"
    shortdesc = "Log group keys allow CloudWatch Logs with the log-group encryption context"
    description = (
        "CloudWatch Logs encrypts with a customer managed key only if the key policy allows the regional "
        "service principal logs.<region>.amazonaws.com kms:Encrypt*, kms:Decrypt*, kms:ReEncrypt*, "
        "kms:GenerateDataKey* and kms:Describe*, conditioned on kms:EncryptionContext:aws:logs:arn; "
        "otherwise creating the log group fails."
    )
    source_url = "https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/encrypt-log-data-kms.html"
    tags: ClassVar[list[str]] = ["resources", "logs", "kms"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        matches = []
        for name, res in cfn.get_resources(["AWS::Logs::LogGroup"]).items():
            key = target(props(res).get("KmsKeyId"))
            key_res = resource(cfn, key, "AWS::KMS::Key")
            if key_res is None:
                continue
            allowed = [
                s
                for s in statements(props(key_res).get("KeyPolicy"))
                if s.get("Effect") == "Allow" and _logs_principal(s)
            ]
            missing = [a for a in ACTIONS if not any(_grants(s, a) for s in allowed)]
            unscoped = [s for s in allowed if not _has_context(s)]
            if not allowed or missing:
                message = (
                    f"{key} encrypts log group {name} but its key policy does not allow "
                    f"logs.<region>.amazonaws.com {', '.join(missing or ACTIONS)}"
                )
            elif unscoped:
                message = f"{key}: the statement for CloudWatch Logs has no {CONTEXT_KEY} condition"
            else:
                continue
            matches.append(RuleMatch(["Resources", key, "Properties", "KeyPolicy"], message))
        return matches
