"""pcloud: a self-hosted personal cloud."""

__version__ = "0.1.0"
