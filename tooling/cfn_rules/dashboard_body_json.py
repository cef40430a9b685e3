"""E9040: a dashboard's body is a JSON object whose widgets CloudWatch can place and draw."""

from __future__ import annotations

from typing import Any, ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from tooling.cfn_rules._dashboard import bodies

GRID_COLUMNS = 24
WIDGET_TYPES = ("metric", "text", "log", "alarm", "explorer", "custom")
MAX_ALARMS = 100


def _problems(widget: dict[str, Any]) -> list[str]:
    found = []
    if widget.get("type") not in WIDGET_TYPES:
        found.append(f"type {widget.get('type')!r} is none of {', '.join(WIDGET_TYPES)}")
    x, width = widget.get("x", 0), widget.get("width", 6)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (x, width)):
        found.append("x and width must be whole numbers")
    elif not (0 <= x < GRID_COLUMNS and 1 <= width <= GRID_COLUMNS and x + width <= GRID_COLUMNS):
        found.append(f"x {x} and width {width} do not fit the {GRID_COLUMNS}-column grid")
    properties = widget.get("properties")
    if not isinstance(properties, dict):
        found.append("it has no properties object")
    elif widget.get("type") == "metric":
        if not isinstance(properties.get("metrics"), list) or not properties["metrics"]:
            found.append("a metric widget needs a non-empty metrics array")
        if not properties.get("region"):
            found.append("a metric widget needs its region")
    elif widget.get("type") == "text" and not isinstance(properties.get("markdown"), str):
        found.append("a text widget needs its markdown")
    elif widget.get("type") == "alarm":
        alarms = properties.get("alarms")
        if not isinstance(alarms, list) or not 1 <= len(alarms) <= MAX_ALARMS:
            found.append(f"an alarm widget needs an alarms array of 1-{MAX_ALARMS} alarm ARNs")
    return found


class DashboardBodyJson(CloudFormationLintRule):
    id = "E9040"
    shortdesc = "A dashboard's body is JSON CloudWatch accepts"
    description = (
        "DashboardBody is a string in JSON format (in our templates an Fn::Sub whose variables are the "
        "stack's resources): an object with a widgets array, each widget of a known type placed on the "
        "24-column grid (x 0-23, width 1-24), metric widgets with a metrics array and their region, text "
        "widgets with markdown, alarm widgets with 1-100 alarm ARNs. PutDashboard refuses anything else, "
        "and the stack operation fails on it."
    )
    source_url = "https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/CloudWatch-Dashboard-Body-Structure.html"
    tags: ClassVar[list[str]] = ["resources", "cloudwatch", "dashboard"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        matches = []
        for body in bodies(cfn):
            if body.error:
                matches.append(RuleMatch(body.path, f"{body.logical_id}: {body.error}"))
                continue
            if not isinstance(body.data, dict) or not isinstance(body.data.get("widgets"), list):
                matches.append(RuleMatch(body.path, f"{body.logical_id}: the body needs a widgets array"))
                continue
            for index, widget in enumerate(body.data["widgets"]):
                problems = _problems(widget) if isinstance(widget, dict) else ["it is not an object"]
                for problem in problems:
                    matches.append(RuleMatch(body.path, f"{body.logical_id}: widget {index}: {problem}"))
        return matches
