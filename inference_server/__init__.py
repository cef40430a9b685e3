"""The OpenAI-compatible gateway that fronts every deployment's engine.

It ships alone in its image: nothing here may import from `tooling/` or `templates/`.
"""

__version__ = "0.1.0"
