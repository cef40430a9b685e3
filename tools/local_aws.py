"""`make local-aws`: the AWS emulator (moto in server mode) on 127.0.0.1, as the tests run it.

Point deployctl at it with AWS_ENDPOINT_URL (printed on start) and bootstrap, deploy, plan and prune
run end to end on a laptop, with no AWS account. Gaps of moto are closed here, in the emulator,
never in the product: CloudFormation's AWS::KMS::Key handler reads tags with KMS's API spelling
(TagKey/TagValue) instead of CloudFormation's Key/Value; UpdateTerminationProtection is missing (added
doing what AWS documents); a resource that fails while a change set executes makes moto's
ExecuteChangeSet raise instead of failing the stack (here: the error becomes the resource's *_FAILED
event and the stack rolls back to ROLLBACK_COMPLETE / UPDATE_ROLLBACK_COMPLETE, as AWS reports it);
Cost Explorer's UpdateCostAllocationTagsStatus is missing (here: it answers with the per-tag error AWS
returns for a key not yet seen in billing data); and the public /aws/service SSM parameters (the GPU
AMI) load lazily, so they are read once at start.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from typing import Any

GPU_AMI_PARAMETER = "/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id"


def fix_moto() -> None:
    import moto.kms.models as kms  # noqa: PLC0415 - moto is a dev dependency
    from moto.cloudformation.responses import CloudFormationResponse  # noqa: PLC0415
    from moto.core.responses import ActionResult  # noqa: PLC0415

    if getattr(kms.Key, "_deployctl_fixed", False):
        return
    original = kms.Key.create_from_cloudformation_json.__func__

    def create(cls: Any, name: str, cfn_json: Any, account_id: str, region_name: str, **kwargs: Any) -> Any:
        props = dict(cfn_json["Properties"])
        props["Tags"] = [{"TagKey": t["Key"], "TagValue": t["Value"]} for t in props.get("Tags", [])]
        return original(cls, name, {**cfn_json, "Properties": props}, account_id, region_name, **kwargs)

    def update_termination_protection(self: Any) -> Any:
        stack = self.cloudformation_backend.get_stack(self._get_param("StackName"))
        stack.enable_termination_protection = self._get_param("EnableTerminationProtection") in (True, "true")
        return ActionResult({"StackId": stack.stack_id})

    kms.Key.create_from_cloudformation_json = classmethod(create)
    kms.Key._deployctl_fixed = True
    CloudFormationResponse.update_termination_protection = update_termination_protection
    _fail_change_sets_like_aws()
    _cost_allocation_tags()


def _fail_change_sets_like_aws() -> None:
    from moto.cloudformation.models import CloudFormationBackend  # noqa: PLC0415

    original = CloudFormationBackend.execute_change_set

    def execute_change_set(self: Any, change_set_name: str, stack_name: str | None = None) -> None:
        change_set = self.change_sets.get(change_set_name) or next(
            (c for c in self.change_sets.values() if c.change_set_name == change_set_name), None
        )
        try:
            original(self, change_set_name, stack_name)
        except Exception as exc:  # a resource failed: AWS reports it on the stack, not on the call
            if change_set is None:
                raise
            stack = self.stacks[change_set.stack_id]
            creating = change_set.change_set_type == "CREATE"
            stack._add_stack_event("CREATE_FAILED" if creating else "UPDATE_FAILED", str(exc))
            if creating:  # the rollback of a failed create deletes what it made
                policies = [r for r in stack.resource_map._parsed_resources.values()
                            if type(r).__name__ == "ManagedPolicy"]  # fmt: skip
                with contextlib.suppress(Exception):
                    stack.resource_map.delete()
                _delete_policies(stack.account_id, policies)
            stack.status = "ROLLBACK_COMPLETE" if creating else "UPDATE_ROLLBACK_COMPLETE"
            stack._add_stack_event(stack.status)
            change_set.execution_status = "EXECUTE_FAILED"

    CloudFormationBackend.execute_change_set = execute_change_set


def _delete_policies(account_id: str, policies: list[Any]) -> None:
    """moto's CloudFormation cannot delete an AWS::IAM::ManagedPolicy; its rollback here does."""
    from moto.iam.models import iam_backends  # noqa: PLC0415

    backend = iam_backends[account_id]["aws"]
    for policy in policies:
        with contextlib.suppress(Exception):
            backend.delete_policy(policy.arn)


def _cost_allocation_tags() -> None:
    import json  # noqa: PLC0415

    from moto.ce.responses import CostExplorerResponse  # noqa: PLC0415

    def update_cost_allocation_tags_status(self: Any) -> str:
        # What AWS answers for a key that has not appeared in the account's billing data yet.
        entries = json.loads(self.body).get("CostAllocationTagsStatus", [])
        errors = [
            {"TagKey": e["TagKey"], "Code": "TagKeysNotFoundException",
             "Message": "Failed to update Cost Allocation Tag: tag key not found"}
            for e in entries
        ]  # fmt: skip
        return json.dumps({"Errors": errors})

    CostExplorerResponse.update_cost_allocation_tags_status = update_cost_allocation_tags_status


def warm(endpoint: str, regions: list[str]) -> None:
    """Load the public SSM parameters CloudFormation resolves, as AWS always has them."""
    import boto3  # noqa: PLC0415

    for region in regions:
        credentials = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}  # the emulator's
        ssm = boto3.client("ssm", region_name=region, endpoint_url=endpoint, **credentials)
        ssm.get_parameter(Name=GPU_AMI_PARAMETER)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--region", action="append", default=None)
    args = parser.parse_args(argv)
    from moto.server import ThreadedMotoServer  # noqa: PLC0415

    fix_moto()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    warm(endpoint, args.region or ["us-east-1"])
    print(
        f"AWS emulator on {endpoint}. In another shell:\n"
        f"  export AWS_ENDPOINT_URL={endpoint} AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local"
        " AWS_DEFAULT_REGION=us-east-1\n"
        "  .venv/bin/deployctl bootstrap   # deployments/environments.yaml naming the emulator's account,"
        " 123456789012\n"
        "  then push an image tagged `local` to deployctl/gateway and deployctl/vllm, and\n"
        "  .venv/bin/deployctl deploy --image-tag local\n"
        "Ctrl-C stops it (state lives in memory).",
        flush=True,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
