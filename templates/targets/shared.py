"""What every target receives from the common part of the stack."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from troposphere import Ref, logs, sns

from templates.load_balancer import GATEWAY_KEEP_ALIVE_SECONDS, LoadBalancer
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

    def gateway_environment(self) -> dict[str, Any]:
        """What every gateway container gets, whichever target runs it (CONTRACTS.md, gateway side)."""
        # auth.api_keys: false is a deliberate choice (validation warns, and refuses it for public prod).
        auth = self.api_key.gateway_environment() if self.api_key else {"GATEWAY_ALLOW_ANONYMOUS": "true"}
        return {
            **auth,
            # Longer than the ALB's idle timeout, so the ALB, not the gateway, closes idle connections.
            "GATEWAY_KEEP_ALIVE_TIMEOUT": str(GATEWAY_KEEP_ALIVE_SECONDS),
            # The EMF metrics' Stack dimension.
            "GATEWAY_METRICS_STACK": Ref("AWS::StackName"),
        }

    def key_readers(self) -> list[dict[str, Any]]:
        """The gateway's task role statements for the keys it accepts: none when it takes anonymous calls."""
        return self.api_key.reader_statements(self.key_arn) if self.api_key else []
