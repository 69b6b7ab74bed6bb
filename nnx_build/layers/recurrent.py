"""Catalogue entries: recurrent."""

from __future__ import annotations
