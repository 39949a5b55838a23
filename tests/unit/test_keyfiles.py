"""Secret files (signing key, log MAC key, API key pepper) are made once, 0600, and refused when
others may read them."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ConfigError
from core.ports.keyfiles import read_secret_file
from governance.apikeys import load_pepper


def test_made_once_private_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "k"
    first = read_secret_file(path, "test key", lambda: b"one")
    assert first == b"one" and oct(path.stat().st_mode & 0o777) == "0o600"
    assert read_secret_file(path, "test key", lambda: b"two") == b"one"


def test_a_pepper_others_may_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "apikeys.pepper"
    pepper = load_pepper(path)
    assert len(pepper) == 32 and load_pepper(path) == pepper
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="other users may read it"):
        load_pepper(path)
