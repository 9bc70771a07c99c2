"""Contracts: pydantic v2 models of every topic payload and warehouse row, and the settings."""

from __future__ import annotations


class SchemaError(Exception):
    """Base of every error raised by the schemas package."""
