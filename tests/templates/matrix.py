"""Specs that cover every target and option: the "any valid spec" the templates must lint clean for."""

from __future__ import annotations

SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:team/openai-AbC123"
CERT = "arn:aws:acm:{region}:123456789012:certificate/4f2b8c1e-7d3a-4e9b-a1c6-0d5e8f7a9b21"
BASE = "owner: team@example.com\nregion: {region}\n"

VLLM = (
    "model: {id: meta-llama/Llama-3.1-8B-Instruct, served_name: llama, max_model_len: 8192}\n"
    "engine: {type: vllm}\n"
)
EXTERNAL = (
    "model: {id: gpt-4o, served_name: vision, modalities: [text, image]}\n"
    "engine: {type: external, base_url: 'https://api.openai.com/v1', provider_key_secret: team/openai}\n"
)

# environment -> name -> (region, body)
MATRIX: dict[str, dict[str, tuple[str, str]]] = {
    "prod": {
        "fargate-public": (
            "us-east-1",
            EXTERNAL
            + "compute: {service: ecs-fargate, cpu: 8192, memory: 16384, ephemeral_storage_gib: 40}\n"
            "scaling: {min: 1, max: 10,"
            " target: {cpu_percent: 70, memory_percent: 70, requests_per_target: 1000,"
            " requests_in_flight_per_task: 200},"
            " scale_in_cooldown: 60, scale_out_cooldown: 60}\n"
            "network: {public: true, certificate_arn: '" + CERT + "', nat_gateways: 2,"
            " domain_name: vision.example.com, hosted_zone_id: Z0123456789ABCDEFGHIJ}\n"
            "observability: {alarm_email: oncall@example.com, log_retention_days: 90}\n"
            "auth: {clients: [{name: search, requests_per_minute: 600, tokens_per_minute: 200000},"
            " {name: batch-jobs, concurrent_requests: 8}]}\n"
            "budget: {monthly_usd: 2000}\n",
        ),
        "gpu-public": (
            "us-east-1",
            VLLM + "compute: {service: ecs-gpu, instance_type: g5.xlarge, volume_gib: 200,"
            " ami_id: ami-0123456789abcdef0}\n"
            "scaling: {min: 1, max: 4, target: {requests_per_target: 120}}\n"
            "network: {public: true, certificate_arn: '" + CERT + "', domain_name: llm.example.com}\n"
            "auth: {rotation_days: 7, clients: [{name: chat, tokens_per_minute: 1000000}]}\n",
        ),
        "sagemaker-multi": (
            "eu-west-1",
            "model: {id: Qwen/Qwen2.5-VL-72B-Instruct, modalities: [text, image], token_secret: hf/token}\n"
            "engine: {type: vllm, args: {tensor_parallel_size: 8}}\n"
            "compute: {service: sagemaker, instance_type: ml.p4d.24xlarge}\n"
            "scaling: {min: 1, max: 2,"
            " target: {invocations_per_instance: 30, concurrent_requests_per_model: 8},"
            " schedules: [{name: quiet, cron: '0 22 ? * * *', min: 1, max: 1}]}\n"
            "network: {public: true, certificate_arn: '" + CERT + "', domain_name: vl.ml.example.com,"
            " hosted_zone_id: Z0123456789ABCDEFGHIJ}\n",
        ),
    },
    "staging": {
        "fargate-x86-existing-vpc": (
            "us-west-2",
            EXTERNAL + "compute: {service: ecs-fargate, architecture: x86_64, cpu: 1024, memory: 2048}\n"
            "network: {vpc: vpc-0123456789abcdef0, private_subnets: [subnet-0123abcd, subnet-4567abcd],"
            " allowed_cidrs: [10.0.0.0/8], vpc_endpoints: true}\n",
        ),
        "gpu-spot-s3": (
            "ap-southeast-5",
            "model: {id: 's3://my-models/llama-3.1-8b/'}\nengine: {type: vllm, version: '0.11.0'}\n"
            "compute: {service: ecs-gpu, instance_type: g6.12xlarge, spot: true}\n"
            "scaling: {min: 0, max: 2, target: {requests_per_target: 100},"
            " schedules: [{name: day, cron: '0 7 ? * MON-FRI *', min: 1, max: 2},"
            " {name: night, cron: '0 19 ? * MON-FRI *', min: 0, max: 0}]}\n"
            "network: {nat_gateways: 0, vpc_endpoints: true}\n",
        ),
        # Fallback types with Spot above an on-demand floor: a mixed instances policy on ECS capacity.
        "gpu-fallback-spot": (
            "us-east-1",
            VLLM + "compute: {service: ecs-gpu, instance_types: [g6.xlarge, g5.xlarge, g6e.xlarge],"
            " spot: true, on_demand_base: 1, ami_id: ami-0123456789abcdef0}\n"
            "scaling: {min: 1, max: 4, target: {requests_per_target: 100}}\n",
        ),
        "gpu-existing-vpc-endpoints": (
            "us-west-2",
            VLLM + "compute: {service: ecs-gpu, instance_type: g6.xlarge}\n"
            "network: {vpc: vpc-0123456789abcdef0, private_subnets: [subnet-0123abcd, subnet-4567abcd],"
            " allowed_cidrs: [10.0.0.0/8], vpc_endpoints: true, endpoint_private_dns: true,"
            " certificate_arn: '" + CERT + "', domain_name: llm.internal.example.com,"
            " hosted_zone_id: ZPRIVATE0123456789}\n",
        ),
        "sagemaker-small": (
            "us-east-1",
            VLLM + "compute: {service: sagemaker, instance_type: ml.g5.2xlarge}\n"
            "network: {vpc_endpoints: true}\nbudget: {monthly_usd: 1500.5}\n",
        ),
    },
    "dev": {
        "ec2-spot-schedules": (
            "us-east-1",
            VLLM + "compute: {service: ec2, instance_type: g6.xlarge, spot: true, volume_gib: 100}\n"
            "scaling: {min: 1, max: 3, target: {requests_per_target: 100},"
            " schedules: [{name: nights, cron: '0 20 ? * MON-FRI *', min: 0, max: 0},"
            " {name: mornings, cron: '0 7 ? * 2-6 *', min: 1, max: 3}]}\n"
            "auth: {clients: [{name: notebooks, requests_per_minute: 60, concurrent_requests: 2}]}\n",
        ),
        # Fallback types on demand only: the rolling update and the signals over a mixed instances policy.
        "ec2-fallback": (
            "us-east-2",
            VLLM + "compute: {service: ec2, instance_types: [g6.xlarge, g5.xlarge]}\n"
            "scaling: {min: 1, max: 2, target: {requests_per_target: 60}}\n",
        ),
        "ec2-open-http": (
            "us-east-2",
            "model: {id: mistralai/Mistral-7B-Instruct-v0.3, token_secret: hf/token}\nengine: {type: vllm}\n"
            # Mistral 7B's 14 GB of bf16 weights and its 32k-token context need more than a T4's 16 GiB.
            "compute: {service: ec2, instance_type: g5.xlarge}\n"
            "network: {public: true}\nauth: {api_keys: false}\nobservability: {container_insights: false}\n",
        ),
        "gpu-existing-vpc": (
            "us-east-1",
            VLLM + "compute: {service: ecs-gpu, instance_type: p5.48xlarge}\n"
            "network: {vpc: vpc-0123456789abcdef0, public: true,"
            " public_subnets: [subnet-0a0a0a0a, subnet-0b0b0b0b],"
            " private_subnets: [subnet-0123abcd, subnet-4567abcd]}\n",
        ),
        "fargate-minimal": ("us-east-1", EXTERNAL + "compute: {service: ecs-fargate}\n"),
        # The LLM-aware signals: vLLM's queue and KV cache and the gateway's in-flight streams.
        "gpu-llm-signals": (
            "us-east-1",
            VLLM + "compute: {service: ecs-gpu, instance_type: g6.xlarge}\n"
            "scaling: {min: 1, max: 4,"
            " target: {queue_depth_per_task: 4, kv_cache_percent: 75, requests_in_flight_per_task: 24}}\n",
        ),
        "ec2-queue-depth": (
            "us-west-2",
            VLLM + "compute: {service: ec2, instance_type: g6.xlarge}\n"
            "scaling: {min: 1, max: 3, target: {queue_depth_per_task: 2}}\n",
        ),
        "fargate-own-range": (
            "eu-west-1",
            # A secret given by its full ARN passes through to ECS and IAM as it is.
            EXTERNAL.replace("team/openai", SECRET_ARN) + "compute: {service: ecs-fargate}\n"
            "network: {vpc_cidr: 172.20.4.0/22, vpc_endpoints: true}\n",
        ),
    },
}


def files() -> dict[str, str]:
    """{relative path: YAML text} for a deployments tree holding the whole matrix."""
    out = {}
    for env, specs in MATRIX.items():
        for name, (region, body) in specs.items():
            text = f"name: {name}\n" + (BASE + body).replace("{region}", region)
            out[f"deployments/{env}/{name}.yaml"] = text
    return out
