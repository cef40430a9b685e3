"""How the vLLM image is told what to serve: environment variables its supervisor turns into vLLM flags.

The same variables work on ECS, on EC2 (docker run) and on SageMaker (which allows no command
override), so each target passes the same contract.
"""

from __future__ import annotations

import json
from typing import Any

from tooling import rules
from tooling.spec import Deployment

VLLM_PORT = 8000  # on 127.0.0.1 inside the task; only the gateway's port is published


def engine_environment(spec: Deployment) -> dict[str, Any]:
    model, engine = spec.model, spec.engine
    if engine.type != "vllm":
        raise ValueError("engine_environment is for vllm engines")
    args: dict[str, Any] = dict(engine.args)
    # Every target hands the container all of the instance's GPUs (ECS ResourceRequirements GPU, docker
    # --gpus all, SageMaker's whole instance), and vLLM uses one unless told otherwise
    # (https://docs.vllm.ai/en/latest/serving/distributed_serving.html): shard across all of them.
    sizes = rules.parallel_sizes(args)
    if "tensor_parallel_size" not in sizes:
        args["tensor_parallel_size"] = rules.default_tensor_parallel(spec.compute.gpu.gpus, sizes)
    if model.revision:
        args["revision"] = model.revision
    if model.max_model_len:
        args["max_model_len"] = model.max_model_len
    if model.id.startswith("s3://"):
        # vLLM streams weights from S3 with the Run:ai model streamer instead of downloading first.
        args.setdefault("load_format", "runai_streamer")
    return {
        "ENGINE_MODEL": model.id,
        "ENGINE_SERVED_MODEL_NAME": model.served_model_name,
        "ENGINE_PORT": str(VLLM_PORT),
        # Sorted keys: the same spec renders the same bytes.
        "ENGINE_ARGS": json.dumps(args, sort_keys=True, separators=(",", ":")),
        # The gateway reads vLLM's own gauges, whose names changed across releases (engine_metrics.py).
        "ENGINE_VERSION": engine.version,
        "GATEWAY_UPSTREAM": "vllm",
        "GATEWAY_UPSTREAM_URL": f"http://127.0.0.1:{VLLM_PORT}/v1",
    }
