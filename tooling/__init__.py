"""deployctl: YAML deployment specs to CloudFormation stacks for LLM inference endpoints."""
