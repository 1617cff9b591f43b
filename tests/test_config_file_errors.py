"""The local settings and the council's details, missing or broken: one clear error naming the file and what is
wrong (handlers/config_files.read_json, the reader every configuration file shares)."""

from __future__ import annotations

from pathlib import Path

import pytest

from handlers import letters, settings


@pytest.mark.parametrize(("read", "what"), [(settings._read, "the local settings file"),
                                            (letters._read_council, "the council details file")])
def test_a_missing_or_broken_file_is_named_with_what_is_wrong(tmp_path: Path, read, what) -> None:
    gone = tmp_path / "gone.json"
    with pytest.raises(ValueError) as exc:
        read(gone)
    assert str(exc.value) == f"{what} {gone} cannot be read: No such file or directory"
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": ', encoding="utf-8")
    with pytest.raises(ValueError) as exc:
        read(broken)
    assert str(exc.value).startswith(f"{what} {broken} is not JSON: Expecting value: line 1 column 10")
    latin = tmp_path / "latin.json"
    latin.write_bytes('{"name": "Caf\xe9"}'.encode("latin-1"))  # not UTF-8: named, not a crash
    with pytest.raises(ValueError) as exc:
        read(latin)
    assert str(exc.value).startswith(f"{what} {latin} is not JSON: ")
