"""Accounts, regions and roles: environments.yaml, bootstrap, ECR replication, the pre-deploy checks."""
