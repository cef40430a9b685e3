"""Releases: an environment converged on a commit, recorded, smoke-tested, and restored when it fails."""
