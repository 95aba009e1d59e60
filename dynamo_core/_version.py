"""The installed version of dynamo_core."""

__version__ = "0.1.0.dev0"
