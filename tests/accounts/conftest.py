from tests.templates.conftest import built  # noqa: F401 - every matrix spec and example, rendered once
