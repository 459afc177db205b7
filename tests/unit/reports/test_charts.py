"""The reports' inline SVG charts (``transfers/reports/charts.py``): figures land where the axis says,
gaps stay gaps, empty and one-point series draw, every label is escaped, nothing can call out."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from transfers.reports.charts import Frame, chart, count, describe, nice_top, percent

FRAME = Frame(width=400, height=200, left=50, right=10, top=20, bottom=30)  # plot: x 50..390, y 20..170
HOSTILE = '<script>alert("x")</script> & <img src=//evil.example/p.gif>'


def parse(svg: str) -> ET.Element:
    """The chart as XML: it must be well formed (so every label was escaped) to parse at all."""
    return ET.fromstring(svg)


def points(svg: str) -> list[tuple[float, float]]:
    """The centre of each point drawn: circles, and the highlighted square."""
    root = parse(svg)
    out = [(float(c.get("cx", "")), float(c.get("cy", ""))) for c in root.iter("circle")]
    out += [
        (float(r.get("x", "")) + 5, float(r.get("y", "")) + 5)
        for r in root.iter("rect")
        if "point" in r.get("class", "")
    ]
    return sorted(out)


def bars(svg: str) -> list[tuple[float, float, float]]:
    """(centre x, top y, height) of each bar."""
    return [
        (float(r.get("x", "")) + float(r.get("width", "")) / 2, float(r.get("y", "")), float(r.get("height", "")))
        for r in parse(svg).iter("rect")
        if "bar" in r.get("class", "")
    ]


def test_line_values_map_to_the_axis_and_evenly_spaced_dates():
    svg = chart("line", ["d1", "d2", "d3"], [0, 50, 100], ident="t", title="T", top=100, frame=FRAME)
    assert points(svg) == [(50.0, 170.0), (220.0, 95.0), (390.0, 20.0)]  # 0 on the baseline, 100 at the top
    polyline = next(parse(svg).iter("polyline"))
    assert polyline.get("points") == "50.0,170.0 220.0,95.0 390.0,20.0"
    baseline = next(e for e in parse(svg).iter("line") if e.get("class") == "baseline")
    assert float(baseline.get("y1", "")) == FRAME.baseline == 170


def test_a_missing_figure_breaks_the_line_and_is_said_in_words():
    svg = chart("line", ["a", "b", "c", "d", "e"], [1, 2, None, 3, 4], ident="gap", title="Rows", top=4, frame=FRAME)
    lines = [p.get("points") for p in parse(svg).iter("polyline")]
    assert len(lines) == 2 and all(len(str(p).split()) == 2 for p in lines)  # a-b and d-e, never across c
    assert len(points(svg)) == 4
    assert "c: no figure" in next(parse(svg).iter("desc")).text  # type: ignore[operator]


def test_bar_heights_are_in_proportion_and_bars_sit_in_their_slots():
    svg = chart("bar", ["Jan", "Feb", "Mar", "Apr"], [0, 25, 100, None], ident="b", title="T", top=100, frame=FRAME)
    drawn = bars(svg)
    assert [x for x, _, _ in drawn] == [92.5, 177.5, 262.5]  # slot centres of 85 px slots; April has no bar
    assert [h for _, _, h in drawn] == [0.0, 37.5, 150.0]  # 150 px plot: 25 of 100 is a quarter
    assert [y + h for _, y, h in drawn] == [170.0] * 3  # every bar stands on the baseline
    texts = [t.text for t in parse(svg).iter("text")]
    assert "0" in texts and "25" in texts and "100" in texts  # zero is a figure, labelled


def test_an_empty_series_draws_a_frame_that_says_so():
    for kind in ("line", "bar"):
        svg = chart(kind, [], [], ident="empty", title="Records per run", frame=FRAME)
        root = parse(svg)
        assert "No figures yet" in [t.text for t in root.iter("text")]
        assert next(root.iter("desc")).text == "Records per run: no figures yet."
        assert not list(root.iter("circle")) and not bars(svg)


def test_a_single_point_or_bar_sits_in_the_middle_with_its_figure():
    line = chart("line", ["2026-06-02"], [12], ident="one", title="Rows", highlight=0, frame=FRAME)
    assert points(line) == [(220.0, FRAME.y(12, nice_top(12)))]
    assert not list(parse(line).iter("polyline"))  # one point, no line
    assert "12" in [t.text for t in parse(line).iter("text")]
    bar = chart("bar", ["2026-06-02"], [12], ident="one", title="Rows", frame=FRAME)
    assert [x for x, _, _ in bars(bar)] == [220.0]


def test_all_zero_and_all_failing_shares_lie_on_the_baseline_and_the_top():
    zero = chart(
        "line", ["a", "b"], [0.0, 0.0], ident="z", title="T", fmt=percent, top=nice_top(0, cap=1.0), frame=FRAME
    )
    assert [y for _, y in points(zero)] == [170.0, 170.0]
    full = chart(
        "line", ["a", "b"], [1.0, 1.0], ident="f", title="T", fmt=percent, top=nice_top(1.0, cap=1.0), frame=FRAME
    )
    assert [y for _, y in points(full)] == [20.0, 20.0]
    assert "100%" in [t.text for t in parse(full).iter("text")]  # the axis tops out at 100%, not 150%


def test_the_highlighted_point_differs_in_shape_and_is_labelled():
    svg = chart("line", ["a", "b", "c"], [0.1, 0.2, 0.05], ident="h", title="T", fmt=percent, highlight=2, frame=FRAME)
    squares = [r for r in parse(svg).iter("rect") if r.get("class") == "point current"]
    assert len(squares) == 1 and len(list(parse(svg).iter("circle"))) == 2
    assert any(t.text == "5%" and t.get("font-weight") == "bold" for t in parse(svg).iter("text"))


def test_every_label_is_escaped_and_nothing_can_call_out():
    svg = chart("bar", [HOSTILE, "ok"], [3, 4], ident="x", title=f"Title {HOSTILE}", frame=FRAME)
    svg += chart("line", [HOSTILE, "ok"], [3, None], ident="y", title=HOSTILE, frame=FRAME)
    lowered = svg.lower()
    assert "<script" not in lowered and "<img" not in lowered
    assert "http" not in lowered  # not even the SVG namespace URL: inline SVG in HTML needs none
    root = parse(chart("bar", [HOSTILE], [3], ident="x", title=HOSTILE, frame=FRAME))
    assert next(root.iter("title")).text == HOSTILE  # escaped, not dropped: a reader sees the label as written
    assert HOSTILE in str(next(root.iter("desc")).text)


def test_the_chart_is_an_image_named_by_its_title_and_figures():
    svg = chart(
        "bar", ["2026-05", "2026-06"], [1234, 56], ident="disclosures-1", title="Records disclosed", frame=FRAME
    )
    root = parse(svg)
    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == "disclosures-1-title disclosures-1-desc"
    assert next(root.iter("title")).get("id") == "disclosures-1-title"
    assert next(root.iter("desc")).text == "Records disclosed: 2026-05: 1,234; 2026-06: 56."
    assert [t.text for t in root.iter("title")][1:] == ["2026-05: 1,234", "2026-06: 56"]  # each bar's tooltip


def test_crowded_labels_are_thinned_and_the_last_is_always_shown():
    labels = [f"2026-05-{d:02d}" for d in range(1, 12)]
    svg = chart("line", labels, list(range(11)), ident="c", title="T", frame=Frame(width=280, height=150))
    shown = [t for t in parse(svg).iter("text") if t.text in labels]
    assert 1 < len(shown) < len(labels) and shown[-1].text == labels[-1]
    xs = [float(t.get("x", "")) for t in shown]
    assert min(b - a for a, b in zip(xs, xs[1:], strict=False)) >= 1.5 * len(labels[0]) * 0.62 * 12


def test_bad_input_is_refused_with_the_chart_named():
    with pytest.raises(ValueError, match="chart 'x': 2 labels but 1 values"):
        chart("line", ["a", "b"], [1], ident="x", title="T")
    with pytest.raises(ValueError, match="chart id 'a b"):
        chart("bar", ["a"], [1], ident='a b"><script>', title="T")


@pytest.mark.parametrize(
    ("largest", "cap", "top"),
    [
        (0, None, 1),
        (0, 1.0, 1.0),
        (12, None, 15),
        (30, None, 30),
        (31, None, 40),
        (958, None, 1000),
        (0.167, 1.0, 0.2),
        (0.03, 1.0, 0.03),
        (0.9, 1.0, 1.0),
        (1.0, 1.0, 1.0),
        (7, None, 8),
    ],
)
def test_the_axis_top_is_a_round_figure_at_or_above_the_largest(largest, cap, top):
    assert nice_top(largest, cap=cap) == pytest.approx(top)


def test_figures_read_as_people_write_them():
    assert (count(1234), count(0), count(7.5)) == ("1,234", "0", "7.5")
    assert (percent(0.125), percent(0.1), percent(0), percent(1)) == ("12.5%", "10%", "0%", "100%")
    assert describe("T", ["a", "b"], [None, 0.5], percent) == "T: a: no figure; b: 50%."
