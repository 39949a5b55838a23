"""Secrets the hub derives for itself from its local MAC key, one per purpose (below the
composition root, so that the modules it builds can derive theirs without importing it)."""

from __future__ import annotations

from hub.settings import Settings


def derived_secret(settings: Settings, purpose: bytes) -> bytes:
    """A secret for one purpose, derived (HMAC-SHA256) from the hub's local MAC key: files the
    hub writes for itself beside derived data (e.g. the Flink result loader's memory) carry a MAC
    under it, so that editing such a file without the key is noticed."""
    import hashlib
    import hmac

    from adapters.local_signer import load_or_create_mac_key

    return hmac.new(load_or_create_mac_key(settings.log_key_path), purpose, hashlib.sha256).digest()


__all__ = ["derived_secret"]
