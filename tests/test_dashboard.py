"""The Streamlit page, driven with AppTest against an in-process API: choose a workload, change memory, pick
strategies, run; no exception and the charts present."""

from __future__ import annotations

from pathlib import Path

import pytest

APP = str(Path(__file__).resolve().parent.parent / "app" / "dashboard.py")


@pytest.fixture()
def page(monkeypatch: pytest.MonkeyPatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("TENSORCACHE_API_URL", "inprocess")
    at = AppTest.from_file(APP, default_timeout=300)
    at.run()
    assert not at.exception, at.exception
    return at


def _metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_default_page_shows_metrics_and_charts(page) -> None:
    assert page.title[0].value == "TensorCache Copilot"
    metrics = _metrics(page)
    assert {"Hit rate", "Byte hit ratio", "Step time", "Step speed-up vs LRU", "Score vs bound"} <= set(metrics)
    assert float(metrics["Score vs bound"]) <= 1.0
    assert metrics["Step time"].endswith(" s") and metrics["Step speed-up vs LRU"].endswith("×")
    headline = [m.value for m in page.markdown if "s/step" in m.value]
    assert headline and headline[0].startswith("**LRU: ") and "best legal policy" in headline[0]
    charts = page.get("plotly_chart")
    assert len(charts) >= 5  # bytes, step time, timeline, heatmap, capacity curve
    assert "compute" in charts[1].proto.spec and "waiting on the link" in charts[1].proto.spec
    assert "tensorcache-simulate" in page.code[0].value


@pytest.mark.slow  # reruns the whole page for each control (about a minute)
def test_choose_workload_memory_and_strategies_then_run(page) -> None:
    before = _metrics(page)["Bytes in"]
    page.selectbox(key="family").set_value("transformer serving").run()
    page.selectbox(key="preset").set_value("gpt2-small").run()
    page.slider(key="layers").set_value(2).run()
    page.radio(key="unit").set_value("GiB").run()
    assert not page.exception, page.exception
    page.number_input(key="gib").set_value(0.25).run()
    page.multiselect(key="strategies").set_value(["lru", "mru", "belady", "lower-bound"]).run()
    page.button(key="run").click().run()
    assert not page.exception, page.exception
    assert _metrics(page)["Bytes in"] != before
    bars = page.get("plotly_chart")[0].proto
    assert "mru" in bars.spec and "lower-bound" in bars.spec


def test_an_infeasible_memory_is_a_one_line_message(page) -> None:
    page.radio(key="unit").set_value("GiB").run()
    page.number_input(key="gib").set_value(0.001).run()
    assert not page.exception
    assert "cannot hold op" in page.error[0].value and "\n" not in page.error[0].value
