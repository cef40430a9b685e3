"""The `deployctl:stack` cost-allocation tag, which every stack's budget filters on.

A budget filtering on a user-defined tag reads $0 until that tag is activated for cost allocation.
Cost Explorer's UpdateCostAllocationTagsStatus activates it, but only once the key has appeared in the
account's billing data (AWS: up to 24 hours after a tagged resource first incurs cost), and in an
AWS Organization only the management (payer) account may call it. Each per-tag failure comes back in the
response's `Errors` list, not as an exception, so bootstrap reads that list, says what it means, and
tries again on the next bootstrap or deploy.
https://docs.aws.amazon.com/aws-cost-management/latest/APIReference/API_UpdateCostAllocationTagsStatus.html
https://docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/activating-tags.html
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

TAG = "deployctl:stack"
# Cost Explorer's API is served from us-east-1 whatever the region of the resources.
REGION = "us-east-1"


@dataclass(frozen=True)
class Activation:
    active: bool
    message: str


def activate(ce: Any) -> Activation:
    """Activate the tag. Activating an active tag is documented as a no-op, so this is asked every time.
    Never raises for AWS's documented refusals."""
    try:
        response = ce.update_cost_allocation_tags_status(
            CostAllocationTagsStatus=[{"TagKey": TAG, "Status": "Active"}]
        )
    except ClientError as exc:
        code = exc.response["Error"]["Code"]
        if code == "AccessDeniedException":
            return Activation(
                False,
                f"cost allocation tag {TAG}: not activated ({exc.response['Error'].get('Message', code)}); "
                "in an AWS Organization the management account activates it (Billing > Cost allocation "
                "tags); until then the stacks' budgets read $0",
            )
        return Activation(False, f"cost allocation tag {TAG}: not activated ({code}); bootstrap retries")
    except BotoCoreError as exc:
        return Activation(
            False, f"cost allocation tag {TAG}: Cost Explorer unreachable ({exc}); retried later"
        )
    errors = [e for e in response.get("Errors", []) if e.get("TagKey") == TAG]
    if errors:
        error = errors[0]
        return Activation(
            False,
            f"cost allocation tag {TAG}: not activated yet ({error.get('Code', '')}: "
            f"{error.get('Message', '')}). AWS activates a tag only after it appears in billing data, up "
            "to a day after the first tagged stack is deployed; the next bootstrap or deploy tries again, "
            "and until then the stacks' budgets read $0",
        )
    return Activation(True, f"cost allocation tag {TAG} is active")
