"""GPU instances in an autoscaling group: what the ecs-gpu and ec2 targets share.

Launch template from the ECS GPU-optimised AMI (NVIDIA driver, container runtime), IMDSv2 only, an
encrypted gp3 root volume big enough for the image and the weights, private subnets; a mixed instances
policy when the spec asks for Spot or for fallback instance types (`placement`).
"""

from __future__ import annotations

from typing import Any

from troposphere import Base64, GetAtt, Parameter, Ref, Sub, ec2, iam
from troposphere import autoscaling as asg

from templates.context import Stack
from templates.network import Network

GROUP = "InstanceGroup"  # the group's logical id: ec2 instances signal it by name
# A Spot instance gets two minutes' notice before EC2 takes it back
# (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/spot-instance-termination-notices.html). ECS
# Spot draining and the Auto Scaling group both deregister the target first and stop the container
# only after the target group's deregistration delay
# (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/spot-instance-draining-linux-container.html):
# the default 300 s outlives the instance, so in-flight requests would be cut at the two minutes
# anyway, with no SIGTERM before. 90 s lets streams finish and leaves the container 30 s to stop.
SPOT_DEREGISTRATION_DELAY_SECONDS = 90
GPU_AMI_PARAMETER = "/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id"


def add_gpu_group(
    stack: Stack,
    network: Network,
    *,
    instance_role: iam.Role,
    user_data: Sub,
    max_size: int,
    min_size: int = 0,
    hop_limit: int = 1,
    group_options: dict[str, Any] | None = None,
) -> asg.AutoScalingGroup:
    """The launch template and the group; `hop_limit` 2 lets a bridge-networked container reach IMDSv2."""
    compute = stack.spec.compute
    if compute.ami_id:
        # Pinned: a new AMI is a spec change, so a template change the plan shows before it replaces
        # every instance.
        image_id: Any = compute.ami_id
    else:
        # CloudFormation resolves an SSM parameter type again on every stack update
        # (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-supplied-parameter-types.html):
        # any update after AWS publishes a new recommended AMI replaces every instance. Validation
        # warns about this in prod; compute.ami_id pins it.
        stack.template.add_parameter(
            Parameter(
                "GpuAmiId",
                Type="AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>",
                Default=GPU_AMI_PARAMETER,
                Description="SSM parameter of the ECS GPU-optimised AMI"
                " (NVIDIA driver and container runtime).",
            )
        )
        image_id = Ref("GpuAmiId")
    profile = stack.add(iam.InstanceProfile("InstanceProfile", Roles=[Ref(instance_role)]))
    template = stack.add(
        ec2.LaunchTemplate(
            "LaunchTemplate",
            LaunchTemplateData=ec2.LaunchTemplateData(
                ImageId=image_id,
                # With overrides the group launches the overrides' types, not this one
                # (https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_LaunchTemplateOverrides.html);
                # it stays the first choice so that the template alone still says what runs (E9036).
                InstanceType=compute.types[0],
                IamInstanceProfile=ec2.IamInstanceProfile(Arn=GetAtt(profile, "Arn")),
                SecurityGroupIds=[Ref(network.workload_group)],
                MetadataOptions=ec2.MetadataOptions(
                    HttpTokens="required", HttpEndpoint="enabled", HttpPutResponseHopLimit=hop_limit
                ),
                Monitoring=ec2.Monitoring(Enabled=True),
                EbsOptimized=True,
                BlockDeviceMappings=[
                    ec2.LaunchTemplateBlockDeviceMapping(
                        DeviceName="/dev/xvda",
                        Ebs=ec2.EBSBlockDevice(
                            VolumeSize=compute.volume_gib,
                            VolumeType="gp3",
                            Encrypted=True,
                            DeleteOnTermination=True,
                        ),
                    )
                ],
                UserData=Base64(user_data),
            ),
        )
    )
    spec = asg.LaunchTemplateSpecification(
        LaunchTemplateId=Ref(template), Version=GetAtt(template, "LatestVersionNumber")
    )
    return stack.add(
        asg.AutoScalingGroup(
            GROUP,
            MinSize=str(min_size),
            MaxSize=str(max_size),
            VPCZoneIdentifier=network.private_subnets,
            MetricsCollection=[asg.MetricsCollection(Granularity="1Minute")],
            # Instances pull images and weights as they boot: not before their subnets can reach out.
            **({"DependsOn": list(network.routes)} if network.routes else {}),
            **placement(compute, spec),
            **(group_options or {}),
        )
    )


def placement(compute: Any, template: asg.LaunchTemplateSpecification) -> dict[str, Any]:
    """How the group picks its instances: the launch template alone for one on-demand type, else a mixed
    instances policy over the spec's types.

    - On-demand capacity follows the list's order: `prioritized` launches the first type and moves to the
      next only when EC2 cannot fulfil it (https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_InstancesDistribution.html).
    - With spot, the first `on_demand_base` instances are on-demand and everything above them Spot
      (OnDemandPercentageAboveBaseCapacity 0), from the pools with the most spare capacity at the lowest
      price (`price-capacity-optimized`, AWS's recommended Spot strategy).
    - Without spot, 100 % above a base of 0: every instance on-demand, in priority order.
    The launch template must not request Spot itself (InstanceMarketOptions): Auto Scaling refuses it
    under a mixed instances policy (E9035). Every type holds exactly one task or container: they share
    the GPU count (spec, E9037) and the ECS task fits the smallest (templates/targets/ecs_gpu.py, E9038),
    so ECS managed scaling, which sizes scale-out from the smallest and largest type of the group
    (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/managed-scaling-behavior.html), asks
    for one instance per pending task whichever type arrives. No WeightedCapacity: one instance is one
    unit, which CloudFormation's signal count and the rolling update's MinInstancesInService assume.
    Updates: CloudFormation marks the policy's properties "Some interruptions". Changed types or
    overrides leave running instances alone and apply to the next launches
    (https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_LaunchTemplate.html); a changed
    On-Demand/Spot split, or moving a group from a launch template to this policy, may replace instances
    to match, launching each new one before terminating an old one
    (https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_UpdateAutoScalingGroup.html). A new
    launch template version still goes through the ec2 target's rolling update.
    """
    types = compute.types
    if not compute.spot and len(types) == 1:
        return {"LaunchTemplate": template}
    distribution: dict[str, Any] = {
        "OnDemandBaseCapacity": compute.on_demand_base if compute.spot else 0,
        "OnDemandPercentageAboveBaseCapacity": 0 if compute.spot else 100,
    }
    if compute.spot:
        distribution["SpotAllocationStrategy"] = "price-capacity-optimized"
    if len(types) > 1:
        distribution["OnDemandAllocationStrategy"] = "prioritized"
    out: dict[str, Any] = {
        "MixedInstancesPolicy": asg.MixedInstancesPolicy(
            InstancesDistribution=asg.InstancesDistribution(**distribution),
            LaunchTemplate=asg.LaunchTemplate(
                LaunchTemplateSpecification=template,
                Overrides=[asg.LaunchTemplateOverrides(InstanceType=t) for t in types],
            ),
        )
    }
    if compute.spot:
        # Replace a Spot instance when AWS signals it is at risk, before the two-minute notice.
        out["CapacityRebalance"] = True
    return out


def scaling_ceiling(stack: Stack) -> int:
    """The most instances the spec can ask for, schedules included."""
    return max([stack.spec.scaling.max, *(s.max for s in stack.spec.scaling.schedules)])


# One GPU task fills one instance, so a deploy that starts the new task before stopping the old one
# (ECS MinimumHealthyPercent 100, or a rolling update keeping MinInstancesInService) needs one instance
# more than the most the service can run; without it a deploy at full scale can never place its task.
DEPLOY_HEADROOM = 1


def group_ceiling(stack: Stack) -> int:
    """The group's MaxSize: the scaling ceiling plus room for the one instance a deploy adds."""
    return scaling_ceiling(stack) + DEPLOY_HEADROOM
