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
    return settle(at)


def settle(at, timeout_s: float = 240.0):
    """Reruns the page until its background jobs are in (as the page's own timer would), then returns it."""
    import time

    deadline = time.monotonic() + timeout_s
    while any("in the background" in i.value for i in at.info):
        assert time.monotonic() < deadline, "the background jobs did not finish"
        time.sleep(0.5)
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
def test_choose_workload_memory_and_strategies(page) -> None:
    before = _metrics(page)["Bytes in"]
    page.selectbox(key="family").set_value("transformer serving").run()
    page.selectbox(key="preset").set_value("gpt2-small").run()
    page.slider(key="layers").set_value(2).run()
    page.radio(key="unit").set_value("GiB").run()
    assert not page.exception, page.exception
    page.number_input(key="gib").set_value(0.25).run()
    page.multiselect(key="strategies").set_value(["lru", "mru", "belady", "lower-bound"]).run()
    assert not page.exception, page.exception
    settle(page)
    assert _metrics(page)["Bytes in"] != before
    bars = page.get("plotly_chart")[0].proto
    assert "mru" in bars.spec and "lower-bound" in bars.spec


def test_an_infeasible_memory_is_a_one_line_message(page) -> None:
    page.radio(key="unit").set_value("GiB").run()
    page.number_input(key="gib").set_value(0.001).run()
    assert not page.exception
    assert "cannot hold op" in page.error[0].value and "\n" not in page.error[0].value


def test_your_model_from_an_example_config_and_a_deployable_recommendation(page) -> None:
    """'your model' with a bundled example traces it and shows what presets show; the recommendation is a legal
    strategy (the offline ones are a ceiling), and LRU stands beside it."""
    page.radio(key="source").set_value("your model").run()
    page.selectbox(key="hf_example").set_value("qwen2-0.5b").run()
    page.number_input(key="hf_seq").set_value(64).run()
    page.number_input(key="hf_layers").set_value(1).run()
    assert not page.exception, page.exception
    settle(page)
    assert any("Traced qwen2-0.5b" in c.value for c in page.sidebar.caption)
    assert {"Hit rate", "Step time", "Score vs bound"} <= set(_metrics(page))
    pick = next(h.value for h in page.subheader if h.value.startswith("Fewest bytes moved by a deployable policy"))
    assert pick.endswith(("(heuristic)", "(learned)")), pick
    assert any(c.value.startswith("LRU beside it") for c in page.caption) or "lru" in pick
    assert any("as you waited" in c.value for c in page.caption)


@pytest.mark.slow  # loads the 4-bit LLM entry (seconds)
def test_the_llm_runs_in_the_background_and_fills_in(page) -> None:
    options = page.multiselect(key="strategies").options
    assert any(o.startswith("llm (learned") for o in options), options
    page.multiselect(key="strategies").set_value(["lru", "schedule", "llm"]).run()
    assert any("in the background" in i.value for i in page.info)  # the heuristics first, the LLM after
    assert "llm" not in page.get("plotly_chart")[0].proto.spec
    settle(page)
    assert "llm" in page.get("plotly_chart")[0].proto.spec
