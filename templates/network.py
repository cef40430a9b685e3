"""The network: a new VPC over two AZs, or the spec's existing VPC; workloads always in private subnets.

A new VPC gets public subnets for the load balancer and NAT gateways, private subnets for everything
else, flow logs, and optionally interface endpoints so that tasks reach ECR, Logs and Secrets Manager
without the internet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from troposphere import GetAtt, GetAZs, Ref, Select, Sub, ec2, iam

from templates.context import Stack
from templates.iam import placement
from templates.logs import add_log_group

VPC_CIDR = "10.0.0.0/16"
PUBLIC_CIDRS = ("10.0.0.0/20", "10.0.16.0/20")
PRIVATE_CIDRS = ("10.0.128.0/20", "10.0.144.0/20")
INTERFACE_ENDPOINTS = ("ecr.api", "ecr.dkr", "logs", "secretsmanager")


@dataclass(frozen=True)
class Network:
    vpc: Any
    cidr: Any | None  # None for an existing VPC: we do not know its range
    public_subnets: list[Any]
    private_subnets: list[Any]
    workload_group: ec2.SecurityGroup


def add_network(stack: Stack, log_group_key: Any, *, extra_endpoints: tuple[str, ...] = ()) -> Network:
    spec = stack.spec.network
    if spec.vpc == "new":
        vpc, cidr, public, private, route_tables = _new_vpc(stack, log_group_key)
    else:
        vpc, cidr, route_tables = spec.vpc, None, []
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
    network = Network(vpc if isinstance(vpc, str) else Ref(vpc), cidr, public, private, workload)
    if spec.vpc_endpoints:
        _endpoints(stack, network, route_tables, extra_endpoints)
    return network


def _new_vpc(stack: Stack, key: Any) -> tuple[Any, Any, list[Any], list[Any], list[Any]]:
    nat_count = stack.spec.network.nat_gateways
    vpc = stack.add(
        ec2.VPC("Vpc", CidrBlock=VPC_CIDR, EnableDnsHostnames=True, EnableDnsSupport=True),
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
                CidrBlock=PUBLIC_CIDRS[az],
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
    for az in range(2):
        subnet = stack.add(
            ec2.Subnet(
                f"PrivateSubnet{az + 1}",
                VpcId=Ref(vpc),
                CidrBlock=PRIVATE_CIDRS[az],
                AvailabilityZone=Select(az, GetAZs("")),
            )
        )
        routes = stack.add(ec2.RouteTable(f"PrivateRouteTable{az + 1}", VpcId=Ref(vpc)))
        stack.add(
            ec2.SubnetRouteTableAssociation(
                f"PrivateSubnet{az + 1}Routes", SubnetId=Ref(subnet), RouteTableId=Ref(routes)
            )
        )
        if nats:
            # With one NAT gateway both AZs share it; with two, each AZ keeps its own way out.
            stack.add(
                ec2.Route(
                    f"PrivateDefaultRoute{az + 1}",
                    RouteTableId=Ref(routes),
                    DestinationCidrBlock="0.0.0.0/0",
                    NatGatewayId=Ref(nats[min(az, len(nats) - 1)]),
                )
            )
        private.append(Ref(subnet))
        route_tables.append(Ref(routes))
    _flow_logs(stack, vpc, key)
    return vpc, GetAtt(vpc, "CidrBlock"), public, private, route_tables


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


def _endpoints(stack: Stack, network: Network, route_tables: list[Any], extra: tuple[str, ...]) -> None:
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
    if route_tables:
        stack.add(
            ec2.VPCEndpoint(
                "S3Endpoint",
                VpcId=network.vpc,
                ServiceName=Sub("com.amazonaws.${AWS::Region}.s3"),
                VpcEndpointType="Gateway",
                RouteTableIds=route_tables,
            )
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
            )
        )
