"""The docs tested against the code: README.md and every page under docs/.

1. Every TOML block is parsed with tomllib and its keys are walked against the config models
   (the member of a source, step, connection or notifier union is chosen by its ``type``):
   a key the models do not have fails, naming the page, the block's line and the key path.
   Commented-out settings in a block (``# path_style = true``) are walked too, under the table
   they sit in (only their keys: their values are not validated), and so is every inline
   ``key = value`` of the prose, against the keys of all models together (`FOREIGN` lists the
   other tools' keys that the migration pages quote).
2. Every TOML block is then run through ``ferryman check`` (the command, in this process),
   completed first:
   the connections and notifiers the page's other blocks declare are added, a notifier named
   but declared nowhere becomes a ``log`` notifier, a block without flows gets one, a flow
   without a source gets a placeholder folder source, a ``python`` step's module gets a stand-in
   (on its ``pythonpath``), every absolute path is moved
   under a temporary folder (created: a folder, or a file for keys that name one),
   ``{ env = … }`` secrets are set, ``{ command = … }`` secrets become ``echo``.
   A block that is only a piece of a config (it names a connection or a notifier it does not
   declare, say) is marked with an HTML comment on the line before its fence::

       <!-- fragment: why it cannot be checked alone -->
       ```toml

   A fragment is still walked (1), but not checked (2). A reason is required.
3. Every relative link (``[text](path)``, ``[text](path#anchor)``, ``[text](#anchor)``) points
   to a file that exists, and its anchor to a heading of that file (GitHub's slugs).
4. Every ``docs/….md`` named in the code (``init`` templates, ``--help`` texts) exists.
"""

from __future__ import annotations

import os
import re
import tomllib
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
from click.testing import CliRunner
from pydantic import BaseModel

from ferryman.cli import main
from ferryman.compat.toml_writer import key as toml_key
from ferryman.compat.toml_writer import value as toml_value
from ferryman.config import config_model

Config = config_model()  # the whole schema: every source, step, connection and notifier type

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)")
FRAGMENT = re.compile(r"<!--\s*fragment:\s*(\S.*?)\s*-->")
LINK = re.compile(r"(?<!!)\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FILE_KEYS = {"file", "key_file", "known_hosts", "ca_file", "cert_file", "host_key", "templates"}
"""Keys whose absolute path names a file (made as a file, not a folder, for `ferryman check`)."""


@dataclass
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    text: str
    fragment: str | None  # the reason given, for a marked fragment

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(lang: str = "toml") -> list[Block]:
    """Every fenced block of `lang` in the docs (fences inside other fences are text)."""
    found = []
    for page in PAGES:
        lines = page.read_text(encoding="utf-8").splitlines()
        n = 0
        while n < len(lines):
            match = FENCE.match(lines[n])
            if not match:
                n += 1
                continue
            fence, start = match[2], n
            end = next((k for k in range(n + 1, len(lines)) if lines[k].strip().startswith(fence)), len(lines))
            if match[3] == lang:
                previous = next((lines[k] for k in range(start - 1, -1, -1) if lines[k].strip()), "")
                marked = FRAGMENT.search(previous)
                found.append(Block(page, start + 1, "\n".join(lines[start + 1:end]),
                                   marked[1] if marked else None))
            n = end + 1
    return found


TOML_BLOCKS = blocks()


# -- 1. keys against the models --------------------------------------------------------------


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation may hold at this level (through Optional, unions, Annotated)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _models(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _models(arg)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def _inner(annotation: Any, container: type) -> Any | None:
    """X of a dict[str, X] / list[X] annotation (through Optional, unions, Annotated), else None."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _inner(typing.get_args(annotation)[0], container)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _inner(arg, container)
            if found is not None:
                return found
        return None
    if origin is container:
        return typing.get_args(annotation)[-1]
    return None


def _type_of(model: type[BaseModel]) -> tuple[str, ...]:
    field = model.model_fields.get("type")
    if field is None or typing.get_origin(field.annotation) is not Literal:
        return ()
    return tuple(str(v) for v in typing.get_args(field.annotation))


def _names(model: type[BaseModel]) -> dict[str, str]:
    """Key as written in TOML → field name."""
    names = {}
    for name, field in model.model_fields.items():
        names[name] = name
        for alias in (field.alias, field.validation_alias):
            if isinstance(alias, str):
                names[alias] = name
    return names


def unknown_keys(data: Any, annotation: Any, path: str) -> Iterator[str]:
    """Key paths in `data` that the models of `annotation` do not have."""
    if isinstance(data, list):
        inner = _inner(annotation, list)
        for n, element in enumerate(data):
            yield from unknown_keys(element, inner if inner is not None else annotation, f"{path}[{n}]")
        return
    if not isinstance(data, dict):
        return
    models = _models(annotation)
    if not models:
        inner = _inner(annotation, dict)
        if inner is not None:
            for name, value in data.items():
                yield from unknown_keys(value, inner, f"{path}.{name}" if path else name)
        return
    if len(models) > 1 and "type" in data:
        models = [m for m in models if str(data["type"]) in _type_of(m)] or models
    if len(models) > 1:
        # No type to go by (a secret reference, a move = … table): the member that knows every key.
        models = [m for m in models if set(data) <= set(_names(m))] or models[:1]
    model = models[0]
    names = _names(model)
    for name, value in data.items():
        where = f"{path}.{name}" if path else name
        if name not in names:
            kind = f' (type = "{data["type"]}")' if "type" in data else ""
            yield f"{where}: no such key in {model.__name__}{kind}"
            continue
        yield from unknown_keys(value, model.model_fields[names[name]].annotation, where)


@pytest.mark.parametrize("block", TOML_BLOCKS, ids=[b.where for b in TOML_BLOCKS])
def test_every_key_in_a_toml_block_is_a_key_of_the_models(block: Block) -> None:
    try:
        data = tomllib.loads(block.text)
    except tomllib.TOMLDecodeError as exc:
        pytest.fail(f"{block.where}: not valid TOML: {exc}")
    problems = list(unknown_keys(data, Config, ""))
    assert not problems, f"{block.where}: " + "; ".join(problems)


COMMENTED = re.compile(r"^\s*#\s*([A-Za-z_][\w-]*\s*=\s*\S.*)$")
HEADER = re.compile(r"^\s*(\[\[?[^\]#]+\]\]?)\s*(#.*)?$")


def _table(data: Any, header: str, occurrence: int) -> dict[str, Any] | None:
    """The table a header names in parsed `data` (for ``[[x]]``: its `occurrence`-th element)."""
    names = tomllib.loads(f"probe = {{ {header.strip('[]').strip()} = 1 }}")["probe"]
    node: Any = data
    while isinstance(names, dict) and isinstance(node, dict):
        (name, names), = names.items()
        node = node.get(name)
    if header.startswith("[[") and isinstance(node, list):
        node = node[occurrence] if occurrence < len(node) else None
    return node if isinstance(node, dict) else None


def commented_keys(block: Block) -> Iterator[tuple[int, dict[str, Any]]]:
    """Commented-out settings (``# path_style = true``), each parsed under the table header above
    it, with its line: the options a block offers in comments are keys too.  The table's
    ``type`` is carried over from the block, so the key is checked against the right model."""
    data = tomllib.loads(block.text)
    header, seen = "", {}
    for number, line in enumerate(block.text.splitlines(), block.line + 1):
        found = HEADER.match(line)
        if found:
            header = found[1]
            seen[header] = seen.get(header, -1) + 1
            continue
        match = COMMENTED.match(line)
        if not match:
            continue
        table = _table(data, header, seen.get(header, 0)) if header else data
        kind = f'type = {toml_value(table["type"])}\n' if table and "type" in table else ""
        for text in (match[1], re.sub(r"\s+#.*$", "", match[1])):  # with or without a trailing comment
            try:
                parsed = tomllib.loads(f"{header}\n{kind if not text.startswith('type') else ''}{text}\n")
            except tomllib.TOMLDecodeError:
                continue
            yield number, parsed
            break


@pytest.mark.parametrize("block", TOML_BLOCKS, ids=[b.where for b in TOML_BLOCKS])
def test_every_commented_out_key_is_a_key_of_the_models(block: Block) -> None:
    problems = [f"{block.page.relative_to(ROOT)}:{n}: {problem}"
                for n, data in commented_keys(block) for problem in unknown_keys(data, Config, "")]
    assert not problems, "\n".join(problems)


def test_the_walk_finds_what_it_must() -> None:
    """The walker itself: the issue's mismatches are found, and right keys pass."""
    bad = {"flows": {"f": {"source": {"type": "folder", "path": "/in"},
                           "steps": [{"type": "gunzip", "password": "x"}, {"type": "zip", "name": "a.zip"},
                                     {"type": "deliver", "to": "/out", "name": "x", "label": "y"}]}},
           "connections": {"s": {"type": "s3", "bukket": "b"}}}
    assert sorted(unknown_keys(bad, Config, "")) == [
        'connections.s.bukket: no such key in S3Connection (type = "s3")',
        'flows.f.steps[0].password: no such key in GunzipConfig (type = "gunzip")',
    ]
    good = {"flows": {"f": {"source": {"type": "folder", "path": "/in", "after": {"move": "/a"}},
                            "retry": {"attempts": 2},
                            "steps": [{"type": "unzip", "password": {"env": "P"}}]}}}
    assert list(unknown_keys(good, Config, "")) == []


def all_keys(annotation: Any = Config, seen: set[type[BaseModel]] | None = None) -> set[str]:
    """Every key any model reachable from `annotation` has."""
    seen = set() if seen is None else seen
    keys: set[str] = set()
    for model in _models(annotation):
        if model not in seen:
            seen.add(model)
            keys |= set(_names(model))
            for field in model.model_fields.values():
                keys |= all_keys(field.annotation, seen)
    for container in (list, dict):
        inner = _inner(annotation, container)
        if inner is not None:
            keys |= all_keys(inner, seen)
    return keys


FOREIGN = {
    "unzip": "an ITRP Export Monitor option", "sub_dirs": "an ITRP Export Monitor option",
    "send_emails": "a Rattail option", "process_existing": "a Rattail option",
    "Persistent": "a systemd timer option", "by_hand": "a meta value of the schedule source",
    "RestartPreventExitStatus": "a systemd unit setting", "READY": "an sd_notify message",
    "WATCHDOG": "an sd_notify message", "RELOADING": "an sd_notify message", "STOPPING": "an sd_notify message",
}
"""Keys that the prose writes as ``key = value`` but that are other tools' (or values, not keys)."""
SPAN = re.compile(r"`([^`\n]+)`")


def prose_assignments(page: Path) -> Iterator[tuple[int, str, str]]:
    """(line, key, code) of every inline ``key = value`` span that is valid TOML, outside fences."""
    in_fence = False
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        for span in () if in_fence else SPAN.finditer(line):
            match = re.fullmatch(r"([A-Za-z_][\w-]*)\s*=\s*(.+)", span[1].strip())
            if match:
                try:
                    tomllib.loads(span[1])
                except tomllib.TOMLDecodeError:
                    continue
                yield number, match[1], span[1]


def test_keys_written_in_prose_exist() -> None:
    """The weaker net over prose: an inline `key = value` must name a key some model has (a typo,
    or a key that was renamed, fails; which model is not known from a sentence)."""
    keys = all_keys()
    problems = [f"{page.relative_to(ROOT)}:{n}: `{code}`: no model has a key {key!r}"
                for page in PAGES for n, key, code in prose_assignments(page)
                if key not in keys and key not in FOREIGN]
    assert not problems, "\n".join(problems)


def test_commented_keys_are_checked_against_their_table_type() -> None:
    block = Block(ROOT / "README.md", 1, '[connections.s]\ntype = "s3"\n# path_styel = true   # a typo\n'
                  '# region = "x"\n[[flows.f.steps]]\ntype = "zip"\n[[flows.f.steps]]\ntype = "gunzip"\n'
                  '# password = "x"\n', None)
    assert [(n, problem) for n, data in commented_keys(block) for problem in unknown_keys(data, Config, "")] == [
        (4, 'connections.s.path_styel: no such key in S3Connection (type = "s3")'),
        (10, 'flows.f.steps[0].password: no such key in GunzipConfig (type = "gunzip")')]


def test_fragments_say_why() -> None:
    assert all(b.fragment for b in TOML_BLOCKS if b.fragment is not None)


# -- 2. ferryman check ------------------------------------------------------------------------


def _placeholders(data: Any, tmp: Path, env: dict[str, str | None], key: str = "") -> Any:
    """`data` with absolute paths under `tmp` (and made there), secrets that resolve."""
    if isinstance(data, dict):
        if set(data) == {"env"} and isinstance(data["env"], str):
            env[data["env"]] = "placeholder"
            return data
        if set(data) == {"command"}:
            return {"command": ["echo", "placeholder"]}
        return {k: _placeholders(v, tmp, env, k) for k, v in data.items()}
    if isinstance(data, list):
        return [_placeholders(v, tmp, env, key) for v in data]
    if isinstance(data, str) and data.startswith(("/", "~/")) and "\n" not in data:
        moved = tmp / "fs" / data.lstrip("~/")
        concrete = Path(re.sub(r"\{[^}]*\}", "x", str(moved)))
        if key in FILE_KEYS:
            concrete.parent.mkdir(parents=True, exist_ok=True)
            if not concrete.exists():
                concrete.write_text("placeholder\n")
        else:
            concrete.mkdir(parents=True, exist_ok=True)
        return str(moved)
    return data


def _stub(tmp: Path, call: str) -> Path:
    """A folder holding a stand-in for the reader's own Python module that a python step names
    (``acme.exports:clean``), so that `check` can import it."""
    module, _, attribute = call.partition(":")
    folder = tmp / "modules"
    path = folder.joinpath(*module.split("."))
    for package in [path.parents[n] for n in range(len(module.split(".")) - 1)]:
        package.mkdir(parents=True, exist_ok=True)
        (package / "__init__.py").touch()
    path.parent.mkdir(parents=True, exist_ok=True)
    body = f"class {attribute}:\n    def __init__(self, *a, **k): pass\n    def __call__(self, *a, **k): pass\n" \
        if attribute[:1].isupper() else f"def {attribute}(*a, **k): pass\n"
    path.with_suffix(".py").write_text(body)
    return folder


def declared(page: Path) -> dict[str, dict[str, Any]]:
    """The connections and notifiers that the page's TOML blocks declare: a page tells one story,
    and its later blocks use what an earlier one declared."""
    found: dict[str, dict[str, Any]] = {"connections": {}, "notify": {}}
    for block in TOML_BLOCKS:
        if block.page == page:
            data = tomllib.loads(block.text)
            for table, entries in found.items():
                entries.update({k: v for k, v in data.get(table, {}).items() if k not in entries})
    return found


def completed(data: dict[str, Any], tmp: Path, env: dict[str, str | None],
              context: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """A whole config from a block: the page's connections and notifiers, placeholders, a source
    for every flow, a root in `tmp`."""
    for table, entries in (context or {}).items():
        if entries:
            data[table] = {**entries, **data.get(table, {})}
    data = _placeholders(data, tmp, env)
    if not data.get("flows"):  # a block about connections or settings: one flow to carry them
        (tmp / "in").mkdir(exist_ok=True)
        data["flows"] = {"docs-placeholder": {"source": {"type": "folder", "path": str(tmp / "in")}}}
    for flow in data.get("flows", {}).values():
        for step in flow.get("steps", []) if isinstance(flow, dict) else []:
            if isinstance(step, dict) and step.get("type") == "python" and ":" in str(step.get("call", "")):
                step["pythonpath"] = [*step.get("pythonpath", []), str(_stub(tmp, str(step["call"])))]
        for name in flow.get("notify", []) if isinstance(flow, dict) else []:
            # A notifier the flow names but the page never declares: a log notifier stands in.
            data.setdefault("notify", {}).setdefault(name, {"type": "log"})
        if isinstance(flow, dict) and "source" not in flow:
            (tmp / "in").mkdir(exist_ok=True)
            flow["source"] = {"type": "folder", "path": str(tmp / "in")}
    data.setdefault("ferryman", {})
    if isinstance(data["ferryman"], dict):
        data["ferryman"]["root"] = str(tmp / "state")
    return data


def as_toml(data: dict[str, Any]) -> str:
    return "\n".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in data.items()) + "\n"


CHECKED = [b for b in TOML_BLOCKS if b.fragment is None]


@pytest.mark.parametrize("block", CHECKED, ids=[b.where for b in CHECKED])
def test_every_whole_toml_block_passes_ferryman_check(block: Block, tmp_path: Path) -> None:
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("FERRYMAN_")}
    data = completed(tomllib.loads(block.text), tmp_path, env, declared(block.page))
    config = tmp_path / "ferryman.toml"
    config.write_text(as_toml(data), encoding="utf-8")
    # The `check` command itself, run in this process (a subprocess per block costs ~2 s each).
    done = CliRunner().invoke(main, ["check", "-c", str(config)], env=env, catch_exceptions=False)
    assert done.exit_code == 0, (
        f"{block.where}: `ferryman check` failed on this block (mark it <!-- fragment: why --> "
        f"if it is only a piece of a config):\n{done.output}")


def test_the_check_fails_a_wrong_block(tmp_path: Path) -> None:
    """The completion does not paper over real mistakes: a bad value still fails `check`."""
    block = Block(ROOT / "README.md", 1, '[flows.f.source]\ntype = "folder"\npath = "/srv/in"\n'
                  'settle = "soon"\n', None)
    with pytest.raises(AssertionError, match=r"settle.*not a duration"):
        test_every_whole_toml_block_passes_ferryman_check(block, tmp_path)


# -- 3. links and 4. docs named in the code -------------------------------------------------------


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces → '-'."""
    text = re.sub(r"`", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    in_fence = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        if not in_fence and line.startswith("#"):
            base = slug(line.lstrip("#"))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
    return found


def links(page: Path) -> Iterator[tuple[int, str]]:
    in_fence = False
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        for match in LINK.finditer(re.sub(r"`[^`]*`", "", line)):
            yield number, match[1]


def broken_links(page: Path) -> Iterator[str]:
    for number, target in links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
            continue  # https:, mailto: …: not ours to check
        path, _, anchor = target.partition("#")
        goal = (page.parent / path).resolve() if path else page
        where = f"{page.relative_to(ROOT)}:{number}: ({target})"
        if not goal.exists():
            yield f"{where}: no such file {goal.relative_to(ROOT) if goal.is_relative_to(ROOT) else goal}"
        elif anchor and goal.suffix == ".md" and anchor not in anchors(goal):
            yield f"{where}: no heading #{anchor} in {goal.relative_to(ROOT)}"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_relative_links_resolve(page: Path) -> None:
    problems = list(broken_links(page))
    assert not problems, "\n".join(problems)


def test_the_link_check_finds_what_it_must(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# Top\n\n## The `s3` connection\n")
    page = tmp_path / "b.md"
    page.write_text("[ok](a.md) [ok](a.md#the-s3-connection) [no](missing.md) [no](a.md#nope) "
                    "[web](https://example.com/x) `[code](nope.md)`\n")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        assert [p.split(": ", 1)[1] for p in broken_links(page)] == [
            "(missing.md): no such file missing.md", "(a.md#nope): no heading #nope in a.md"]
    finally:
        ROOT = saved


def test_docs_named_in_the_code_exist() -> None:
    named = {(path.relative_to(ROOT), doc) for path in (ROOT / "src").rglob("*.py")
             for doc in re.findall(r"\bdocs/[\w./-]+\.md", path.read_text(encoding="utf-8"))}
    missing = sorted(f"{source}: {doc}" for source, doc in named if not (ROOT / doc).exists())
    assert not missing, "docs named in the code that do not exist: " + ", ".join(missing)
