from __future__ import annotations

from datetime import datetime

import pytest

from ferryman import templates
from ferryman.errors import PermanentError, UnsafeInput

NOW = datetime(2026, 11, 24, 5, 30)


def values(**meta: str) -> dict[str, object]:
    return templates.fields_for(flow="f", item="abc", meta=meta, path="/in/people-export.csv", now=NOW)


def test_fields_render() -> None:
    out = templates.render("{flow}/{stem}_{now:%Y%m%d}{suffix} {meta.db} {item} {name}", values(db="bmgf"))
    assert out == "f/people-export_20261124.csv bmgf abc people-export.csv"


def test_missing_meta_names_what_the_item_has() -> None:
    with pytest.raises(PermanentError, match=r"meta\.to.*has: db"):
        templates.render("{meta.to}", values(db="x"))


def test_path_cannot_escape_its_base() -> None:
    with pytest.raises(UnsafeInput, match=r"'\.\.'"):
        templates.render_path("/srv/out/{meta.t}", values(t="../../etc"))
    # An absolute value stays below the base: /srv/out//etc is /srv/out/etc.
    assert templates.render_path("/srv/out/{meta.t}", values(t="/etc")) == "/srv/out/etc"
    with pytest.raises(UnsafeInput, match="leaves its base"):
        templates.render_path("/srv/out/{meta.t}", values(t="x"), base="/srv/other")
    assert templates.render_path("/srv/out/{meta.t}", values(t="people/2026")) == "/srv/out/people/2026"


def test_name_is_one_segment() -> None:
    with pytest.raises(UnsafeInput):
        templates.render_name("{meta.n}", values(n="../passwd"))
    with pytest.raises(UnsafeInput):
        templates.render_name("{meta.n}", values(n=".."))
    assert templates.render_name("{stem}.txt", values()) == "people-export.txt"


def test_check_refuses_unknown_fields() -> None:
    with pytest.raises(ValueError, match=r"unknown template field \{nme\}"):
        templates.check("{nme}")
    with pytest.raises(ValueError, match=r"meta\.KEY"):
        templates.check("{meta}")
    templates.check("{meta.x}/{now:%Y}")


def test_numbered_names_split_at_the_first_dot() -> None:
    assert templates.numbered("a.csv", 0) == "a.csv"
    assert templates.numbered("a.tar.gz", 2) == "a-2.tar.gz"
    assert templates.numbered(".profile", 1) == ".profile-1"
    assert templates.numbered("README", 3) == "README-3"
