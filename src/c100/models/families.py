"""Imports every model family file so that its builders register. One family per file."""
from c100.models import seed  # noqa: F401
from c100.models import resnet  # noqa: F401
