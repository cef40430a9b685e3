"""The Application Load Balancer in front of every deployment, and the only way in.

HTTPS with TLS 1.3/1.2 when the spec has a certificate (HTTP redirects to it), an idle timeout long
enough for a long generation, a security group limited to `allowed_cidrs`, access logs, and a target
group that health-checks the gateway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from troposphere import GetAtt, Join, Ref, Sub, ec2, route53, s3
from troposphere import elasticloadbalancingv2 as elb

from templates import buckets
from templates.context import Stack
from templates.network import Network
from tooling import catalog

GATEWAY_PORT = 8080
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
# A streamed answer from a large model can go quiet for minutes (long prompts, queueing); the ALB must
# not cut it. The gateway sends keep-alive comments well within this.
IDLE_TIMEOUT_SECONDS = 600
# AWS: a target's HTTP keep-alive must be longer than the ALB's idle timeout, or the ALB reuses a
# connection the target is closing and answers 502. The gateway's is set from this, never a literal.
# https://docs.aws.amazon.com/elasticloadbalancing/latest/application/application-load-balancers.html#connection-idle-timeout
GATEWAY_KEEP_ALIVE_SECONDS = IDLE_TIMEOUT_SECONDS + 5
# In-flight streams get this long to finish when a target is drained (scale-in, deploy).
DEREGISTRATION_DELAY_SECONDS = 300
REDIRECT_ONLY = "this listener only answers with a redirect to HTTPS on 443, where TLS 1.2+ is negotiated"


@dataclass(frozen=True)
class LoadBalancer:
    alb: elb.LoadBalancer
    target_group: elb.TargetGroup
    listener: elb.Listener
    security_group: ec2.SecurityGroup
    https: bool
    domain_name: str | None = None

    @property
    def dns_name(self) -> GetAtt:
        return GetAtt(self.alb, "DNSName")

    @property
    def full_name(self) -> GetAtt:
        return GetAtt(self.alb, "LoadBalancerFullName")

    @property
    def target_group_full_name(self) -> GetAtt:
        return GetAtt(self.target_group, "TargetGroupFullName")

    @property
    def request_label(self) -> Join:
        """The resource label ALBRequestCountPerTarget scaling needs: `<alb full name>/<tg full name>`."""
        return Join("/", [self.full_name, self.target_group_full_name])

    @property
    def url(self) -> Any:
        """The base URL clients call: the certificate's name over HTTPS, else the ALB's own over HTTP.

        TLS clients verify the certificate against the name they dial, and the ALB's DNS name is never
        on a user's certificate; validation requires domain_name with certificate_arn.
        """
        if self.https and self.domain_name:
            return f"https://{self.domain_name}"
        return Sub("http://${Dns}", Dns=self.dns_name)


def add_load_balancer(
    stack: Stack,
    network: Network,
    *,
    target_type: str,
    health_path: str,
    health_grace: bool = False,
    deregistration_delay: int = DEREGISTRATION_DELAY_SECONDS,
) -> LoadBalancer:
    spec = stack.spec.network
    https = spec.certificate_arn is not None
    group = stack.add(
        ec2.SecurityGroup(
            "LoadBalancerSecurityGroup",
            GroupDescription=f"{stack.name} load balancer: in from the allowed CIDRs only",
            VpcId=network.vpc,
            SecurityGroupIngress=[
                _ingress(cidr, port)
                for cidr in _allowed_cidrs(stack, network)
                for port in ((443, 80) if https else (80,))
            ],
            SecurityGroupEgress=[
                ec2.SecurityGroupRule(
                    IpProtocol="tcp",
                    FromPort=GATEWAY_PORT,
                    ToPort=GATEWAY_PORT,
                    DestinationSecurityGroupId=Ref(network.workload_group),
                    Description="to the gateway",
                )
            ],
        ),
        skip={
            "CKV_AWS_260": "port 80 only answers with a redirect to HTTPS"
            if https
            else "no network.certificate_arn in the spec: validation warns, and refuses it for public prod"
        },
    )
    stack.add(
        ec2.SecurityGroupIngress(
            "WorkloadIngressFromLoadBalancer",
            GroupId=Ref(network.workload_group),
            IpProtocol="tcp",
            FromPort=GATEWAY_PORT,
            ToPort=GATEWAY_PORT,
            SourceSecurityGroupId=Ref(group),
            Description="the gateway, from the load balancer",
        )
    )
    logs_bucket, logs_policy = _access_log_bucket(stack)
    attributes = {
        "idle_timeout.timeout_seconds": str(IDLE_TIMEOUT_SECONDS),
        "routing.http.drop_invalid_header_fields.enabled": "true",
        # Off, also in prod: a protected ALB cannot be deleted by CloudFormation, so a failed first
        # create could not roll back (ROLLBACK_FAILED, and every redeploy after it fails) and a prune
        # --yes would fail on it. Prod stacks get termination protection instead (tooling/deploy.py).
        "deletion_protection.enabled": "false",
        "access_logs.s3.enabled": "true",
        "access_logs.s3.bucket": Ref(logs_bucket),
        "access_logs.s3.prefix": "alb",
    }
    alb = stack.add(
        elb.LoadBalancer(
            "LoadBalancer",
            DependsOn=[logs_policy.title],
            Type="application",
            Scheme="internet-facing" if spec.public else "internal",
            Subnets=network.public_subnets if spec.public else network.private_subnets,
            SecurityGroups=[Ref(group)],
            LoadBalancerAttributes=[
                elb.LoadBalancerAttributes(Key=k, Value=v) for k, v in sorted(attributes.items())
            ],
        ),
        skip={
            "CKV_AWS_150": "a protected load balancer blocks the rollback of a failed create and a prune; "
            "prod stacks have CloudFormation termination protection instead"
        },
    )
    target_group = stack.add(
        elb.TargetGroup(
            "TargetGroup",
            VpcId=network.vpc,
            Port=GATEWAY_PORT,
            Protocol="HTTP",
            TargetType=target_type,
            HealthCheckPath=health_path,
            HealthCheckProtocol="HTTP",
            HealthCheckIntervalSeconds=15,
            HealthCheckTimeoutSeconds=5,
            HealthyThresholdCount=2,
            UnhealthyThresholdCount=3 if not health_grace else 4,
            Matcher=elb.Matcher(HttpCode="200"),
            TargetGroupAttributes=[
                elb.TargetGroupAttribute(
                    Key="deregistration_delay.timeout_seconds", Value=str(deregistration_delay)
                ),
                elb.TargetGroupAttribute(
                    Key="load_balancing.algorithm.type", Value="least_outstanding_requests"
                ),
            ],
        )
    )
    forward = [elb.Action(Type="forward", TargetGroupArn=Ref(target_group))]
    if https:
        listener = stack.add(
            elb.Listener(
                "HttpsListener",
                LoadBalancerArn=Ref(alb),
                Port=443,
                Protocol="HTTPS",
                SslPolicy=TLS_POLICY,
                Certificates=[elb.Certificate(CertificateArn=spec.certificate_arn)],
                DefaultActions=forward,
            )
        )
        stack.add(
            elb.Listener(
                "HttpRedirectListener",
                LoadBalancerArn=Ref(alb),
                Port=80,
                Protocol="HTTP",
                DefaultActions=[
                    elb.Action(
                        Type="redirect",
                        RedirectConfig=elb.RedirectConfig(
                            Protocol="HTTPS", Port="443", StatusCode="HTTP_301"
                        ),
                    )
                ],
            ),
            skip={"CKV_AWS_2": REDIRECT_ONLY, "CKV_AWS_103": REDIRECT_ONLY},
        )
    else:
        reason = "no network.certificate_arn in the spec: validation warns, and refuses it for public prod"
        listener = stack.add(
            elb.Listener(
                "HttpListener", LoadBalancerArn=Ref(alb), Port=80, Protocol="HTTP", DefaultActions=forward
            ),
            skip={"CKV_AWS_2": reason, "CKV_AWS_103": reason},
        )
    if spec.domain_name and spec.hosted_zone_id:
        _alias_record(stack, alb, spec.domain_name, spec.hosted_zone_id)
    return LoadBalancer(alb, target_group, listener, group, https, spec.domain_name)


def _alias_record(stack: Stack, alb: elb.LoadBalancer, name: str, zone: str) -> None:
    """`domain_name` -> the ALB, as a Route 53 alias A record (the ALB is IPv4-only: no AAAA).

    A record of that name and type already in the zone fails the create, which rolls back cleanly;
    a change of name or zone creates the new record before deleting the old one.
    https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/routing-to-elb-load-balancer.html
    """
    stack.add(
        route53.RecordSetType(
            "DnsRecord",
            HostedZoneId=zone,
            Name=name,
            Type="A",
            AliasTarget=route53.AliasTarget(
                DNSName=GetAtt(alb, "DNSName"),
                HostedZoneId=GetAtt(alb, "CanonicalHostedZoneID"),
                EvaluateTargetHealth=False,
            ),
        )
    )


def _allowed_cidrs(stack: Stack, network: Network) -> list[Any]:
    spec = stack.spec.network
    if spec.allowed_cidrs:
        return list(spec.allowed_cidrs)
    if spec.public:
        return ["0.0.0.0/0"]
    return [network.cidr]  # internal: the VPC itself (validation requires allowed_cidrs for an existing VPC)


def _ingress(cidr: Any, port: int) -> ec2.SecurityGroupRule:
    rule = {"IpProtocol": "tcp", "FromPort": port, "ToPort": port}
    description = "HTTPS" if port == 443 else "HTTP (redirected to HTTPS when there is a certificate)"
    if isinstance(cidr, str) and ":" in cidr:
        return ec2.SecurityGroupRule(CidrIpv6=cidr, Description=description, **rule)
    return ec2.SecurityGroupRule(CidrIp=cidr, Description=description, **rule)


def _access_log_bucket(stack: Stack) -> tuple[s3.Bucket, s3.BucketPolicy]:
    days = stack.spec.observability.log_retention_days
    bucket = stack.add(
        s3.Bucket(
            "AccessLogBucket",
            DeletionPolicy="Retain",
            UpdateReplacePolicy="Retain",
            # ALB access logs support only S3-managed keys (SSE-S3), not KMS.
            **buckets.private("AES256"),
            LifecycleConfiguration=s3.LifecycleConfiguration(
                Rules=[s3.LifecycleRule(Id="expire-access-logs", Status="Enabled", ExpirationInDays=days)]
            ),
        ),
        skip={
            "CKV_AWS_18": "this bucket holds access logs; logging it would recurse",
            "CKV_AWS_21": "access logs are written once and expire; versions would only add cost",
            "CKV_AWS_145": "ALB access logs can only be delivered with SSE-S3, not KMS",
        },
    )
    account = catalog.ELB_LOG_ACCOUNTS.get(stack.spec.region)
    writer = (
        {"AWS": Sub(f"arn:${{AWS::Partition}}:iam::{account}:root")}
        if account
        else {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"}
    )
    objects = Sub("${Arn}/alb/AWSLogs/${AWS::AccountId}/*", Arn=GetAtt(bucket, "Arn"))
    policy = stack.add(
        s3.BucketPolicy(
            "AccessLogBucketPolicy",
            Bucket=Ref(bucket),
            PolicyDocument={
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "LoadBalancerWritesLogs",
                        "Effect": "Allow",
                        "Principal": writer,
                        "Action": "s3:PutObject",
                        "Resource": objects,
                    },
                    buckets.tls_only(bucket),
                ],
            },
        )
    )
    return bucket, policy
