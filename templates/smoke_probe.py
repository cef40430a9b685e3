"""The smoke probe of a stack with an internal load balancer: a Lambda function in its private subnets.

`deployctl smoke` cannot reach an internal endpoint (network.public: false) from a CI runner outside the
VPC, so it invokes this function, which runs the same checks (templates/runtime/smoke_probe.py, shipped
inline) from inside the network and returns the report. It calls only the load balancer: no AWS API,
so it needs neither a NAT route nor an interface endpoint, and the API key arrives in the payload.

- Its own security group, allowed out to the load balancer's listener ports only, and the load
  balancer's group allows it in (whatever allowed_cidrs says). DNS to the VPC resolver is not filtered
  by security groups (https://docs.aws.amazon.com/vpc/latest/userguide/vpc-security-groups.html).
- Its role: the network interface actions Lambda performs with it in a VPC (the actions of the managed
  AWSLambdaVPCAccessExecutionRole, without its account-wide logs:CreateLogGroup) and writes to its own
  log group, which has the stack's retention
  (https://docs.aws.amazon.com/lambda/latest/dg/configuration-vpc.html).
- No reserved concurrency (E9005); it is invoked once per deployment per smoke run.
- Tagged deployctl:role=smoke-probe: the bootstrap's smoke and deploy roles may invoke only functions
  with that tag and their environment's deployctl:environment tag.

Deleting the stack waits for Lambda to delete the function's Hyperplane network interfaces before the
security group and subnets can go: CloudFormation watches them (ec2:DescribeNetworkInterfaces, in the
delete handler's permissions the execution role is derived from), which can add tens of minutes to the
delete of an internal stack
(https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-lambda-function-vpcconfig.html).
"""

from __future__ import annotations

from pathlib import Path

from troposphere import GetAtt, Output, Ref, Tags, awslambda, ec2

from templates.context import Stack
from templates.iam import log_writer, role, statement
from templates.load_balancer import LoadBalancer
from templates.logs import add_log_group
from templates.network import Network
from templates.runtime import smoke_probe as checks

SOURCE = Path(__file__).parent / "runtime" / "smoke_probe.py"
OUTPUT = "SmokeProbeFunction"
FUNCTION = "SmokeProbeFunction"
ROLE_TAG = "deployctl:role"
ROLE_TAG_VALUE = "smoke-probe"
# Every check may use its whole request timeout once and the report still comes back before Lambda's
# ceiling stops the function (https://docs.aws.amazon.com/lambda/latest/dg/configuration-timeout.html):
# 6 x 120 s + 15 s = 735 s; the rest of the 900 s goes to the retries the caller asked for.
PROBE_TIMEOUT_SECONDS = 900
# urllib and one streamed answer at a time: the smallest size is plenty.
MEMORY_MB = 128
# What Lambda does with its execution role in a VPC: create, describe and delete the function's
# network interfaces and move their private addresses (AWSLambdaVPCAccessExecutionRole, v3).
# https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSLambdaVPCAccessExecutionRole.html
VPC_ACTIONS = (
    "ec2:AssignPrivateIpAddresses",
    "ec2:CreateNetworkInterface",
    "ec2:DeleteNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:UnassignPrivateIpAddresses",
)


def wanted(stack: Stack) -> bool:
    """A probe for every stack whose load balancer is internal: only inside the VPC reaches it."""
    return not stack.spec.network.public


def inline_source() -> str:
    """The handler as ZipFile text, its module docstring left in the repository (template size)."""
    source = SOURCE.read_text(encoding="utf-8")
    return "# templates/runtime/smoke_probe.py (docstring there)\n" + source.split('"""', 2)[2].lstrip()


def listener_ports(lb: LoadBalancer) -> tuple[int, ...]:
    """The ports the probe may call: 443 (and 80, its redirect) with a certificate, else 80."""
    return (443, 80) if lb.https else (80,)


def add_smoke_probe(stack: Stack, key_arn: object, network: Network, lb: LoadBalancer) -> awslambda.Function:
    group = stack.add(
        ec2.SecurityGroup(
            "SmokeProbeSecurityGroup",
            GroupDescription=f"{stack.name} smoke probe: out to the load balancer only",
            VpcId=network.vpc,
            SecurityGroupEgress=[
                ec2.SecurityGroupRule(
                    IpProtocol="tcp",
                    FromPort=port,
                    ToPort=port,
                    DestinationSecurityGroupId=Ref(lb.security_group),
                    Description="to the load balancer's listener",
                )
                for port in listener_ports(lb)
            ],
        )
    )
    for port in listener_ports(lb):
        stack.add(
            ec2.SecurityGroupIngress(
                f"LoadBalancerIngressFromSmokeProbe{port}",
                GroupId=Ref(lb.security_group),
                IpProtocol="tcp",
                FromPort=port,
                ToPort=port,
                SourceSecurityGroupId=Ref(group),
                Description="the smoke probe, from inside the VPC",
            )
        )
    logs = add_log_group(stack, key_arn, "SmokeProbeLogGroup", "smoke-probe")
    probe_role = role(
        stack,
        "SmokeProbeRole",
        "lambda.amazonaws.com",
        [
            # Network interface actions take no resource-level permissions that Lambda's calls could be
            # scoped by in advance (the interfaces do not exist yet): "*", as the managed policy has.
            statement(list(VPC_ACTIONS), "*"),
            log_writer(logs),
        ],
        skip={
            "CKV_AWS_111": "Lambda's network interface actions in a VPC: the interfaces have no ARN "
            "before Lambda creates them"
        },
    )
    function = stack.add(
        awslambda.Function(
            FUNCTION,
            Description=f"Smoke-tests {stack.name} from inside its VPC (deployctl smoke)",
            Runtime="python3.13",
            Handler="index.handler",
            Code=awslambda.Code(ZipFile=inline_source()),
            Role=GetAtt(probe_role, "Arn"),
            Timeout=PROBE_TIMEOUT_SECONDS,
            MemorySize=MEMORY_MB,
            Environment=awslambda.Environment(
                Variables={checks.TIMEOUT_VARIABLE: str(int(checks.REQUEST_TIMEOUT_SECONDS))}
            ),
            VpcConfig=awslambda.VPCConfig(SubnetIds=network.private_subnets, SecurityGroupIds=[Ref(group)]),
            LoggingConfig=awslambda.LoggingConfig(LogGroup=Ref(logs)),
            Tags=Tags({ROLE_TAG: ROLE_TAG_VALUE}),
        ),
        skip={
            "CKV_AWS_115": "invoked once per deployment by deployctl smoke; a reservation would take "
            "from the account's unreserved pool (E9005)",
            "CKV_AWS_116": "invoked synchronously: the caller gets the error and the report",
            "CKV_AWS_173": "its one variable is a request timeout, no secret",
            "CKV_AWS_272": "inline code from this repository, reviewed in pull requests; no signing profile",
        },
    )
    stack.template.add_output(
        Output(OUTPUT, Description="deployctl smoke invokes it inside the VPC", Value=Ref(function))
    )
    return function
