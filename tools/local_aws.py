"""`make local-aws`: the AWS emulator (moto in server mode) on 127.0.0.1, as the tests run it.

Point deployctl at it with AWS_ENDPOINT_URL (printed on start) and bootstrap, deploy, plan and prune
run end to end on a laptop, with no AWS account. Three gaps of moto are closed here, in the emulator,
never in the product: CloudFormation's AWS::KMS::Key handler reads tags with KMS's API spelling
(TagKey/TagValue) instead of CloudFormation's Key/Value; UpdateTerminationProtection is missing (added
doing what AWS documents); and the public /aws/service SSM parameters (the GPU AMI) load lazily, so
they are read once at start.
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
        "  .venv/bin/deployctl bootstrap && .venv/bin/deployctl deploy --image-tag local\n"
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
