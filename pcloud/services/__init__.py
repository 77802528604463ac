"""The domain: plain functions the API and the CLI both call.

No Flask and no Typer here; failures are raised as pcloud.errors kinds.
"""
