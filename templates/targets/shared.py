"""What every target receives from the common part of the stack."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from troposphere import logs, sns

from templates.load_balancer import LoadBalancer
from templates.network import Network
from templates.secrets import ApiKeySecret


@dataclass(frozen=True)
class Shared:
    key_arn: Any
    log_group: logs.LogGroup
    network: Network
    lb: LoadBalancer
    topic: sns.Topic
    api_key: ApiKeySecret | None

    def gateway_auth_environment(self) -> dict[str, Any]:
        # auth.api_keys: false is a deliberate choice (validation warns, and refuses it for public prod).
        return (
            {"GATEWAY_API_KEY_SECRET": self.api_key.arn}
            if self.api_key
            else {"GATEWAY_ALLOW_ANONYMOUS": "true"}
        )
