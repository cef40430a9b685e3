"""CloudFormation custom resource of `ecs-gpu`: on Delete, force-delete the GPU Auto Scaling group.

Why: ECS managed termination protection keeps every instance that ran a task protected from scale-in
until ECS itself lifts it, some minutes after the task stops. A stack delete (or the rollback of a
failed create, or a --prune) removes the service, the capacity provider association and the capacity
provider within seconds, so nothing lifts it any more; CloudFormation then scales the group to zero and
waits for instances that can never terminate. ECS managed draining's lifecycle hook (3600 s heartbeat)
would hold them in Terminating:Wait as well. This is AWS's published teardown for capacity providers
(https://containersonaws.com/pattern/ecs-ec2-capacity-provider-scaling, linked by the ECS team in
https://github.com/aws/aws-cdk/issues/14732): DeleteAutoScalingGroup with ForceDelete terminates the
instances without waiting on scale-in protection or termination lifecycle hooks
(https://docs.aws.amazon.com/autoscaling/ec2/userguide/resource-deletion-protection.html,
https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_DeleteAutoScalingGroup.html).
The template orders it after the service and the capacity provider and before the cluster.

Create and Update do nothing. Shipped inline (ZipFile); it answers CloudFormation itself with the
documented response object (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-responses.html).
"""

import json
import time
import urllib.request

import boto3

POLL_SECONDS = 10
MARGIN_MS = 60_000  # answer CloudFormation before Lambda's own timeout


def handler(event, context, autoscaling=None, ecs=None, send=None, sleep=time.sleep):
    props = event["ResourceProperties"]
    group, cluster = props["AutoScalingGroupName"], props["Cluster"]
    # The group's name is the physical id: when it changes, CloudFormation sends a Delete for the old
    # physical id in its cleanup phase, and the old group goes the same way. The Delete names the
    # resource to remove by PhysicalResourceId
    # (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-requesttypes-delete.html);
    # its properties may already describe the replacement, so the group deleted is the physical id's.
    physical = event.get("PhysicalResourceId") if event["RequestType"] == "Delete" else group
    if event["RequestType"] == "Delete" and physical:
        group = physical
    status, reason = "SUCCESS", ""
    try:
        if event["RequestType"] == "Delete":
            destroy(
                group,
                cluster,
                autoscaling or boto3.client("autoscaling"),
                ecs or boto3.client("ecs"),
                lambda: context.get_remaining_time_in_millis() > MARGIN_MS,
                sleep,
            )
    except Exception as exc:  # anything unexpected fails the delete visibly; a retry runs this again
        status, reason = "FAILED", type(exc).__name__ + ": " + str(exc)
    (send or respond)(event, status, reason, physical or group)


def destroy(group, cluster, autoscaling, ecs, time_left, sleep):
    while True:
        try:
            autoscaling.delete_auto_scaling_group(AutoScalingGroupName=group, ForceDelete=True)
            break
        except autoscaling.exceptions.ScalingActivityInProgressFault:
            if not time_left():
                raise
            sleep(POLL_SECONDS)
        except autoscaling.exceptions.ClientError as exc:
            if "not found" in str(exc):
                break  # already gone: a retried delete, or never created
            raise
    while autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"]:
        if not time_left():
            raise TimeoutError("the Auto Scaling group " + group + " is still being deleted")
        sleep(POLL_SECONDS)
    # ECS deregisters terminated instances itself, except those whose agent had lost its connection
    # (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DeregisterContainerInstance.html);
    # any left would make the cluster's deletion fail.
    try:
        pages = ecs.get_paginator("list_container_instances").paginate(cluster=cluster)
        arns = [arn for page in pages for arn in page["containerInstanceArns"]]
    except ecs.exceptions.ClusterNotFoundException:
        return
    for arn in arns:
        ecs.deregister_container_instance(cluster=cluster, containerInstance=arn, force=True)


def respond(event, status, reason, physical):
    body = json.dumps(
        {
            "Status": status,
            "Reason": reason or "see the function's log",
            "PhysicalResourceId": physical,
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
        }
    ).encode()
    headers = {"Content-Type": "", "Content-Length": str(len(body))}
    request = urllib.request.Request(event["ResponseURL"], data=body, method="PUT", headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()
