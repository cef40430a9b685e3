"""One customer-managed KMS key per deployment: logs, alarm topic and the API key secret use it.

The key policy names each AWS service that must use the key, and only for this account, so reading the
logs or the secret needs both IAM permission and this key.
"""

from __future__ import annotations

from troposphere import AccountId, GetAtt, Sub, kms

from templates.context import Stack


def add_key(stack: Stack) -> kms.Key:
    account_root = Sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:root")
    use = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AccountAdministers",
                "Effect": "Allow",
                "Principal": {"AWS": account_root},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                "Sid": "LogsEncryptThisAccountsLogGroups",
                "Effect": "Allow",
                "Principal": {"Service": Sub("logs.${AWS::Region}.amazonaws.com")},
                "Action": use,
                "Resource": "*",
                "Condition": {
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": Sub(
                            "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:*"
                        )
                    }
                },
            },
            {
                "Sid": "AlarmsAndBudgetsPublishToTheEncryptedTopic",
                "Effect": "Allow",
                "Principal": {"Service": ["cloudwatch.amazonaws.com", "budgets.amazonaws.com"]},
                "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:SourceAccount": AccountId}},
            },
        ],
    }
    return stack.add(
        kms.Key(
            "EncryptionKey",
            Description=f"deployctl {stack.name}: logs, alarms and API keys",
            EnableKeyRotation=True,
            KeyPolicy=policy,
            PendingWindowInDays=30 if stack.prod else 7,
            DeletionPolicy=stack.keep_on_delete,
            UpdateReplacePolicy=stack.keep_on_replace,
        )
    )


def key_arn(key: kms.Key) -> GetAtt:
    return GetAtt(key, "Arn")
