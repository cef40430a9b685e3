"""Tags on everything: applied once, after the targets are built, to every resource that takes them."""

from __future__ import annotations

from troposphere import Tags, Template
from troposphere import autoscaling as asg


def apply(template: Template, tags: dict[str, str]) -> None:
    for resource in template.resources.values():
        expected = resource.props.get("Tags", (None,))[0]
        if expected is None:
            continue
        existing = dict(_pairs(getattr(resource, "Tags", None)))
        merged = {**tags, **existing}
        if resource.resource_type == "AWS::AutoScaling::AutoScalingGroup":
            # Instances launched by the group carry the tags too.
            resource.Tags = asg.Tags(**{k: (v, True) for k, v in sorted(merged.items())})
        elif expected is dict:
            resource.Tags = dict(sorted(merged.items()))
        else:
            resource.Tags = Tags(**dict(sorted(merged.items())))


def _pairs(tags: object) -> list[tuple[str, str]]:
    if tags is None:
        return []
    if isinstance(tags, dict):
        return list(tags.items())
    return [(t["Key"], t["Value"]) for t in tags.to_dict()]
