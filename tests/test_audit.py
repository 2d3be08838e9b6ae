"""`lstm-backtest audit`: clean on the shipped configs, and every planted leak caught and
named with the right first date."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lstm_strategy import load_config
from lstm_strategy.audit import audit
from lstm_strategy.cli import main

from .conftest import ROOT, tiny_overrides

LEAKS = '''
import numpy as np
import pandas as pd
import ta


def tomorrow(bars):
    return bars["Close"].shift(-1).rename("tomorrow") / bars["Close"]


def centred(bars):
    return (bars["Close"].rolling(5, center=True).mean() / bars["Close"]).rename("centred")


def ichimoku_visual(bars):
    span = ta.trend.IchimokuIndicator(bars["High"], bars["Low"], visual=True).ichimoku_a()
    return (span / bars["Close"]).rename("ichimoku_a_visual")


def standardised(bars):
    close = np.log(bars["Close"])
    return ((close - close.mean()) / close.std()).rename("standardised")


def macro_same_day(bars, exogenous):
    joined = exogenous.reindex(bars.index, method="ffill")
    return joined.iloc[:, 0].diff().rename("macro_same_day")


def news_by_date(bars, news):
    days = news.assign(day=news["timestamp"].dt.normalize()).groupby("day")["score"].mean()
    return days.reindex(bars.index).fillna(0.0).rename("news_by_date")
'''

BIDIRECTIONAL = '''
import torch
from torch import nn
from lstm_strategy.models import SequenceModel


class Bidirectional(SequenceModel):
    stateful = True

    def __init__(self, n_features, config):
        super().__init__(n_features, config)
        self.lstm = nn.LSTM(n_features, 8, batch_first=True, bidirectional=True)
        self.head = nn.Linear(16, 1)

    def forward(self, x, state=None):
        out, _ = self.lstm(x)
        return self.head(out).squeeze(-1), None
'''


@pytest.fixture(scope="module")
def code(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("usercode")
    (folder / "leaks.py").write_text(LEAKS)
    (folder / "bidir.py").write_text(BIDIRECTIONAL)
    news = folder / "news.csv"
    days = pd.bdate_range("2009-06-01", "2011-06-30")
    rows = [f"{d.date()} 17:30,AAPL,{0.1 * ((i % 9) - 4):.1f}" for i, d in enumerate(days[::3])]
    news.write_text("timestamp,ticker,score\n" + "\n".join(rows) + "\n")
    return folder


def _config(*extra: str, macro: bool = False) -> object:
    return load_config(None, [*tiny_overrides(**({} if macro else {"data.macro": "null"})),
                              *extra], device="cpu")


def _run(capsys: pytest.CaptureFixture, *extra: str) -> tuple[int, str]:
    code = main(["audit", "--quiet", *(part for o in [*tiny_overrides(), *extra]
                                       for part in ("--set", o))])
    return code, capsys.readouterr().out


@pytest.mark.parametrize("function,first", [
    ("tomorrow", "cut"), ("centred", "before cut"), ("ichimoku_visual", "start"),
    ("standardised", "start")])
def test_a_leaking_feature_is_named_with_its_first_date(code: Path, function: str, first: str,
                                                        capsys: pytest.CaptureFixture) -> None:
    extra = f"features.extra=[{code / 'leaks.py'}:{function}]"
    config = _config(extra)
    result = audit(config, cuts=2)
    table = result.table()
    culprits = table[table["component"].str.startswith("feature")]
    assert set(culprits["component"]) == {next(
        f"feature {n} (AAPL)" for n in ("tomorrow", "centred", "ichimoku_a_visual",
                                        "standardised") if n.startswith(function[:5]))}
    dates = pd.to_datetime(culprits["first_date"])
    cut = result.cuts[0]
    bars = pd.read_csv(ROOT / "data" / "AAPL.csv", index_col="Date", parse_dates=True).loc[
        "2008-01-01":"2011-12-31"].index
    if first == "start":  # whole-series statistics move the first values already
        assert dates.min() <= bars[60]
    else:  # shift(-1) shows at the cut itself, a centred window one bar before it
        expected = cut if first == "cut" else bars[bars.get_loc(cut) - 1]
        assert dates.min() == expected, (dates.min(), expected)
    status, out = _run(capsys, extra)
    assert status == 1 and "LEAK" in out and function[:5] in out


def test_exogenous_without_its_publication_lag_is_caught(code: Path) -> None:
    config = _config(f"features.extra=[{code / 'leaks.py'}:macro_same_day]", macro=True)
    result = audit(config, cuts=2)
    table = result.table()
    row = table[(table["check"] == "exogenous")]
    assert list(row["component"]) == ["feature macro_same_day (AAPL)"]
    # the first changed value is dated the day after the cut; used on that day's own bar
    cut = result.cuts[0]
    assert pd.Timestamp(row["first_date"].iloc[0]) > cut
    assert "published at" in row["detail"].iloc[0]
    ours = table["component"].str.startswith("feature macro_") & (
        table["component"] != "feature macro_same_day (AAPL)")
    assert not ours.any()  # the package's own as-of join is causal


def test_a_headline_after_the_close_used_on_its_own_bar_is_caught(code: Path) -> None:
    config = _config(f"data.sentiment={code / 'news.csv'}",
                     f"features.extra=[{code / 'leaks.py'}:news_by_date]")
    result = audit(config, cuts=2)
    table = result.table()
    news = table[table["check"] == "news"]
    assert list(news["component"]) == ["feature news_by_date (AAPL)"]
    assert "closed before them" in news["detail"].iloc[0]
    headlines = pd.read_csv(code / "news.csv", parse_dates=["timestamp"])
    after = headlines[headlines["timestamp"] > result.cuts[0] + pd.Timedelta(hours=16)]
    assert pd.Timestamp(news["first_date"].iloc[0]) == after["timestamp"].min().normalize()
    assert not (table["component"] == "feature sentiment (AAPL)").any()  # ours is causal


def test_a_bidirectional_model_is_named(code: Path, capsys: pytest.CaptureFixture) -> None:
    config = load_config(None, [*tiny_overrides(model=False, **{"data.macro": "null"}),
                                f"model.class={code / 'bidir.py'}:Bidirectional"], device="cpu")
    result = audit(config, cuts=1)
    table = result.table()
    model = table[table["check"] == "model causality"]
    assert list(model["component"]) == ["model Bidirectional"]
    assert "reads the future" in model["detail"].iloc[0]
    assert (table["check"] == "truncation").any()  # its forecasts move under a cut too


@pytest.mark.parametrize("name", ["default", "lstm_long_short", "window_lstm",
                                  "direction_multi"])
def test_the_shipped_configs_are_clean(name: str) -> None:
    config = load_config(name, tiny_overrides(), device="cpu")
    result = audit(config, cuts=2)
    assert result.clean, result.table().to_string()


def test_the_example_models_and_a_multi_asset_config_are_clean() -> None:
    for path in ("examples/gru.yaml", "examples/tcn.yaml"):
        config = load_config(ROOT / path, tiny_overrides(model=False), device="cpu")
        result = audit(config, cuts=2)
        assert result.clean, (path, result.table().to_string())
    sp = ROOT / "data" / "sp32"
    pooled = load_config("sp32_compare", [*tiny_overrides(), "model.kind=lstm_gnn",
                                          "data.macro=null"],
                         device="cpu", **{"data.paths": [str(sp / f"{t}.csv")
                                                         for t in ("KO", "PEP", "XOM", "CVX")]})
    result = audit(pooled, cuts=1)
    assert result.clean, result.table().to_string()
