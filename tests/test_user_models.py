"""Models and features of your own: the example GRU and TCN (examples/, outside the package)
trained walk-forward from YAML and from Python, batch == streaming, checkpoints, truncation;
bad class paths and params are one line; old checkpoints still load."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lstm_strategy import CheckpointError, ConfigError, ModelConfig, load_config
from lstm_strategy.cli import main
from lstm_strategy.features import FeatureConfig, build_features, make_target, warmup_bars
from lstm_strategy.forecaster import Forecaster, load_checkpoint
from lstm_strategy.training import WalkForwardResult, fit_forecaster, walk_forward

from .conftest import ROOT, TINY_MODEL, TINY_TRAIN, tiny_overrides

EXAMPLES = ROOT / "examples"
GRU = f"{EXAMPLES / 'user_models.py'}:GRUForecaster"
TCN = f"{EXAMPLES / 'user_models.py'}:TCNForecaster"
FEATURES = f"{EXAMPLES / 'user_features.py'}:gap_and_range"


@pytest.fixture(scope="module")
def inputs(aapl_small: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    features = build_features(aapl_small, FeatureConfig(extra=(FEATURES,)))
    return features, make_target(aapl_small["Close"], 1)


@pytest.mark.parametrize("model", [ModelConfig(kind=GRU, params={"hidden_size": 8}),
                                   ModelConfig(kind=TCN, params={"channels": 8, "layers": 2})],
                         ids=["gru", "tcn"])
def test_example_models_walk_forward_stream_and_round_trip(
        aapl_small: pd.DataFrame, inputs: tuple, model: ModelConfig, tmp_path: Path) -> None:
    features, target = inputs
    assert {"overnight_gap", "range_vs_close"} <= set(features.columns)  # named, in order
    result = walk_forward(features, target, model, TINY_TRAIN, device="cpu", progress=False)
    assert result.predictions.notna().sum() > 300 and len(result.folds) >= 3
    # batch == streaming on every bar, across the fold switches
    stream = result.stream()
    values = features.to_numpy()
    streamed = np.array([stream.step(d, values[i]) for i, d in enumerate(features.index)])
    batch = result.predictions.to_numpy()
    np.testing.assert_array_equal(np.isnan(streamed), np.isnan(batch))
    np.testing.assert_allclose(streamed, batch, rtol=0, atol=1e-6, equal_nan=True)
    # checkpoint round trip: the class path and params travel with the weights
    path = tmp_path / "wf.pt"
    result.save(path)
    loaded = WalkForwardResult.load(path)
    pd.testing.assert_series_equal(loaded.predictions, result.predictions, check_freq=False)
    np.testing.assert_array_equal(loaded.folds[-1].forecaster.predict(features).to_numpy(),
                                  result.folds[-1].forecaster.predict(features).to_numpy())
    assert loaded.model_config == model
    # truncation: cut after T, rebuild features and forecasts, nothing up to T moves
    cut = features.index[features.index.get_loc(result.folds[1].retrain_date) + 11]
    bars = aapl_small.loc[:cut]
    short = walk_forward(build_features(bars, FeatureConfig(extra=(FEATURES,))),
                         make_target(bars["Close"], 1), model, TINY_TRAIN, device="cpu",
                         progress=False)
    np.testing.assert_array_equal(short.predictions.to_numpy(),
                                  result.predictions.loc[:cut].to_numpy())


def test_a_user_model_runs_from_yaml_and_python(tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    args = ["run", "--config", str(EXAMPLES / "gru.yaml"), "--out", str(out), "--quiet",
            *(part for o in [*tiny_overrides(model=False), "model.params.hidden_size=8"]
              for part in ("--set", o))]
    assert main(args) == 0
    saved = (out / "config.yaml").read_text()
    assert "GRUForecaster" in saved and "hidden_size: 8" in saved
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["strategy"]["n_trades"] > 0
    from examples.user_models import GRUForecaster  # the class itself, from Python

    config = load_config(None, [*tiny_overrides()], device="cpu")
    config = replace(config, model=ModelConfig(kind="examples.user_models:GRUForecaster",
                                               params={"hidden_size": 8}))
    assert config.model.model_class is GRUForecaster
    from lstm_strategy import run_experiment

    result = run_experiment(config, progress=False)
    assert result.backtests["lstm"].metrics["n_trades"] > 0
    assert result.walk_forward["AAPL"].folds[0].forecaster.model.__class__ is GRUForecaster


@pytest.mark.parametrize("setting,fragment", [
    ("model.class=nosuchpkg.models:GRU", "cannot import nosuchpkg.models"),
    (f"model.class={EXAMPLES / 'user_models.py'}:Nope", "has no 'Nope'"),
    ("model.class=collections:OrderedDict", "is not a model: subclass"),
    (f"model.class={GRU}", None),
    (f"model.class={GRU},model.params.hidden=3",
     f"unknown key(s) ['hidden'] for {GRU}; its params: hidden_size (int, default 32)"),
    (f"model.class={GRU},model.params.hidden_size=big",
     "model.params.hidden_size='big' must be int"),
    ("model.window=20", "model.window=20 is not a knob of model.kind=sequence"),
    ("model.params.hidden_size=0", "model.params.hidden_size=0 must be >= 1"),
    ("features.extra=[nosuch.features:fn]", "cannot import nosuch.features"),
    ("features.set=alpha999", "features.set='alpha999'"),
])
def test_bad_classes_params_and_features_are_one_line(setting: str, fragment: str | None,
                                                      capsys: pytest.CaptureFixture) -> None:
    extra = setting.split(",") if fragment is not None else [setting, "model.params.layers=0"]
    own = any("model.class" in o or "model.params." in o for o in extra)
    status = main(["check", *(part for o in [*tiny_overrides(model=not own), *extra]
                              for part in ("--set", o))])
    err = capsys.readouterr().err.strip()
    assert status == 2 and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert (fragment or "layers=0 must be >= 1") in err, err


def test_checkpoints_from_before_user_models_still_load(tmp_path: Path, inputs: tuple) -> None:
    features, target = inputs
    forecaster = fit_forecaster(features, target, TINY_MODEL, TINY_TRAIN, device="cpu")
    path = tmp_path / "model.pt"
    forecaster.save(path)
    blob = load_checkpoint(path, "forecaster")
    del blob["forecaster"]["model_class"]  # what 0.1.0 wrote: no class, every knob flat
    blob["forecaster"]["model_config"] = {
        "kind": "sequence", "hidden_size": 8, "num_layers": 1, "dropout": 0.0,
        "head": "regression", "window": 60, "asset_embedding": 4, "graph": "correlation",
        "graph_k": 5, "graph_threshold": 0.0, "graph_window": 252, "graph_layer": "gcn",
        "graph_layers": 1}
    blob["version"] = "0.1.0"
    torch.save(blob, tmp_path / "old.pt")
    old = Forecaster.load(tmp_path / "old.pt")
    np.testing.assert_array_equal(old.predict(features).to_numpy(),
                                  forecaster.predict(features).to_numpy())
    blob["forecaster"]["model_class"] = "somewhere.else:Model"
    torch.save(blob, tmp_path / "moved.pt")
    with pytest.raises(CheckpointError, match=r"written by model class somewhere\.else:Model"):
        Forecaster.load(tmp_path / "moved.pt")


def test_alpha158_is_complete_and_causal_per_feature(aapl_small: pd.DataFrame) -> None:
    config = FeatureConfig(set="alpha158")
    full = build_features(aapl_small, config)
    assert full.shape[1] == 157 and {"KMID", "ROC5", "RSQR60", "WVMA30", "VSUMD20"} <= set(
        full.columns)
    assert warmup_bars(full) == 60
    for cut in (aapl_small.index[75], aapl_small.index[400], aapl_small.index[-2]):
        short = build_features(aapl_small.loc[:cut], config)
        for name in full.columns:  # per feature, so a mismatch names it
            np.testing.assert_array_equal(short[name].to_numpy(),
                                          full[name].loc[:cut].to_numpy(), err_msg=name)
    # by hand: ROC5, MA10, RSV20 on one bar
    close, high, low = aapl_small["Close"], aapl_small["High"], aapl_small["Low"]
    t = 300
    assert full["ROC5"].iloc[t] == pytest.approx(close.iloc[t - 5] / close.iloc[t])
    assert full["MA10"].iloc[t] == pytest.approx(close.iloc[t - 9:t + 1].mean() / close.iloc[t])
    low20, high20 = low.iloc[t - 19:t + 1].min(), high.iloc[t - 19:t + 1].max()
    assert full["RSV20"].iloc[t] == pytest.approx(
        (close.iloc[t] - low20) / (high20 - low20 + 1e-12))
    x = np.arange(30.0)
    slope = np.polyfit(x, close.iloc[t - 29:t + 1].to_numpy(), 1)[0]
    assert full["BETA30"].iloc[t] == pytest.approx(slope / close.iloc[t], rel=1e-9)
    without = build_features(aapl_small.assign(Volume=0.0).pipe(
        lambda f: f.__setattr__("attrs", {"volume": False}) or f), config)
    assert without.shape[1] == 157 - 8 * 5


def test_an_unknown_kind_and_both_kind_and_class_are_refused() -> None:
    with pytest.raises(ConfigError, match="choose one of"):
        ModelConfig(kind="gru")
    with pytest.raises(ConfigError, match="not both"):
        load_config(None, ["model.kind=sequence", f"model.class={GRU}"])


def test_a_class_object_and_an_installed_entry_point_name_a_model(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inputs: tuple) -> None:
    import sys

    from examples.user_models import GRUForecaster
    from lstm_strategy.models import MODELS

    by_class = ModelConfig(kind=GRUForecaster, params={"hidden_size": 8})
    assert by_class.kind == "examples.user_models:GRUForecaster"
    assert by_class.model_class is GRUForecaster
    # a package installed with an entry point in the lstm_strategy.models group (a real
    # dist-info folder on sys.path, read by importlib.metadata)
    site = tmp_path / "site"
    (site / "tinygru").mkdir(parents=True)
    (site / "tinygru" / "__init__.py").write_text(
        "from examples.user_models import GRUForecaster as TinyGRU\n")
    info = site / "tinygru-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tinygru\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[lstm_strategy.models]\ntinygru = tinygru:TinyGRU\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(MODELS, "tinygru", raising=False)
    try:
        config = ModelConfig(kind="tinygru", params={"hidden_size": 8})
        assert config.model_class is GRUForecaster
        features, target = inputs
        forecaster = fit_forecaster(features, target, config, TINY_TRAIN, device="cpu")
        assert forecaster.predict(features).notna().sum() > 100
    finally:
        MODELS.pop("tinygru", None)
        sys.modules.pop("tinygru", None)
