"""GFS selection (`ferryman.steps.backup.gfs`): restic's own golden cases, then properties."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ferryman.steps.backup.gfs import Policy, Within, select

RESTIC = json.loads((Path(__file__).parents[1] / "data" / "restic_forget.json").read_text())


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace(" ", "T").replace("Z", "")).replace(tzinfo=UTC)


def _policy(raw: dict[str, object]) -> Policy:
    values = dict(raw)
    within = values.pop("within", None)
    return Policy(**values, within=Within.parse(str(within)) if within else None)  # type: ignore[arg-type]


def _restic_rule(match: str) -> str:
    """restic's reason text → our rule: 'daily snapshot' → 'daily', 'within 1d' → 'within'."""
    return "within" if match.startswith("within") else match.removesuffix(" snapshot")


@pytest.mark.parametrize("case", RESTIC["cases"], ids=[c["golden"] for c in RESTIC["cases"]])
def test_restic_golden_cases(case: dict[str, object]) -> None:
    """The decision and the reasons of restic's ApplyPolicy, on restic's own snapshot list."""
    snapshots = [_time(t) for t in RESTIC["snapshots"]]
    chosen = select(list(range(len(snapshots))), lambda i: snapshots[i], _policy(case["policy"]))  # type: ignore[arg-type]
    kept = [snapshots[i] for i in chosen.kept]
    assert kept == [_time(t) for t in case["keep"]]  # type: ignore[attr-defined]
    assert len(chosen.kept) + len(chosen.remove) == len(snapshots)
    ours = [sorted(r.rule for r in reasons) for _, reasons in chosen.keep]
    theirs = [sorted(_restic_rule(m) for m in matches) for matches in case["matches"]]  # type: ignore[attr-defined]
    assert ours == theirs


def test_restic_documentation_example() -> None:
    """restic's docs (doc/060_forget.rst): weekday backups for two weeks, a second one on Fridays,
    Wednesday 30 April missed; ``forget --keep-daily 5`` keeps one per day for the last five days
    that had a backup, so it reaches back to the previous Friday's later backup."""
    stamps = ["2025-04-21 11:00", "2025-04-22 11:00", "2025-04-23 11:00", "2025-04-24 11:00", "2025-04-25 11:00",
              "2025-04-25 23:00", "2025-04-28 11:00", "2025-04-29 11:00", "2025-05-01 11:00", "2025-05-02 11:00",
              "2025-05-02 23:00"]
    times = [_time(s) for s in stamps]
    chosen = select(times, lambda t: t, Policy(daily=5))
    assert sorted(chosen.kept) == [_time(s) for s in ("2025-04-25 23:00", "2025-04-28 11:00", "2025-04-29 11:00",
                                                       "2025-05-01 11:00", "2025-05-02 23:00")]
    assert all([r.rule for r in reasons] == ["daily"] for _, reasons in chosen.keep)
    assert len(chosen.remove) == 6


def test_reasons_read_as_periods() -> None:
    times = [datetime(2026, 11, 30, 23, 0, tzinfo=UTC) - timedelta(days=d) for d in range(70)]
    chosen = select(times, lambda t: t, Policy(daily=2, weekly=1, monthly=3))
    texts = {t.date().isoformat(): [r.text for r in reasons] for t, reasons in chosen.keep}
    assert texts["2026-11-30"] == ["daily 2026-11-30", "weekly 2026-W49", "monthly 2026-11"]
    assert texts["2026-11-29"] == ["daily 2026-11-29"]
    assert texts["2026-10-31"] == ["monthly 2026-10"]
    assert texts["2026-09-30"] == ["monthly 2026-09"]
    assert len(chosen.keep) == 4


def test_periods_are_counted_in_the_zone() -> None:
    """23:30 and 00:30 UTC are two days in UTC, one in Toronto (19:30 and 20:30 on 1 June)."""
    times = [datetime(2026, 6, 1, 1, 0, tzinfo=UTC), datetime(2026, 6, 1, 23, 30, tzinfo=UTC),
             datetime(2026, 6, 2, 0, 30, tzinfo=UTC), datetime(2026, 6, 3, 12, 0, tzinfo=UTC)]
    in_utc = select(times, lambda t: t, Policy(daily=3), zone=UTC)
    assert in_utc.remove == [times[0]]
    toronto = select(times, lambda t: t, Policy(daily=3), zone=ZoneInfo("America/Toronto"))
    assert toronto.remove == [times[1]]
    assert [r.text for r in toronto.keep[-1][1]] == ["daily 2026-05-31"]


def test_fewer_backups_than_asked_keeps_them_all() -> None:
    """daily 7 with three days of backups: all three days' newest and the oldest backup stay."""
    times = [datetime(2026, 1, d, h, tzinfo=UTC) for d in (1, 2, 3) for h in (1, 2)]
    chosen = select(times, lambda t: t, Policy(daily=7))
    assert sorted(chosen.kept) == [times[0], times[1], times[3], times[5]]
    assert [r.rule for r in chosen.keep[-1][1]] == ["oldest daily"]


def test_within_is_relative_to_the_newest_and_ignores_the_future() -> None:
    now = datetime(2026, 3, 31, 12, tzinfo=UTC)
    times = [datetime(2026, 3, d, 12, tzinfo=UTC) for d in (1, 2, 3, 4, 30)] + [now + timedelta(days=400)]
    chosen = select(times, lambda t: t, Policy(within=Within.parse("1m")), now=now)
    # newest not in the future: 30 March; minus one month is 30 February, which rolls over to 2 March
    assert sorted(chosen.kept) == [times[2], times[3], times[4], times[5]]


@pytest.mark.parametrize("text, message", [
    ("5min", "not a keep-within span"), ("", "not a keep-within span"), ("0d", "empty span"),
    ("1d2d", "not a keep-within span"), ("3w", "not a keep-within span"),
])
def test_within_refuses(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Within.parse(text)


# ---- properties --------------------------------------------------------------------------------

EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
moments = st.lists(st.integers(0, 3 * 365 * 24 * 60).map(lambda m: EPOCH + timedelta(minutes=m)),
                   min_size=1, max_size=60)
policies = st.builds(Policy, last=st.integers(0, 4), hourly=st.integers(0, 4), daily=st.integers(0, 8),
                     weekly=st.integers(0, 6), monthly=st.integers(0, 13), yearly=st.integers(0, 3),
                     within=st.none() | st.builds(Within, days=st.integers(1, 60))).filter(lambda p: not p.empty)
zones = st.sampled_from([UTC, ZoneInfo("America/Toronto"), ZoneInfo("Asia/Kolkata")])


@settings(max_examples=300, deadline=None)
@given(moments, policies, zones)
def test_the_newest_always_survives(times: list[datetime], policy: Policy, zone: ZoneInfo) -> None:
    chosen = select(list(range(len(times))), lambda i: times[i], policy, zone)
    newest = max(range(len(times)), key=lambda i: (times[i], -i))
    assert newest in chosen.kept
    assert sorted(chosen.kept + chosen.remove) == list(range(len(times)))


@settings(max_examples=300, deadline=None)
@given(moments, policies, st.sampled_from(["last", "hourly", "daily", "weekly", "monthly", "yearly", "within"]),
       st.integers(1, 5), zones)
def test_a_larger_keep_never_keeps_fewer(times: list[datetime], policy: Policy, rule: str, more: int,
                                         zone: ZoneInfo) -> None:
    """Raising any one rule keeps a superset: everything kept before is still kept."""
    if rule == "within":
        days = (policy.within.days if policy.within else 0) + more
        larger = Policy(**{n: c for n, c in policy.counts()}, within=Within(days=days))
    else:
        larger = Policy(**{**dict(policy.counts()), rule: getattr(policy, rule) + more}, within=policy.within)
    before = set(select(list(range(len(times))), lambda i: times[i], policy, zone).kept)
    after = set(select(list(range(len(times))), lambda i: times[i], larger, zone).kept)
    assert before <= after
