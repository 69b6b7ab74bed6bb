"""Catalogue entries: pooling."""

from __future__ import annotations
