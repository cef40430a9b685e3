"""`make local-aws`: the AWS emulator (moto in server mode) on 127.0.0.1, as the tests run it.

Point deployctl at it with AWS_ENDPOINT_URL (printed on start) and bootstrap, deploy, plan and prune
run end to end on a laptop, with no AWS account. Gaps of moto are closed here, in the emulator,
never in the product: CloudFormation's AWS::KMS::Key handler reads tags with KMS's API spelling
(TagKey/TagValue) instead of CloudFormation's Key/Value; UpdateTerminationProtection is missing (added
doing what AWS documents); a resource that fails while a change set executes makes moto's
ExecuteChangeSet raise instead of failing the stack (here: the error becomes the resource's *_FAILED
event and the stack rolls back to ROLLBACK_COMPLETE / UPDATE_ROLLBACK_COMPLETE, as AWS reports it);
Cost Explorer's UpdateCostAllocationTagsStatus is missing (here: it answers with the per-tag error AWS
returns for a key not yet seen in billing data); the public /aws/service SSM parameters (the GPU AMI)
load lazily, so they are read once at start; and moto runs Lambda functions only in Docker, so a custom
resource (ecs-gpu's host cleanup) would never answer: inline Python functions (ZipFile) run in-process
instead, and their CloudFormation response URL points at this server; CloudFormation sends custom
resources a Delete request, which moto does not; moto deletes a stack's resources in no order, where
CloudFormation deletes each resource before the ones it depends on; and moto's DeleteAutoScalingGroup
ignores ForceDelete, which on AWS terminates every instance, scale-in protection or not. moto models
Service Quotas for VPC only and lacks GetAWSDefaultServiceQuota and ListServiceQuotas (a 500 botocore
retries for a minute): here they answer from the same data, so any other service's quota is
NoSuchResourceException at once, as AWS answers for a quota it does not have. moto's load balancers and
target groups lack the LoadBalancerFullName and TargetGroupFullName attributes (CloudWatch's dimension
values, which the dashboard reads): here they are the tail of the ARN, as AWS documents them; and a
stack made or changed by a change set keeps moto's old outputs (none for a new one): here they are the
executed template's. moto has no CloudFormation alarms: here a stack's alarm has its name and ARN.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import sys
import threading
from typing import Any

GPU_AMI_PARAMETER = "/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id"
_SERVER: dict[str, str] = {}


def announce(endpoint: str) -> None:
    """Where this emulator listens: custom resources send their CloudFormation responses here."""
    _SERVER["endpoint"] = endpoint


def dependencies(resources: dict[str, Any]) -> dict[str, set[str]]:
    """Each resource's dependencies as CloudFormation sees them: DependsOn, Ref, GetAtt and Sub."""

    def walk(node: Any, found: set[str]) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "Ref" and isinstance(value, str):
                    found.add(value)
                elif key == "Fn::GetAtt":
                    found.add(value[0] if isinstance(value, list) else str(value).split(".")[0])
                elif key == "Fn::Sub":
                    text = value[0] if isinstance(value, list) else value
                    found.update(m.split(".")[0] for m in re.findall(r"\$\{([^!][^}]*)\}", text))
                    if isinstance(value, list):
                        walk(value[1], found)
                else:
                    walk(value, found)
        elif isinstance(node, list):
            for item in node:
                walk(item, found)

    graph = {}
    for name, resource in resources.items():
        found: set[str] = set()
        walk(resource.get("Properties", {}), found)
        depends = resource.get("DependsOn", [])
        found.update([depends] if isinstance(depends, str) else depends)
        graph[name] = {d for d in found if d in resources and d != name}
    return graph


def deletion_order(resources: dict[str, Any]) -> list[str]:
    """The order CloudFormation deletes in: every resource before those it depends on
    (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-attribute-dependson.html)."""
    graph = dependencies(resources)
    dependents = {name: {other for other, deps in graph.items() if name in deps} for name in graph}
    order: list[str] = []
    while len(order) < len(graph):
        ready = sorted(n for n in graph if n not in order and dependents[n] <= set(order))
        if not ready:
            raise ValueError(f"circular dependencies among {sorted(set(graph) - set(order))}")
        order += ready
    return order


def _run_inline_python(function: Any, event: Any) -> tuple[str, bool, str]:
    """Run a ZipFile Python Lambda in this process, as Lambda would run it (handler(event, context))."""
    import io  # noqa: PLC0415
    import json  # noqa: PLC0415
    import traceback  # noqa: PLC0415
    import types  # noqa: PLC0415
    import urllib.parse  # noqa: PLC0415
    import zipfile  # noqa: PLC0415

    payload = json.loads(event) if isinstance(event, str) else (event or {})
    if "ResponseURL" in payload and "endpoint" in _SERVER:
        url = urllib.parse.urlsplit(payload["ResponseURL"])
        target = urllib.parse.urlsplit(_SERVER["endpoint"])
        url = url._replace(scheme=target.scheme, netloc=target.netloc)
        payload["ResponseURL"] = urllib.parse.urlunsplit(url)
    module_name, handler_name = function.handler.rsplit(".", 1)
    source = zipfile.ZipFile(io.BytesIO(function.code_bytes)).read(module_name + ".py").decode()
    module = types.ModuleType(module_name)
    context = types.SimpleNamespace(
        function_name=function.function_name,
        get_remaining_time_in_millis=lambda: int(function.timeout) * 1000,
    )
    try:
        exec(compile(source, f"<lambda {function.function_name}>", "exec"), module.__dict__)  # noqa: S102
        return json.dumps(getattr(module, handler_name)(payload, context)), False, ""
    except Exception as exc:  # reported as Lambda reports a function error
        return json.dumps({"errorMessage": str(exc)}), True, traceback.format_exc()


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

    import moto.awslambda.models as awslambda  # noqa: PLC0415

    docker_invoke = awslambda.LambdaFunction._invoke_lambda

    def invoke(self: Any, event: Any = None) -> tuple[str, bool, str]:
        if str(self.run_time).startswith("python") and getattr(self, "code_bytes", None):
            return _run_inline_python(self, event)
        return docker_invoke(self, event)

    awslambda.LambdaFunction._invoke_lambda = invoke
    _delete_in_dependency_order()
    _send_custom_resources_delete()
    _force_delete_terminates_protected_instances()
    kms.Key.create_from_cloudformation_json = classmethod(create)
    kms.Key._deployctl_fixed = True
    CloudFormationResponse.update_termination_protection = update_termination_protection
    _fail_change_sets_like_aws()
    _cost_allocation_tags()
    _load_balancer_full_names()
    _alarms_in_stacks()
    _service_quotas()


def _service_quotas() -> None:
    from moto.servicequotas.responses import ServiceQuotasResponse  # noqa: PLC0415

    # The emulated account has applied no quota increase: applied values are the defaults.
    ServiceQuotasResponse.get_aws_default_service_quota = ServiceQuotasResponse.get_service_quota
    ServiceQuotasResponse.list_service_quotas = ServiceQuotasResponse.list_aws_default_service_quotas


def _fail_change_sets_like_aws() -> None:
    from moto.cloudformation.models import CloudFormationBackend  # noqa: PLC0415

    original = CloudFormationBackend.execute_change_set
    from moto.cloudformation.responses import CloudFormationResponse  # noqa: PLC0415

    original_describe = CloudFormationResponse.describe_stacks
    # moto creates a stack's resources lazily: a DescribeStacks from another thread (a parallel deploy's
    # poll) that reads the outputs of a stack still executing creates the resources they reference a
    # second time (seen: InvalidPermission.Duplicate, FlowLogAlreadyExists). CloudFormation has no such
    # race, so the emulator serialises execution and the reads of stacks.
    lock = threading.RLock()

    def describe_stacks(self: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            return original_describe(self, *args, **kwargs)

    CloudFormationResponse.describe_stacks = describe_stacks  # the response renders the outputs

    def execute_change_set(self: Any, change_set_name: str, stack_name: str | None = None) -> None:
        with lock:
            _execute_change_set(self, change_set_name, stack_name)

    def _execute_change_set(self: Any, change_set_name: str, stack_name: str | None = None) -> None:
        change_set = self.change_sets.get(change_set_name) or next(
            (c for c in self.change_sets.values() if c.change_set_name == change_set_name), None
        )
        try:
            original(self, change_set_name, stack_name)
            if change_set is not None:
                stack = self.stacks[change_set.stack_id]
                if change_set.change_set_type == "UPDATE":
                    # AWS applies an update's stack tags and parameters with it (moto keeps the old
                    # ones); deploy's fast path and release records read both back.
                    if change_set.tags:
                        stack.tags = dict(change_set.tags)
                    stack.parameters = change_set.parameters
                # moto keeps the outputs of the template the stack was made with (none, for a stack
                # made by a change set); AWS's are the executed template's.
                stack._parse_template()
                stack.output_map = stack._create_output_map()
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


def _alarms_in_stacks() -> None:
    """moto has no CloudFormation model of AWS::CloudWatch::Alarm, so a stack's alarm is skipped and a
    GetAtt of its Arn (the dashboard's alarm widget) fails the stack. Here an alarm in a stack is what
    CloudFormation returns for it: Ref its name, GetAtt Arn its ARN
    (https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-cloudwatch-alarm.html,
    return values). It is not put in CloudWatch: nothing here evaluates alarms."""
    from moto.cloudformation import parsing  # noqa: PLC0415
    from moto.core.common_models import CloudFormationModel  # noqa: PLC0415

    class StackAlarm(CloudFormationModel):
        def __init__(self, name: str, account_id: str, region_name: str) -> None:
            self.name = self.physical_resource_id = name
            self.arn = f"arn:aws:cloudwatch:{region_name}:{account_id}:alarm:{name}"

        @staticmethod
        def cloudformation_name_type() -> str:
            return "AlarmName"

        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::CloudWatch::Alarm"

        @classmethod
        def has_cfn_attr(cls, attr: str) -> bool:
            return attr == "Arn"

        def get_cfn_attribute(self, attribute_name: str) -> str:
            if attribute_name != "Arn":
                raise AttributeError(attribute_name)
            return self.arn

        @classmethod
        def create_from_cloudformation_json(  # type: ignore[override]
            cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **_: Any
        ) -> StackAlarm:
            name = cloudformation_json.get("Properties", {}).get("AlarmName") or resource_name
            return cls(name, account_id, region_name)

        @classmethod
        def update_from_cloudformation_json(  # type: ignore[override]
            cls,
            original_resource: Any,
            new_resource_name: str,
            cloudformation_json: Any,
            account_id: str,
            region_name: str,
        ) -> StackAlarm:
            name = cloudformation_json.get("Properties", {}).get("AlarmName") or original_resource.name
            return cls(name, account_id, region_name)

        @classmethod
        def delete_from_cloudformation_json(  # type: ignore[override]
            cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
        ) -> None:
            return None

    # moto reads the models once (lru_cache); the new one must be seen.
    for cached in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
        cached.cache_clear()


def _load_balancer_full_names() -> None:
    """`app/<name>/<id>` and `targetgroup/<name>/<id>`: the ARN after `loadbalancer/` and after the last
    colon (https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-elasticloadbalancingv2-loadbalancer.html,
    .../aws-resource-elasticloadbalancingv2-targetgroup.html, return values)."""
    from moto.elbv2.models import FakeLoadBalancer, FakeTargetGroup  # noqa: PLC0415

    balancer_attribute = FakeLoadBalancer.get_cfn_attribute

    def load_balancer(self: Any, attribute_name: str) -> Any:
        if attribute_name == "LoadBalancerFullName":
            return self.arn.split(":loadbalancer/", 1)[1]
        return balancer_attribute(self, attribute_name)

    def target_group(self: Any, attribute_name: str) -> Any:
        if attribute_name == "TargetGroupFullName":
            return self.arn.rsplit(":", 1)[1]
        if attribute_name == "TargetGroupName":
            return self.name
        raise AttributeError(attribute_name)

    FakeLoadBalancer.get_cfn_attribute = load_balancer
    FakeTargetGroup.has_cfn_attr = classmethod(
        lambda cls, attr: attr in ("TargetGroupFullName", "TargetGroupName")
    )
    FakeTargetGroup.get_cfn_attribute = target_group


def _delete_in_dependency_order() -> None:
    from moto.cloudformation.parsing import ResourceMap  # noqa: PLC0415

    def delete(self: Any) -> None:
        # moto's own loop (retry what fails while the count goes down), in CloudFormation's order.
        resources = {k: v for k, v in self._resource_json_map.items() if v.get("DeletionPolicy") != "Retain"}
        order = [n for n in deletion_order(self._resource_json_map) if n in resources]
        remaining, previous, last_exception = list(order), len(order) + 1, None
        while remaining and len(remaining) < previous:
            previous = len(remaining)
            for name in list(remaining):
                parsed = self._parsed_resources.get(name)
                try:
                    if not isinstance(parsed, str) and parsed is not None:
                        self._delete_resource(parsed, self._resource_json_map[parsed.logical_resource_id])
                        self._parsed_resources.pop(parsed.logical_resource_id)
                except Exception as exc:
                    if "not found" not in str(exc).lower():
                        last_exception = exc  # a dependency still there: the next pass tries again
                        continue
                    # Deleted outside the stack already: CloudFormation counts that as deleted.
                    self._parsed_resources.pop(parsed.logical_resource_id, None)
                remaining.remove(name)
        if remaining and last_exception is not None:
            raise last_exception

    ResourceMap.delete = delete


def _send_custom_resources_delete() -> None:
    """CloudFormation sends a custom resource's function a Delete request and waits for its answer."""
    from moto.awslambda.utils import get_backend  # noqa: PLC0415
    from moto.cloudformation.custom_model import CustomModel  # noqa: PLC0415

    created = CustomModel.create_from_cloudformation_json.__func__

    def create(cls: Any, name: str, cfn_json: Any, account_id: str, region_name: str, **kw: Any) -> Any:
        model = created(cls, name, cfn_json, account_id, region_name, **kw)
        model.deployctl_request = (account_id, kw["StackId"], kw["ResourceType"], cfn_json["Properties"])
        return model

    def delete(self: Any, account_id: str, region_name: str) -> None:
        import json  # noqa: PLC0415
        import uuid  # noqa: PLC0415

        account, stack_id, kind, properties = self.deployctl_request
        function = get_backend(account, region_name).get_function(properties["ServiceToken"])
        with _response_sink() as (url, answers):
            event = {
                "RequestType": "Delete",
                "ResponseURL": url,
                "StackId": stack_id,
                "RequestId": str(uuid.uuid4()),
                "LogicalResourceId": self.logical_id,
                "PhysicalResourceId": getattr(self, "deployctl_physical_id", None) or self.resource_name,
                "ResourceType": kind,
                "ResourceProperties": properties,
            }
            output, errored, logs = _run_inline_python(function, json.dumps(event))
        answer = answers[0] if answers else {"Status": "FAILED", "Reason": f"no response: {output}\n{logs}"}
        if errored or answer.get("Status") != "SUCCESS":
            raise RuntimeError(f"custom resource {self.logical_id} failed to delete: {answer.get('Reason')}")

    CustomModel.create_from_cloudformation_json = classmethod(create)
    CustomModel.delete = delete

    # On AWS a Delete names the resource by the PhysicalResourceId its function answered on Create
    # (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-requesttypes-delete.html);
    # moto keeps only its own generated name, so the answer's id is kept here and sent back.
    from moto.cloudformation.responses import CloudFormationResponse  # noqa: PLC0415

    answered = CloudFormationResponse.process_cfn_response

    def process_cfn_response(self: Any) -> Any:
        result = answered(self)
        if self._get_param("Status") == "SUCCESS" and self._get_param("PhysicalResourceId"):
            stack = self.cloudformation_backend.get_stack(self._get_param("StackId"))
            resource = stack.get_custom_resource(self._get_param("LogicalResourceId"))
            resource.deployctl_physical_id = self._get_param("PhysicalResourceId")
        return result

    CloudFormationResponse.process_cfn_response = process_cfn_response


@contextlib.contextmanager
def _response_sink() -> Any:
    """A one-request HTTP endpoint on 127.0.0.1 that keeps the JSON a custom resource PUTs to it."""
    import http.server  # noqa: PLC0415
    import json  # noqa: PLC0415

    answers: list[dict[str, Any]] = []

    class Sink(http.server.BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            answers.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/response", answers
    finally:
        server.shutdown()
        server.server_close()


def _force_delete_terminates_protected_instances() -> None:
    from moto.autoscaling.responses import AutoScalingResponse  # noqa: PLC0415

    original = AutoScalingResponse.delete_auto_scaling_group

    def delete_auto_scaling_group(self: Any) -> Any:
        if str(self._get_param("ForceDelete")).lower() == "true":
            group = self.autoscaling_backend.autoscaling_groups.get(self._get_param("AutoScalingGroupName"))
            for state in group.instance_states if group else []:
                state.protected_from_scale_in = False
        return original(self)

    AutoScalingResponse.delete_auto_scaling_group = delete_auto_scaling_group


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
    announce(endpoint)
    # Functions run in-process (see fix_moto) call AWS like any SDK: through AWS_ENDPOINT_URL.
    credentials = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}  # the emulator's
    os.environ.update(AWS_ENDPOINT_URL=endpoint, **credentials)
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
