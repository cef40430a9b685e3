"""The network: a new VPC over two AZs, or the spec's existing VPC; workloads always in private subnets.

A new VPC (`network.vpc_cidr`) gets public subnets for the load balancer and NAT gateways, private
subnets for everything else, flow logs, the S3 gateway endpoint (free: ECR image layers and s3://
weights stay off the NAT gateway), and optionally interface endpoints so that tasks reach ECR, Logs
and Secrets Manager without the internet. In a VPC we do not own, interface endpoints get private DNS
only when the spec asks (`endpoint_private_dns`): a VPC takes one private-DNS endpoint per service.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from troposphere import GetAtt, GetAZs, Ref, Select, Sub, ec2, iam

from templates.context import Stack
from templates.iam import placement
from templates.logs import add_log_group

# The VPC's range in sixteenths: public subnets the first two, private ones the two from the middle,
# the rest free for more AZs or subnets later (10.0.0.0/16 gives 10.0.0.0/20, 10.0.16.0/20, 10.0.128.0/20
# and 10.0.144.0/20). tooling/spec.py bounds vpc_cidr so that each is at least a /26.
SUBNET_BITS = 4
PUBLIC_SLOTS = (0, 1)
PRIVATE_SLOTS = (8, 9)
# The metadata that records an explicit request for private DNS (checked by cfn rule E9006).
PRIVATE_DNS_ASKED = "explicit"
INTERFACE_ENDPOINTS = ("ecr.api", "ecr.dkr", "logs", "secretsmanager")


@dataclass(frozen=True)
class Network:
    vpc: Any
    cidr: Any | None  # None for an existing VPC: we do not know its range
    public_subnets: list[Any]
    private_subnets: list[Any]
    workload_group: ec2.SecurityGroup
    # Logical ids of the private subnets' route associations and default routes in a VPC we create:
    # instances that need the network at boot depend on them, or they may start before the NAT route.
    routes: tuple[str, ...] = ()


def subnet_cidrs(vpc_cidr: str) -> tuple[list[str], list[str]]:
    """(public, private) subnet ranges of a new VPC, derived from its range."""
    pieces = list(ipaddress.ip_network(vpc_cidr).subnets(prefixlen_diff=SUBNET_BITS))
    return [str(pieces[i]) for i in PUBLIC_SLOTS], [str(pieces[i]) for i in PRIVATE_SLOTS]


def interface_endpoints_wanted(stack: Stack) -> bool:
    """Interface endpoints (with private DNS): always asked for in a new VPC, explicitly in another."""
    spec = stack.spec.network
    return spec.vpc_endpoints and (spec.vpc == "new" or bool(spec.endpoint_private_dns))


def add_network(stack: Stack, log_group_key: Any, *, extra_endpoints: tuple[str, ...] = ()) -> Network:
    spec = stack.spec.network
    if spec.vpc == "new":
        vpc, cidr, public, private, route_tables, routes = _new_vpc(stack, log_group_key)
    else:
        vpc, cidr, route_tables, routes = spec.vpc, None, [], ()
        public, private = list(spec.public_subnets), list(spec.private_subnets)
    workload = stack.add(
        ec2.SecurityGroup(
            "WorkloadSecurityGroup",
            GroupDescription=f"{stack.name} tasks and instances: in from the load balancer only",
            VpcId=vpc if isinstance(vpc, str) else Ref(vpc),
            SecurityGroupEgress=[
                ec2.SecurityGroupRule(
                    IpProtocol="tcp",
                    FromPort=443,
                    ToPort=443,
                    CidrIp="0.0.0.0/0",
                    Description="HTTPS out: AWS APIs, model weights, the external provider",
                )
            ],
        )
    )
    network = Network(vpc if isinstance(vpc, str) else Ref(vpc), cidr, public, private, workload, routes)
    if route_tables:
        _s3_gateway_endpoint(stack, network, route_tables)
    if interface_endpoints_wanted(stack):
        _endpoints(stack, network, extra_endpoints)
    return network


def _new_vpc(stack: Stack, key: Any) -> tuple[Any, Any, list[Any], list[Any], list[Any], tuple[str, ...]]:
    nat_count = stack.spec.network.nat_gateways
    public_cidrs, private_cidrs = subnet_cidrs(stack.spec.network.vpc_cidr)
    vpc = stack.add(
        ec2.VPC("Vpc", CidrBlock=stack.spec.network.vpc_cidr, EnableDnsHostnames=True, EnableDnsSupport=True),
    )
    gateway = stack.add(ec2.InternetGateway("InternetGateway"))
    attachment = stack.add(
        ec2.VPCGatewayAttachment("InternetGatewayAttachment", VpcId=Ref(vpc), InternetGatewayId=Ref(gateway))
    )
    public_routes = stack.add(ec2.RouteTable("PublicRouteTable", VpcId=Ref(vpc)))
    stack.add(
        ec2.Route(
            "PublicDefaultRoute",
            DependsOn=attachment.title,
            RouteTableId=Ref(public_routes),
            DestinationCidrBlock="0.0.0.0/0",
            GatewayId=Ref(gateway),
        )
    )
    public, private, route_tables, nats = [], [], [], []
    for az in range(2):
        subnet = stack.add(
            ec2.Subnet(
                f"PublicSubnet{az + 1}",
                VpcId=Ref(vpc),
                CidrBlock=public_cidrs[az],
                AvailabilityZone=Select(az, GetAZs("")),
                MapPublicIpOnLaunch=False,
            )
        )
        stack.add(
            ec2.SubnetRouteTableAssociation(
                f"PublicSubnet{az + 1}Routes", SubnetId=Ref(subnet), RouteTableId=Ref(public_routes)
            )
        )
        public.append(Ref(subnet))
        if az < nat_count:
            eip = stack.add(ec2.EIP(f"NatAddress{az + 1}", Domain="vpc", DependsOn=attachment.title))
            nats.append(
                stack.add(
                    ec2.NatGateway(
                        f"NatGateway{az + 1}", AllocationId=GetAtt(eip, "AllocationId"), SubnetId=Ref(subnet)
                    )
                )
            )
    route_ids: list[str] = []
    for az in range(2):
        subnet = stack.add(
            ec2.Subnet(
                f"PrivateSubnet{az + 1}",
                VpcId=Ref(vpc),
                CidrBlock=private_cidrs[az],
                AvailabilityZone=Select(az, GetAZs("")),
            )
        )
        routes = stack.add(ec2.RouteTable(f"PrivateRouteTable{az + 1}", VpcId=Ref(vpc)))
        association = stack.add(
            ec2.SubnetRouteTableAssociation(
                f"PrivateSubnet{az + 1}Routes", SubnetId=Ref(subnet), RouteTableId=Ref(routes)
            )
        )
        route_ids.append(association.title)
        if nats:
            # With one NAT gateway both AZs share it; with two, each AZ keeps its own way out.
            default = stack.add(
                ec2.Route(
                    f"PrivateDefaultRoute{az + 1}",
                    RouteTableId=Ref(routes),
                    DestinationCidrBlock="0.0.0.0/0",
                    NatGatewayId=Ref(nats[min(az, len(nats) - 1)]),
                )
            )
            route_ids.append(default.title)
        private.append(Ref(subnet))
        route_tables.append(Ref(routes))
    _flow_logs(stack, vpc, key)
    return vpc, GetAtt(vpc, "CidrBlock"), public, private, route_tables, tuple(route_ids)


def _flow_logs(stack: Stack, vpc: ec2.VPC, key: Any) -> None:
    group = add_log_group(stack, key, "FlowLogGroup", "vpc-flow")
    role = stack.add(
        iam.Role(
            "FlowLogRole",
            **placement(),
            AssumeRolePolicyDocument={
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "vpc-flow-logs.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                        "Condition": {"StringEquals": {"aws:SourceAccount": Ref("AWS::AccountId")}},
                    }
                ],
            },
            Policies=[
                iam.Policy(
                    PolicyName="write-flow-logs",
                    PolicyDocument={
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": [
                                    "logs:CreateLogStream",
                                    "logs:PutLogEvents",
                                    "logs:DescribeLogStreams",
                                ],
                                "Resource": [GetAtt(group, "Arn"), Sub("${G}:*", G=GetAtt(group, "Arn"))],
                            }
                        ],
                    },
                )
            ],
        )
    )
    stack.add(
        ec2.FlowLog(
            "VpcFlowLog",
            ResourceId=Ref(vpc),
            ResourceType="VPC",
            TrafficType="REJECT",
            LogDestinationType="cloud-watch-logs",
            LogGroupName=Ref(group),
            DeliverLogsPermissionArn=GetAtt(role, "Arn"),
        )
    )


def _s3_gateway_endpoint(stack: Stack, network: Network, route_tables: list[Any]) -> None:
    """Free, and on the private route tables: ECR keeps image layers in S3, so every pull of the
    ~10 GB vLLM image (and s3:// weights) would otherwise go through the NAT gateway at per-GB prices.
    No endpoint policy: the default allows the ECR layer bucket (prod-<region>-starport-layer-bucket)
    and the weights' bucket, which IAM already limits.
    https://docs.aws.amazon.com/AmazonECR/latest/userguide/vpc-endpoints.html#ecr-setting-up-s3-gateway
    """
    stack.add(
        ec2.VPCEndpoint(
            "S3Endpoint",
            VpcId=network.vpc,
            ServiceName=Sub("com.amazonaws.${AWS::Region}.s3"),
            VpcEndpointType="Gateway",
            RouteTableIds=route_tables,
        )
    )


def _endpoints(stack: Stack, network: Network, extra: tuple[str, ...]) -> None:
    group = stack.add(
        ec2.SecurityGroup(
            "EndpointSecurityGroup",
            GroupDescription=f"{stack.name} VPC endpoints: HTTPS from the workloads",
            VpcId=network.vpc,
            SecurityGroupIngress=[
                ec2.SecurityGroupRule(
                    IpProtocol="tcp",
                    FromPort=443,
                    ToPort=443,
                    SourceSecurityGroupId=Ref(network.workload_group),
                    Description="HTTPS from tasks and instances",
                )
            ],
            SecurityGroupEgress=[
                ec2.SecurityGroupRule(
                    IpProtocol="-1", CidrIp="127.0.0.1/32", Description="no traffic starts at an endpoint"
                )
            ],
        )
    )
    # In a VPC we do not own, each endpoint says who asked for its private DNS: the spec, not a default.
    asked = (
        {"Metadata": {"deployctl": {"endpoint_private_dns": PRIVATE_DNS_ASKED}}}
        if isinstance(network.vpc, str)
        else {}
    )
    for service in (*INTERFACE_ENDPOINTS, *extra):
        logical = "".join(part.capitalize() for part in service.replace("-", ".").split(".")) + "Endpoint"
        stack.add(
            ec2.VPCEndpoint(
                logical,
                VpcId=network.vpc,
                ServiceName=Sub("com.amazonaws.${AWS::Region}." + service),
                VpcEndpointType="Interface",
                PrivateDnsEnabled=True,
                SubnetIds=network.private_subnets,
                SecurityGroupIds=[Ref(group)],
                **asked,
            )
        )
