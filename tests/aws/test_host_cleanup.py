"""ecs-gpu's host-cleanup custom resource (templates/runtime/host_cleanup.py).

Against botocore's Stubber with the responses the EC2 Auto Scaling and ECS API references document
(moto deletes a group at once and has no "Delete in progress" state, no ScalingActivityInProgress),
and against the emulator for a group whose instances are protected from scale-in.
"""

from __future__ import annotations

import datetime
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from templates.runtime import host_cleanup

GROUP = "dev-gpu-InstanceGroup-1A2B3C"
CLUSTER = "dev-gpu-Cluster-4D5E6F"
NOW = datetime.datetime(2026, 11, 30, tzinfo=datetime.UTC)
NAMES = {"AutoScalingGroupNames": [GROUP]}
FORCE = {"AutoScalingGroupName": GROUP, "ForceDelete": True}
INSTANCE_ARN = f"arn:aws:ecs:us-east-1:123456789012:container-instance/{CLUSTER}/0123456789abcdef"


def event(kind: str = "Delete", **extra: Any) -> dict[str, Any]:
    return {
        "RequestType": kind,
        "ResponseURL": "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/x",
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/dev-gpu/1",
        "RequestId": "req-1",
        "LogicalResourceId": "HostCleanup",
        "ResourceType": "Custom::HostCleanup",
        "ResourceProperties": {"ServiceToken": "arn:fn", "AutoScalingGroupName": GROUP, "Cluster": CLUSTER},
        **extra,
    }


def context(remaining_ms: int = 900_000) -> SimpleNamespace:
    return SimpleNamespace(get_remaining_time_in_millis=lambda: remaining_ms)


def group(status: str | None = None) -> dict[str, Any]:
    described = {
        "AutoScalingGroupName": GROUP, "MinSize": 0, "MaxSize": 3, "DesiredCapacity": 0,
        "DefaultCooldown": 300, "AvailabilityZones": ["us-east-1a"], "HealthCheckType": "EC2",
        "CreatedTime": NOW, "NewInstancesProtectedFromScaleIn": True,
    }  # fmt: skip
    if status:
        described["Status"] = status
    return described


@pytest.fixture
def clients() -> Iterator[tuple[Any, Any, Stubber, Stubber]]:
    keys = {"region_name": "us-east-1", "aws_access_key_id": "x", "aws_secret_access_key": "x"}
    autoscaling, ecs = boto3.client("autoscaling", **keys), boto3.client("ecs", **keys)
    with Stubber(autoscaling) as asg_stub, Stubber(ecs) as ecs_stub:
        yield autoscaling, ecs, asg_stub, ecs_stub
        asg_stub.assert_no_pending_responses()
        ecs_stub.assert_no_pending_responses()


def call(clients: Any, request: dict[str, Any], remaining_ms: int = 900_000) -> tuple[dict[str, Any], list]:
    autoscaling, ecs, _, _ = clients
    sent: list[tuple[str, str, str]] = []
    sleeps: list[float] = []
    host_cleanup.handler(
        request,
        context(remaining_ms),
        autoscaling=autoscaling,
        ecs=ecs,
        send=lambda e, status, reason, physical: sent.append((status, reason, physical)),
        sleep=sleeps.append,
    )
    (answer,) = sent
    return {"Status": answer[0], "Reason": answer[1], "PhysicalResourceId": answer[2]}, sleeps


def test_delete_force_deletes_the_group_waits_for_it_and_deregisters_strays(clients: Any) -> None:
    _, _, asg, ecs = clients
    asg.add_response("delete_auto_scaling_group", {}, FORCE)
    # DescribeAutoScalingGroups shows a group being deleted with Status "Delete in progress".
    asg.add_response(
        "describe_auto_scaling_groups",
        {"AutoScalingGroups": [group("Delete in progress")]},
        NAMES,
    )
    asg.add_response("describe_auto_scaling_groups", {"AutoScalingGroups": []}, NAMES)
    ecs.add_response(
        "list_container_instances", {"containerInstanceArns": [INSTANCE_ARN]}, {"cluster": CLUSTER}
    )
    ecs.add_response(
        "deregister_container_instance",
        {"containerInstance": {"containerInstanceArn": INSTANCE_ARN, "status": "INACTIVE"}},
        {"cluster": CLUSTER, "containerInstance": INSTANCE_ARN, "force": True},
    )
    answer, sleeps = call(clients, event(PhysicalResourceId=GROUP))
    assert answer == {"Status": "SUCCESS", "Reason": "", "PhysicalResourceId": GROUP}
    assert sleeps == [host_cleanup.POLL_SECONDS]


def test_a_replacement_delete_removes_the_old_group_its_physical_id_names(clients: Any) -> None:
    """After the group is replaced, CloudFormation's cleanup-phase Delete carries the old physical id;
    the group deleted is that one, never the name in ResourceProperties (the new group)."""
    _, _, asg, ecs = clients
    old = "dev-gpu-InstanceGroup-OLD999"
    asg.add_response("delete_auto_scaling_group", {}, {"AutoScalingGroupName": old, "ForceDelete": True})
    asg.add_response(
        "describe_auto_scaling_groups", {"AutoScalingGroups": []}, {"AutoScalingGroupNames": [old]}
    )
    ecs.add_response("list_container_instances", {"containerInstanceArns": []}, {"cluster": CLUSTER})
    answer, _ = call(clients, event(PhysicalResourceId=old))
    assert answer == {"Status": "SUCCESS", "Reason": "", "PhysicalResourceId": old}


def test_delete_retries_while_a_scaling_activity_runs_and_accepts_a_group_already_gone(clients: Any) -> None:
    _, _, asg, ecs = clients
    expected = FORCE
    asg.add_client_error(
        "delete_auto_scaling_group", "ScalingActivityInProgress",
        "You cannot delete an AutoScalingGroup while there are scaling activities in progress",
        400, expected,
    )  # fmt: skip
    asg.add_client_error(
        "delete_auto_scaling_group", "ValidationError",
        f"AutoScalingGroup name not found - AutoScalingGroup '{GROUP}' not found", 400, expected,
    )  # fmt: skip
    asg.add_response("describe_auto_scaling_groups", {"AutoScalingGroups": []}, NAMES)
    ecs.add_client_error(
        "list_container_instances",
        "ClusterNotFoundException",
        "Cluster not found.",
        400,
        {"cluster": CLUSTER},
    )
    answer, sleeps = call(clients, event(PhysicalResourceId=GROUP))
    assert answer["Status"] == "SUCCESS"
    assert sleeps == [host_cleanup.POLL_SECONDS]


def test_a_delete_that_cannot_finish_fails_visibly(clients: Any) -> None:
    _, _, asg, _ = clients
    asg.add_client_error(
        "delete_auto_scaling_group", "AccessDenied", "not authorized to perform: autoscaling:Delete", 403,
        FORCE,
    )  # fmt: skip
    answer, _ = call(clients, event(PhysicalResourceId=GROUP))
    assert answer["Status"] == "FAILED" and "AccessDenied" in answer["Reason"]


def test_a_group_still_deleting_when_time_runs_out_fails_before_lambda_times_out(clients: Any) -> None:
    _, _, asg, _ = clients
    asg.add_response("delete_auto_scaling_group", {}, FORCE)
    asg.add_response(
        "describe_auto_scaling_groups",
        {"AutoScalingGroups": [group("Delete in progress")]},
        NAMES,
    )
    answer, _ = call(clients, event(PhysicalResourceId=GROUP), remaining_ms=30_000)
    assert answer["Status"] == "FAILED" and "still being deleted" in answer["Reason"]


@pytest.mark.parametrize("kind", ["Create", "Update"])
def test_create_and_update_touch_nothing(clients: Any, kind: str) -> None:
    answer, _ = call(clients, event(kind))
    assert answer == {"Status": "SUCCESS", "Reason": "", "PhysicalResourceId": GROUP}


def test_the_response_is_the_object_cloudformation_documents() -> None:
    received: list[tuple[dict[str, str], dict[str, Any]]] = []

    class Sink(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append((dict(self.headers), body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        request = event(ResponseURL=f"http://127.0.0.1:{server.server_address[1]}/signed?X-Amz-Signature=1")
        host_cleanup.respond(request, "SUCCESS", "", GROUP)
    finally:
        server.shutdown()
        server.server_close()
    ((headers, body),) = received
    assert headers["Content-Type"] == ""  # the presigned S3 URL is signed without a content type
    assert body == {
        "Status": "SUCCESS",
        "Reason": "see the function's log",
        "PhysicalResourceId": GROUP,
        "StackId": request["StackId"],
        "RequestId": "req-1",
        "LogicalResourceId": "HostCleanup",
    }


@pytest.mark.slow
def test_in_the_emulator_protected_instances_go_with_the_group(aws_env: str) -> None:
    ec2 = boto3.client("ec2", region_name="us-east-1")
    autoscaling = boto3.client("autoscaling", region_name="us-east-1")
    ecs = boto3.client("ecs", region_name="us-east-1")
    ecs.create_cluster(clusterName=CLUSTER)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    template = ec2.create_launch_template(
        LaunchTemplateName="gpu", LaunchTemplateData={"ImageId": image, "InstanceType": "g5.xlarge"}
    )["LaunchTemplate"]["LaunchTemplateId"]
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=GROUP, MinSize=0, MaxSize=3, DesiredCapacity=2,
        LaunchTemplate={"LaunchTemplateId": template}, AvailabilityZones=["us-east-1a"],
        NewInstancesProtectedFromScaleIn=True,
    )  # fmt: skip
    instances = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP])["AutoScalingGroups"][
        0
    ]["Instances"]
    assert len(instances) == 2 and all(i["ProtectedFromScaleIn"] for i in instances)
    sent: list[str] = []
    host_cleanup.handler(
        event(PhysicalResourceId=GROUP),
        context(),
        send=lambda e, status, reason, physical: sent.append(status),
    )
    assert sent == ["SUCCESS"]
    assert autoscaling.describe_auto_scaling_groups(**NAMES)["AutoScalingGroups"] == []
    ids = [i["InstanceId"] for i in instances]
    states = {
        i["State"]["Name"]
        for r in ec2.describe_instances(InstanceIds=ids)["Reservations"]
        for i in r["Instances"]
    }
    assert states == {"terminated"}
