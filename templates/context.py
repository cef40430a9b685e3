"""What every building block is given: the spec, the environment and the template being built."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

from troposphere import AWSObject, Template

from tooling.spec import Deployment

R = TypeVar("R", bound=AWSObject)

MANAGED_BY = "deployctl"
# The engine recognises its own stacks by this tag and never touches a stack without it.
MANAGEMENT_TAG = "deployctl:managed-by"


def checkov_skip(skip: dict[str, str]) -> dict[str, Any]:
    """Resource metadata that makes checkov skip each check id, with the reason written next to it."""
    return {"checkov": {"skip": [{"id": check, "comment": reason} for check, reason in sorted(skip.items())]}}


@dataclass
class Stack:
    spec: Deployment
    environment: str
    template: Template = field(default_factory=Template)

    @property
    def name(self) -> str:
        return self.spec.stack_name(self.environment)

    @property
    def prod(self) -> bool:
        return self.environment == "prod"

    def add(self, resource: R, *, skip: dict[str, str] | None = None) -> R:
        """Add a resource; `skip` maps checkov check ids to the reason this resource is an exception."""
        if skip:
            resource.Metadata = {**(getattr(resource, "Metadata", {}) or {}), **checkov_skip(skip)}
        return self.template.add_resource(resource)

    @property
    def keep_on_delete(self) -> str:
        """DeletionPolicy of what outlives a prod stack (logs, and the key that makes them readable).

        RetainExceptOnCreate keeps them when the stack is deleted or they leave the template, but
        deletes them when the create that made them rolls back: a failed first deploy leaves nothing
        behind for the next attempt to collide with.
        https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-attribute-deletionpolicy.html
        """
        return "RetainExceptOnCreate" if self.prod else "Delete"

    @property
    def keep_on_replace(self) -> str:
        """UpdateReplacePolicy to match: it takes only Delete, Retain or Snapshot."""
        return "Retain" if self.prod else "Delete"

    def tags(self) -> dict[str, str]:
        """Every resource carries these: who owns it, which deployment, and that we manage it."""
        return {
            **self.spec.tags,
            "deployctl:environment": self.environment,
            "deployctl:deployment": self.spec.name,
            "deployctl:stack": self.name,
            "deployctl:owner": str(self.spec.owner),
            MANAGEMENT_TAG: MANAGED_BY,
        }
