"""`sagemaker`: a SageMaker real-time endpoint running the vLLM image, our gateway on Fargate in front.

SageMaker strips the Authorization header and authenticates callers with IAM, so API keys cannot be
checked inside the endpoint: the gateway checks them and calls InvokeEndpoint with its task role.
"""

from __future__ import annotations

import hashlib

from troposphere import GetAtt, Ref, Sub, logs, sagemaker

from templates import ecs as ecs_parts
from templates.autoscaling import add_application_scaling
from templates.context import Stack
from templates.engine import engine_environment
from templates.fargate import GatewaySize, add_gateway_service
from templates.iam import log_writer, pull_statements, role, secret_readers_by_name, statement
from templates.images import VLLM_REPOSITORY, image
from templates.targets.shared import Shared
from templates.weights import weight_readers

# Large models download and load for a long time before /ping answers; SageMaker allows up to an hour.
STARTUP_HEALTH_CHECK_SECONDS = 3600
MODEL_DOWNLOAD_SECONDS = 3600
VARIANT = "AllTraffic"
# InvokeEndpoint: the container answers within 60 s, and AWS advises a 70 s socket timeout for the SDK
# (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_runtime_InvokeEndpoint.html); botocore's
# read timeout is per read, so a stream whose parts keep coming is not cut by it.
UPSTREAM_READ_TIMEOUT_SECONDS = 70
GATEWAY_SIZE = GatewaySize(cpu=1024, memory=2048, architecture="arm64", storage_gib=21)
# CreateEndpoint: EndpointName is at most 63 characters of ^[a-zA-Z0-9](-*[a-zA-Z0-9])*
# (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateEndpoint.html).
ENDPOINT_NAME_MAX = 63
# SageMaker writes the endpoint's container logs to this group, creating it (without retention or
# encryption) if it is missing (https://docs.aws.amazon.com/sagemaker/latest/dg/logging-cloudwatch.html).
ENDPOINT_LOG_GROUP_PREFIX = "/aws/sagemaker/Endpoints/"


def instance_type_label(instance_type: str) -> str:
    """`ml.g5.2xlarge` as an endpoint name allows it (no dots): `g5-2xlarge`."""
    return instance_type.removeprefix("ml.").replace(".", "-")


def endpoint_name(stack_name: str, instance_type: str) -> str:
    """`<stack>-<instance type>`: a new instance type is a new endpoint, never an update of this one.

    Application Auto Scaling fails an endpoint update that changes the instance type of a variant it
    scales (https://docs.aws.amazon.com/sagemaker/latest/dg/endpoint-scaling-update.html). With the type
    in the name, CloudFormation replaces the endpoint instead: it creates the new one (and its new scalable
    target, whose ResourceId names it), moves the gateway to it, then deletes the old one, whose scalable
    target Application Auto Scaling deregisters itself. A name too long keeps a hash of the stack name.
    """
    label = instance_type_label(instance_type)
    name = f"{stack_name}-{label}"
    if len(name) <= ENDPOINT_NAME_MAX:
        return name
    digest = hashlib.sha256(stack_name.encode()).hexdigest()[:8]
    keep = ENDPOINT_NAME_MAX - len(label) - len(digest) - 2
    return f"{stack_name[:keep].rstrip('-')}-{digest}-{label}"


def build(stack: Stack, shared: Shared) -> None:
    spec = stack.spec
    name = endpoint_name(stack.name, spec.compute.instance_type)
    endpoint_arn = Sub(
        "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:endpoint/" + name.lower()
    )
    hf_token = spec.model.token_secret
    # Ours, not SageMaker's: kept as the spec says, encrypted with the deployment's key, and deleted with
    # the endpoint (the name is fixed, so it must not outlive a failed create: DeletionPolicy Delete).
    # The key policy lets CloudWatch Logs use the key for every log group of the account (encryption.py).
    endpoint_logs = stack.add(
        logs.LogGroup(
            "EndpointLogGroup",
            LogGroupName=ENDPOINT_LOG_GROUP_PREFIX + name,
            RetentionInDays=spec.observability.log_retention_days,
            KmsKeyId=shared.key_arn,
            DeletionPolicy="Delete",
            UpdateReplacePolicy="Delete",
        )
    )
    model_role = role(
        stack,
        "ModelRole",
        "sagemaker.amazonaws.com",
        [
            *pull_statements(VLLM_REPOSITORY),
            *weight_readers(spec),
            # No logs:CreateLogGroup: the stack creates the group before the endpoint (DependsOn).
            log_writer(endpoint_logs),
            statement(
                ["cloudwatch:PutMetricData"],
                "*",
                Condition={"StringLike": {"cloudwatch:namespace": ["/aws/sagemaker/*", "AWS/SageMaker"]}},
            ),
            *(secret_readers_by_name([hf_token]) if hf_token else []),
        ],
    )
    environment = {
        **engine_environment(spec),
        "GATEWAY_SAGEMAKER_CONTRACT": "true",
        **({"HF_TOKEN_SECRET": hf_token} if hf_token else {}),
    }
    model = stack.add(
        sagemaker.Model(
            "Model",
            ExecutionRoleArn=GetAtt(model_role, "Arn"),
            PrimaryContainer=sagemaker.ContainerDefinition(
                Image=image(stack, VLLM_REPOSITORY), Environment=dict(sorted(environment.items()))
            ),
            # No VpcConfig: SageMaker makes the network interfaces of a VPC model itself, and
            # CloudFormation does not wait for them to go before deleting the subnets and security
            # group, so the stack's delete (and a failed create's rollback) would fail on them
            # (aws-cloudformation/cloudformation-coverage-roadmap#1327). The gateway reaches the
            # endpoint through the SageMaker Runtime API from the VPC, never the container directly.
        ),
        skip={
            "CKV_AWS_370": "the container fetches weights from Hugging Face or streams them from S3 at start"
        },
    )
    config = stack.add(
        sagemaker.EndpointConfig(
            "EndpointConfig",
            ProductionVariants=[
                sagemaker.ProductionVariant(
                    VariantName=VARIANT,
                    ModelName=GetAtt(model, "ModelName"),
                    InstanceType=spec.compute.instance_type,
                    InitialInstanceCount=spec.scaling.min,
                    InitialVariantWeight=1.0,
                    ContainerStartupHealthCheckTimeoutInSeconds=STARTUP_HEALTH_CHECK_SECONDS,
                    ModelDataDownloadTimeoutInSeconds=MODEL_DOWNLOAD_SECONDS,
                )
            ],
        ),
        skip={
            "CKV_AWS_98": "GPU instance types with local NVMe storage reject a KMS key for the ML volume; "
            "the instance store is encrypted by the hardware"
        },
    )
    autoscaled = spec.scaling.max > spec.scaling.min or bool(spec.scaling.schedules)
    endpoint = stack.add(
        sagemaker.Endpoint(
            "Endpoint",
            EndpointName=name,
            DependsOn=[endpoint_logs.title],
            EndpointConfigName=GetAtt(config, "EndpointConfigName"),
            # A new endpoint config (every new image) would otherwise reset the variant to its
            # InitialInstanceCount, scaling a busy endpoint in under the scaler's feet (UpdateEndpoint).
            **({"RetainAllVariantProperties": True} if autoscaled else {}),
        )
    )
    if autoscaled:
        add_application_scaling(
            stack,
            prefix="Endpoint",
            namespace="sagemaker",
            resource_id=f"endpoint/{name}/variant/{VARIANT}",
            dimension="sagemaker:variant:DesiredInstanceCount",
            depends_on=[endpoint.title],
        )
    # DescribeEndpoint: the gateway's readiness check asks whether the endpoint is InService.
    invoke = statement(
        [
            "sagemaker:DescribeEndpoint",
            "sagemaker:InvokeEndpoint",
            "sagemaker:InvokeEndpointWithResponseStream",
        ],
        endpoint_arn,
    )
    add_gateway_service(
        stack,
        cluster=ecs_parts.add_cluster(stack),
        network=shared.network,
        lb=shared.lb,
        log_group=shared.log_group,
        size=GATEWAY_SIZE,
        environment={
            "GATEWAY_UPSTREAM": "sagemaker",
            "GATEWAY_SAGEMAKER_ENDPOINT": GetAtt(endpoint, "EndpointName"),
            "GATEWAY_UPSTREAM_TIMEOUT": str(UPSTREAM_READ_TIMEOUT_SECONDS),
            "AWS_REGION": Ref("AWS::Region"),
            **shared.gateway_environment(),
        },
        secrets={},
        execution_statements=[],
        task_statements=[
            invoke,
            *shared.key_readers(),
        ],
        # The gateway is light: two tasks for availability in prod, scaled on CPU, never to zero.
        minimum=2 if stack.prod else 1,
        maximum=max(4, spec.scaling.max),
        targets={"cpu_percent": 60},
        schedules=False,
    )
