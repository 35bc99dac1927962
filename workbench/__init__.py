"""workbench: attention-based sentiment research, one library under notebooks you can read."""

__version__ = "0.1.0"
