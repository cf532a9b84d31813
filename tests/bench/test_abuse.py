"""bench.abuse without running it: it imports, covers every item of issue 12 once,
reads server frames and measures gaps as worked out by hand, and prints its table
with a verdict per figure."""

from __future__ import annotations

import asyncio

import pytest

from bench.abuse import SCENARIOS, RawWs, Row, client_frame, format_table, longest_gap, main, percentile


def test_one_scenario_per_item_of_the_issue_and_each_says_what_holding_means() -> None:
    assert sorted(s.item for s in SCENARIOS) == list(range(1, 10))
    assert len({s.name for s in SCENARIOS}) == len(SCENARIOS)
    assert all("Holds when" in " ".join((s.attack.__doc__ or "").split()) for s in SCENARIOS)


def test_list_names_every_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    assert all(s.name in out for s in SCENARIOS)


def test_longest_gap_counts_the_edges_of_the_window() -> None:
    frames = [9.0, 10.0, 11.0, 14.5, 15.5]
    assert longest_gap(frames, 10.5, 16.0) == pytest.approx(3.5)  # 11.0 -> 14.5
    assert longest_gap(frames, 10.5, 20.0) == pytest.approx(4.5)  # 15.5 -> the end, nothing since
    assert longest_gap([12.0], 10.0, 12.5) == pytest.approx(2.0)  # the start -> the first frame
    assert longest_gap([], 0.0, 1.0) is None


def test_percentile_of_hand_values() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 51.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([7.0], 0.99) == 7.0


async def test_server_frames_are_read_and_a_close_gives_its_code() -> None:
    reader = asyncio.StreamReader()
    text = b"x" * 300  # a 16-bit length
    reader.feed_data(bytes([0x81, 126]) + len(text).to_bytes(2, "big") + text)
    reader.feed_data(bytes([0x88, 4]) + (1008).to_bytes(2, "big") + b"no")
    reader.feed_eof()
    ws = RawWs(reader, None, 101, b"")  # type: ignore[arg-type]
    assert await ws.next_frame() == (1, text)
    assert await ws.outcome(5.0) == "1008"


def test_client_frames_are_masked() -> None:
    frame = client_frame(b"hello")
    assert frame[0] == 0x81 and frame[1] == 0x80 | 5
    mask, body = frame[2:6], frame[6:]
    assert bytes(b ^ mask[i % 4] for i, b in enumerate(body)) == b"hello"


def test_the_table_marks_each_figure_against_its_target() -> None:
    good = Row("calm", 1, 100.0, 104.0, 101.0, 2.0, 1.02, 9.0, 40.0, 0, 0, True, "all closed with 1008")
    bad = Row("rough", 2, 100.0, 400.0, 390.0, None, 10.6, 120.0, 9000.0, 3, 2, False, "none closed")
    broken = Row("broken", 3, error="RuntimeError: the server was not healthy")
    for row in (good, bad, broken):
        row.judge()
    assert good.ok and not bad.ok and not broken.ok
    table = format_table([good, bad, broken])
    lines = table.splitlines()
    assert lines[0].split()[:2] == ["scenario", "#"]
    calm = next(line for line in lines if line.startswith("calm"))
    rough = next(line for line in lines if line.startswith("rough"))
    assert "FAIL" not in calm and calm.rstrip().endswith("ok")
    assert "100/400/390 (30+) FAIL" in rough and "10.60 FAIL" in rough and "(3 failed) FAIL" in rough
    assert "2 FAIL" in rough
    assert "broken" in table and "RuntimeError: the server was not healthy" in table
    assert "rough: none closed" in table
