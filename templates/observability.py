"""Logs, alarms and the budget: what an on-call engineer needs to see a deployment misbehave."""

from __future__ import annotations

from typing import Any

from troposphere import Ref, Sub, budgets, cloudwatch, sns

from templates.context import Stack
from templates.load_balancer import LoadBalancer

# 5xx above this share of requests, over two 5-minute periods, pages someone.
ERROR_RATE_PERCENT = 5
ERROR_RATE_EXPRESSION = (
    "IF(FILL(requests, 0) > 0, 100 * (FILL(target5xx, 0) + FILL(elb5xx, 0)) / requests, 0)"
)
# NoHealthyCapacityAlarm: one-minute periods after the model server's load grace has passed.
NO_CAPACITY_MINUTES = 10
# Time to the first response byte at p99. Generations stream, so headers come early even for long answers.
P99_FIRST_BYTE_SECONDS = 30


def add_alarm_topic(stack: Stack, key_arn: Any) -> sns.Topic:
    topic = stack.add(
        sns.Topic("AlarmTopic", DisplayName=f"deployctl {stack.name} alarms", KmsMasterKeyId=key_arn)
    )
    stack.add(
        sns.TopicPolicy(
            "AlarmTopicPolicy",
            Topics=[Ref(topic)],
            PolicyDocument={
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "AlarmsAndBudgetsOfThisAccountPublish",
                        "Effect": "Allow",
                        "Principal": {"Service": ["cloudwatch.amazonaws.com", "budgets.amazonaws.com"]},
                        "Action": "sns:Publish",
                        "Resource": Ref(topic),
                        "Condition": {"StringEquals": {"aws:SourceAccount": Sub("${AWS::AccountId}")}},
                    }
                ],
            },
        )
    )
    if stack.spec.observability.alarm_email:
        stack.add(
            sns.SubscriptionResource(
                "AlarmEmailSubscription",
                TopicArn=Ref(topic),
                Protocol="email",
                Endpoint=str(stack.spec.observability.alarm_email),
            )
        )
    return topic


def add_load_balancer_alarms(
    stack: Stack, lb: LoadBalancer, topic: sns.Topic, *, model_load_seconds: int | None
) -> None:
    """The load balancer's alarms; `model_load_seconds` is a GPU target's load grace (None: no GPU)."""
    dims = [
        cloudwatch.MetricDimension(Name="LoadBalancer", Value=lb.full_name),
        cloudwatch.MetricDimension(Name="TargetGroup", Value=lb.target_group_full_name),
    ]
    lb_dims = dims[:1]
    actions = {"AlarmActions": [Ref(topic)], "OKActions": [Ref(topic)]}

    def metric(query_id: str, name: str, dimensions: list, stat: str = "Sum") -> cloudwatch.MetricDataQuery:
        return cloudwatch.MetricDataQuery(
            Id=query_id,
            ReturnData=False,
            MetricStat=cloudwatch.MetricStat(
                Metric=cloudwatch.Metric(
                    Namespace="AWS/ApplicationELB", MetricName=name, Dimensions=dimensions
                ),
                Period=300,
                Stat=stat,
            ),
        )

    stack.add(
        cloudwatch.Alarm(
            "ErrorRateAlarm",
            AlarmDescription=f"{stack.name}: more than {ERROR_RATE_PERCENT}% of requests answered 5xx",
            ComparisonOperator="GreaterThanThreshold",
            Threshold=ERROR_RATE_PERCENT,
            EvaluationPeriods=2,
            DatapointsToAlarm=2,
            TreatMissingData="notBreaching",
            Metrics=[
                metric("target5xx", "HTTPCode_Target_5XX_Count", dims),
                metric("elb5xx", "HTTPCode_ELB_5XX_Count", lb_dims),
                metric("requests", "RequestCount", lb_dims),
                # Only documented forms (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/
                # using-metric-math.html): IF(TS > S, TS, S), and FILL(TS, S) for the periods with no 5xx.
                # No MAX: of an array it takes time series only, and it is not advised in alarms.
                cloudwatch.MetricDataQuery(
                    Id="rate",
                    Label="5xx percent",
                    Expression=ERROR_RATE_EXPRESSION,
                    ReturnData=True,
                ),
            ],
            **actions,
        )
    )
    stack.add(
        cloudwatch.Alarm(
            "LatencyAlarm",
            AlarmDescription=f"{stack.name}: p99 time to first byte above {P99_FIRST_BYTE_SECONDS}s",
            Namespace="AWS/ApplicationELB",
            MetricName="TargetResponseTime",
            Dimensions=dims,
            ExtendedStatistic="p99",
            Period=300,
            EvaluationPeriods=3,
            DatapointsToAlarm=2,
            Threshold=P99_FIRST_BYTE_SECONDS,
            ComparisonOperator="GreaterThanThreshold",
            TreatMissingData="notBreaching",
            **actions,
        )
    )
    stack.add(
        cloudwatch.Alarm(
            "UnhealthyHostsAlarm",
            AlarmDescription=f"{stack.name}: a target failed its health checks for 15 minutes",
            Namespace="AWS/ApplicationELB",
            MetricName="UnHealthyHostCount",
            Dimensions=dims,
            Statistic="Maximum",
            Period=300,
            EvaluationPeriods=3,
            Threshold=0,
            ComparisonOperator="GreaterThanThreshold",
            TreatMissingData="notBreaching",
            **actions,
        )
    )
    scales_to_zero = stack.spec.scaling.min == 0 or any(s.min == 0 for s in stack.spec.scaling.schedules)
    if model_load_seconds is not None and not scales_to_zero:
        # A new model server is unhealthy (HealthyHostCount 0) while it downloads and loads the model,
        # for up to its load grace; on a first create there is nothing else. The alarm waits that long
        # plus NO_CAPACITY_MINUTES, so a create does not page, and a server that never loads does (ECS and
        # the Auto Scaling group replace it after the same grace). With traffic, the 503s the load
        # balancer answers while nothing is healthy page sooner through ErrorRateAlarm.
        minutes = -(-model_load_seconds // 60) + NO_CAPACITY_MINUTES
        stack.add(
            cloudwatch.Alarm(
                "NoHealthyCapacityAlarm",
                AlarmDescription=f"{stack.name}: no healthy model server for {minutes} minutes",
                Namespace="AWS/ApplicationELB",
                MetricName="HealthyHostCount",
                Dimensions=dims,
                Statistic="Minimum",
                Period=60,
                EvaluationPeriods=minutes,
                DatapointsToAlarm=minutes,
                Threshold=1,
                ComparisonOperator="LessThanThreshold",
                # No data means no target registered at all (no GPU capacity, tasks that never start):
                # the outage we look for; the window above keeps it from paging on a create.
                TreatMissingData="breaching",
                **actions,
            )
        )


def add_budget(stack: Stack, topic: sns.Topic) -> None:
    budget = stack.spec.budget
    if budget is None or budget.monthly_usd is None:
        return
    subscribers = [budgets.Subscriber(SubscriptionType="SNS", Address=Ref(topic))]
    stack.add(
        budgets.Budget(
            "MonthlyBudget",
            # No BudgetName: NotificationsWithSubscribers is create-only, so changing a notification
            # replaces the budget, and Budgets refuses a second budget of the same name (UPDATE_ROLLBACK).
            # Unnamed, CloudFormation names each replacement anew (rule E9023).
            Budget=budgets.BudgetData(
                BudgetType="COST",
                TimeUnit="MONTHLY",
                BudgetLimit=budgets.Spend(Amount=budget.monthly_usd, Unit="USD"),
                # A cost allocation tag: activate `deployctl:stack` once per account in Billing.
                CostFilters={"TagKeyValue": [f"user:deployctl:stack${stack.name}"]},
            ),
            NotificationsWithSubscribers=[
                budgets.NotificationWithSubscribers(
                    Notification=budgets.Notification(
                        NotificationType=kind,
                        ComparisonOperator="GREATER_THAN",
                        Threshold=percent,
                        ThresholdType="PERCENTAGE",
                    ),
                    Subscribers=subscribers,
                )
                for kind, percent in (("ACTUAL", 80), ("FORECASTED", 100))
            ],
        )
    )
