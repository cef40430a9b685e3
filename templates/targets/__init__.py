"""One module per compute target; each composes the shared building blocks."""
