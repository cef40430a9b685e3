"""E9044: a dashboard's name carries its stack's name and region, so no other stack can share it."""

from __future__ import annotations

import re
from typing import ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from tooling.cfn_rules._dashboard import TYPE, flatten
from tooling.cfn_rules._template import props

ALLOWED = re.compile(r"[A-Za-z0-9_-]*")
NEEDED = ("${AWS::StackName}", "${AWS::Region}")


class DashboardName(CloudFormationLintRule):
    id = "E9044"
    shortdesc = "A dashboard's name holds its stack name and region"
    description = (
        "Dashboards are global to the account, not regional, and PutDashboard with a name that exists "
        "replaces that dashboard's contents. A fixed DashboardName is shared by every stack built from "
        "the same template (another environment, the same deployment in another region), each "
        "overwriting the others'. A DashboardName must contain ${AWS::StackName} and ${AWS::Region} "
        "(stack names are unique per region), and its other characters be A-Z, a-z, 0-9, - or _."
    )
    source_url = "https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutDashboard.html"
    tags: ClassVar[list[str]] = ["resources", "cloudwatch", "dashboard", "names"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        matches = []
        for logical_id, res in cfn.get_resources(TYPE).items():
            given = props(res)
            if "DashboardName" not in given:
                continue  # CloudFormation generates a unique one
            path = ["Resources", logical_id, "Properties", "DashboardName"]
            flat = flatten(given["DashboardName"])
            text = flat[0] if flat and not flat[1] else None
            if text is None:
                matches.append(
                    RuleMatch(path, f"{logical_id}: DashboardName must be text or an Fn::Sub of it")
                )
                continue
            missing = [n for n in NEEDED if n not in text]
            if missing:
                matches.append(
                    RuleMatch(
                        path,
                        f"{logical_id}: DashboardName {text!r} lacks {' and '.join(missing)}: dashboards are "
                        "global to the account, so another stack of this template would overwrite it",
                    )
                )
            rest = text
            for needed in NEEDED:
                rest = rest.replace(needed, "")
            if not ALLOWED.fullmatch(rest):
                matches.append(
                    RuleMatch(
                        path, f"{logical_id}: DashboardName {text!r} has characters other than A-Za-z0-9-_"
                    )
                )
        return matches
