from __future__ import annotations

import pytest

from tooling.secret_scan import find_secret


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("sk-proj-Xk29dLq8Vn3RbT7wYc5ZpA1fHs4Jm6Ge", "OpenAI"),
        ("sk-ant-api03-Xk29dLq8Vn3RbT7wYc5ZpA1fHs4Jm6Ge", "OpenAI"),
        ("AKIAIOSFODNN7EXAMPLE", "AWS access key"),
        ("hf_abcdefghijklmnopqrstuvwxyzABCDEFGH", "Hugging Face"),
        ("ghp_" + "a1B2" * 9, "GitHub"),
        ("-----BEGIN RSA PRIVATE KEY-----", "private key"),
        ("https://user:pa55word@example.com/v1", "password in a URL"),
        ("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "random"),
        ("token Zx8Qp2Lm9Rt4Vw7Yb3Nc6Hd1Jf5Kg0Ts inside", "random"),
    ],
)
def test_keys_are_found(value: str, kind: str) -> None:
    found = find_secret(value)
    assert found is not None and kind.lower() in found.lower()


@pytest.mark.parametrize(
    "value",
    [
        "meta-llama/Llama-3.1-8B-Instruct",
        "Qwen/Qwen2.5-VL-72B-Instruct-AWQ",
        "arn:aws:acm:us-east-1:123456789012:certificate/4f2b8c1e-7d3a-4e9b-a1c6-0d5e8f7a9b21",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:multimodal/openai-api-key-AbCdEf",
        "s3://my-models/llama-3.1-8b/Zx8Qp2Lm9Rt4Vw7Yb3Nc6Hd1Jf5Kg0Ts/",
        "4f2b8c1e7d3a4e9ba1c60d5e8f7a9b2112345678",  # a commit SHA
        "sha256:2f1e0d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0",
        "https://api.openai.com/v1",
        "multimodal/openai-api-key",
        "Llama 3.1 8B Instruct for the support assistant",
        "vpc-0123456789abcdef0",
        "ml-platform@example.com",
        "0 20 ? * MON-FRI *",
    ],
)
def test_ordinary_values_are_not_keys(value: str) -> None:
    assert find_secret(value) is None
