"""Config errors as a table: snippet → the one line `ferryman check` prints (Connect's habit)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from ferryman import config
from ferryman.errors import ConfigError

GOOD_FLOW = """
[flows.people.source]
type = "folder"
path = "in"

[[flows.people.steps]]
type = "deliver"
to = "out"
"""

CASES = [
    ("unknown top key", "[ferrymen]\nroot = 'x'\n" + GOOD_FLOW, "ferrymen: unknown key; did you mean 'ferryman'?"),
    ("step key typo", GOOD_FLOW.replace('to = "out"', 'to = "out"\ntoo = "x"'),
     "flows.people.steps[0].too: unknown key; did you mean 'to'?"),
    ("step type typo", GOOD_FLOW.replace('type = "deliver"', 'type = "delivr"'),
     "flows.people.steps[0].type: unknown step type 'delivr'; did you mean 'deliver'?"),
    ("source type typo", GOOD_FLOW.replace('type = "folder"', 'type = "foldr"'),
     "flows.people.source.type: unknown source type 'foldr'; did you mean 'folder'?"),
    ("missing step type", GOOD_FLOW.replace('type = "deliver"\n', ""),
     "flows.people.steps[0]: missing 'type'"),
    ("missing required key", GOOD_FLOW.replace('to = "out"\n', ""),
     "flows.people.steps[0].to: required key is missing"),
    ("bad duration", GOOD_FLOW + '[flows.people.retry]\ndelay = "soon"\n',
     "flows.people.retry.delay: 'soon' is not a duration"),
    ("bad enum", GOOD_FLOW.replace('to = "out"', 'to = "out"\nif_exists = "clobber"'),
     "flows.people.steps[0].if_exists: Input should be 'overwrite', 'skip', 'rename' or 'fail'"),
    ("unknown notifier",
     GOOD_FLOW.replace("[flows.people.source]", '[flows.people]\nnotify = ["opps"]\n[flows.people.source]')
     + '[notify.ops]\ntype = "log"\n', "flows.people.notify: no notifier 'opps'; did you mean 'ops'?"),
    ("unknown connection", GOOD_FLOW.replace('to = "out"', 'to = "sftp://partner/in"'),
     "flows.people.steps[0].to: no connection 'partner'"),
    ("connection of wrong type", GOOD_FLOW.replace('to = "out"', 'to = "sftp://mail/in"')
     + '[connections.mail]\ntype = "smtp"\nhost = "h"\n',
     "flows.people.steps[0].to: connection 'mail' is of type 'smtp', not 'sftp'"),
    ("bad template field", GOOD_FLOW.replace('to = "out"', 'to = "out/{metta.x}"'),
     "flows.people.steps[0].to: unknown template field {metta}"),
    ("bad secret", GOOD_FLOW + '[connections.s]\ntype = "sftp"\nhost = "h"\nuser = "u"\npassword = { envv = "X" }\n',
     "connections.s.password: a secret is a string"),
    ("union branch names stay hidden", GOOD_FLOW.replace('path = "in"', 'path = "in"\nafter = "move"'),
     "flows.people.source.after: Input should be 'keep' or 'delete'; or should be a table"),
    ("typo inside a union branch", GOOD_FLOW.replace('path = "in"', 'path = "in"\nafter = { mvoe = "x" }'),
     "flows.people.source.after.mvoe: unknown key; did you mean 'move'?"),
    ("workers out of range", "[ferryman]\nworkers = 0\n" + GOOD_FLOW,
     "ferryman.workers: Input should be greater than or equal to 1"),
]


@pytest.mark.parametrize(("snippet", "expected"), [(s, e) for _, s, e in CASES], ids=[c[0] for c in CASES])
def test_config_error_names_the_key_path(snippet: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config.validate(tomllib.loads(snippet))
    assert any(expected in problem for problem in caught.value.problems), caught.value.problems


def test_every_problem_is_reported_at_once() -> None:
    snippet = GOOD_FLOW.replace('to = "out"', 'too = "out"') + "[ferryman]\nworkerz = 2\n"
    with pytest.raises(ConfigError) as caught:
        config.validate(tomllib.loads(snippet))
    joined = "\n".join(caught.value.problems)
    assert "ferryman.workerz: unknown key" in joined
    assert "flows.people.steps[0].too: unknown key" in joined


def test_good_config_loads_with_defaults(tmp_path: Path) -> None:
    path = tmp_path / "ferryman.toml"
    path.write_text(GOOD_FLOW)
    loaded = config.load(path)
    assert loaded.root == (tmp_path / ".ferryman").resolve()
    flow = loaded.config.flows["people"]
    assert flow.retry.attempts == 3 and flow.steps[0].type == "deliver"
    assert loaded.warnings == []


def test_literal_secret_and_disabled_checks_warn(tmp_path: Path) -> None:
    path = tmp_path / "f.toml"
    path.write_text(GOOD_FLOW + '[connections.p]\ntype = "sftp"\nhost = "h"\nuser = "u"\n'
                    'password = "hunter22"\ncheck_host_key = false\n')
    loaded = config.load(path)
    joined = "\n".join(loaded.warnings)
    assert "connections.p.password: the secret is written in the config file" in joined
    assert "connections.p.check_host_key" in joined
    assert "hunter22" not in joined


def test_invalid_toml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "f.toml"
    path.write_text("[flows.x\n")
    with pytest.raises(ConfigError, match=r"not valid TOML: .*line 1"):
        config.load(path)


def test_missing_file_suggests_init(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FERRYMAN_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="ferryman init"):
        config.load(None)


def test_env_var_names_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "elsewhere.toml"
    path.write_text(GOOD_FLOW)
    monkeypatch.setenv("FERRYMAN_CONFIG", str(path))
    assert config.load(None).path == path.resolve()


def test_reference_problems_are_one_line_each() -> None:
    snippet = GOOD_FLOW.replace('to = "out"', 'to = "sftp://nope/x"') + (
        '[[flows.people.steps]]\ntype = "deliver"\nto = "ftp://nada/x"\n')
    with pytest.raises(ConfigError) as caught:
        config.validate(tomllib.loads(snippet))
    assert len(caught.value.problems) == 2
    assert caught.value.problems[0].startswith("flows.people.steps[0].to: no connection 'nope'")
    assert caught.value.problems[1].startswith("flows.people.steps[1].to: no connection 'nada'")


def _types(kind: str) -> str:
    from ferryman.connections import CONNECTIONS
    from ferryman.notify import NOTIFIERS
    from ferryman.sources import SOURCES
    from ferryman.steps import STEPS

    names = {"source": SOURCES, "step": STEPS, "connection": CONNECTIONS, "notifier": NOTIFIERS}[kind]
    return f"{kind} types are: {', '.join(sorted(names))}"


@pytest.mark.parametrize(("snippet", "expected"), [
    # The only source of its kind: the model built for this file has no other source to try.
    (GOOD_FLOW.replace('type = "folder"', 'type = "foldr"'),
     "flows.people.source.type: unknown source type 'foldr'; did you mean 'folder'?; {source}"),
    (GOOD_FLOW + '[notify.ops]\ntype = "lg"\n',
     "notify.ops.type: unknown notifier type 'lg'; did you mean 'log'?; {notifier}"),
    (GOOD_FLOW + '[connections.x]\nhost = "h"\n', "connections.x: missing 'type'; {connection}"),
    (GOOD_FLOW + '[[flows.people.steps]]\ntype = "sftp_upload"\nto = "x"\n',
     "flows.people.steps[1].type: unknown step type 'sftp_upload'; {step}"),
])
def test_an_unknown_type_is_one_line_naming_the_valid_types(snippet: str, expected: str) -> None:
    """Whatever else the file names, that one line is the whole answer (the models of a file are
    built from the types it names: an unknown one must not slip through)."""
    with pytest.raises(ConfigError) as caught:
        config.validate(tomllib.loads(snippet))
    line = expected.format(**{kind: _types(kind) for kind in ("source", "step", "connection", "notifier")})
    assert caught.value.problems == [line]
