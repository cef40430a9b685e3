"""Developer tools that are not part of the product: the local AWS emulator, workflow linting."""
