"""Walk-forward training and the predictor: no lookahead, purging, batch == stream, checkpoints."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lstm_strategy import (
    CheckpointError,
    DataError,
    Forecaster,
    ModelConfig,
    TrainConfig,
    WalkForwardResult,
    build_features,
    fit_forecaster,
    forecast_metrics,
    load_exogenous,
    make_target,
    resolve_device,
    walk_forward,
)
from lstm_strategy.evaluation.metrics import forecast_report, naive_forecasts
from lstm_strategy.forecaster import Scaler, full_precision, load_checkpoint, save_checkpoint
from lstm_strategy.models import build_model
from lstm_strategy.training import Panel, fold_schedule, label_masks

from .conftest import DATA, TINY_MODEL, TINY_TRAIN, hourly_bars, tiny_model


@pytest.fixture(scope="module")
def inputs(aapl_small: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    return build_features(aapl_small), make_target(aapl_small["Close"], 1)


@pytest.fixture(scope="module")
def result(inputs: tuple) -> WalkForwardResult:
    features, target = inputs
    return walk_forward(features, target, TINY_MODEL, TINY_TRAIN, device="cpu", progress=False)


def test_forecasts_start_at_first_retrain_and_cover_the_rest(result: WalkForwardResult,
                                                             inputs: tuple) -> None:
    features, _ = inputs
    first = result.first_forecast_date
    assert first == features.index[49 + TINY_TRAIN.min_train_bars]
    assert result.predictions.loc[:first].iloc[:-1].isna().all()
    assert result.predictions.loc[first:].notna().all()
    assert len(result.folds) == len(fold_schedule(len(features), 49, TINY_TRAIN))


@pytest.mark.parametrize("kind", ["sequence", "window"])
def test_no_lookahead_by_truncation(aapl_small: pd.DataFrame, inputs: tuple, kind: str) -> None:
    features, target = inputs
    model = tiny_model(kind)
    full = walk_forward(features, target, model, TINY_TRAIN, device="cpu", progress=False)
    dates = [f.retrain_date for f in full.folds]
    index = features.index
    cuts = [dates[1], index[index.get_loc(dates[1]) - 1], index[index.get_loc(dates[2]) + 37],
            index[-2]]
    for cut in cuts:
        # rebuild everything from the bars known at T: features, labels, folds, forecasts
        bars = aapl_small.loc[:cut]
        short = walk_forward(build_features(bars), make_target(bars["Close"], 1), model,
                             TINY_TRAIN, device="cpu", progress=False)
        np.testing.assert_array_equal(short.predictions.to_numpy(),
                                      full.predictions.loc[:cut].to_numpy(),
                                      err_msg=f"forecasts changed when data after {cut} was cut")


def test_labels_are_purged_before_each_retrain_date(aapl_small: pd.DataFrame,
                                                    inputs: tuple) -> None:
    features, target5 = inputs[0], make_target(aapl_small["Close"], 5)
    config = replace(TINY_TRAIN, horizon=5, val_fraction=0.2)
    result = walk_forward(features, target5, TINY_MODEL, config, device="cpu", progress=False)
    for fold in result.folds:
        assert fold.label_end_date < fold.retrain_date
    panel = Panel.from_frames(features, target5)
    for retrain in fold_schedule(len(features), int(panel.pos[0]), config):
        rows = slice(0, int(np.searchsorted(panel.pos, retrain)))
        train, val = label_masks(panel, rows, retrain, config)
        pos = panel.pos[rows]
        assert (pos[train] + 5 < retrain).all() and (pos[val] + 5 < retrain).all()
        assert val.any() and (pos[train].max() + 5 < pos[val].min())  # purged before validation


def test_schedule_is_anchored_at_the_start() -> None:
    config = TrainConfig(min_train_bars=300, step=50)
    short = fold_schedule(700, 40, config)
    long = fold_schedule(5000, 40, config)
    assert short == long[:len(short)] and short[0] == 340 and short[1] - short[0] == 50


@pytest.mark.parametrize("kind", ["sequence", "window"])
def test_batch_and_streaming_forecasts_agree(inputs: tuple, kind: str) -> None:
    features, target = inputs
    model = tiny_model(kind)
    result = walk_forward(features, target, model, TINY_TRAIN, device="cpu", progress=False)
    stream = result.stream()
    values = features.to_numpy()
    streamed = np.array([stream.step(date, values[i]) for i, date in enumerate(features.index)])
    batch = result.predictions.to_numpy()
    np.testing.assert_array_equal(np.isnan(streamed), np.isnan(batch))
    np.testing.assert_allclose(streamed, batch, rtol=0, atol=1e-6, equal_nan=True)


@pytest.mark.parametrize(("layers", "head"), [(1, "regression"), (3, "direction")])
def test_compiled_step_equals_the_model_and_keeps_state_on_gaps(inputs: tuple, layers: int,
                                                                 head: str) -> None:
    """The fused host step (scaling, cell, head in one compiled call) gives what the torch
    model gives, for any depth and head; an incomplete row is NaN and leaves the state."""
    features, _ = inputs
    rows = features.dropna().to_numpy()[:300]
    torch.manual_seed(3)
    config = ModelConfig(hidden_size=12, num_layers=layers, head=head)
    forecaster = Forecaster(build_model(rows.shape[1], config), config, list(features.columns),
                            Scaler.fit(rows), 0.02, 1, "cpu")
    batch = forecaster.forecast_rows(rows)
    stream = forecaster.stream()
    stream.warm(rows[:100])
    gap = rows[100].copy()
    gap[2] = np.nan
    assert np.isnan(stream.step(gap))
    steps = np.array([stream.step(row) for row in rows[100:]])
    np.testing.assert_allclose(steps, batch[100:], rtol=0, atol=1e-6)
    stream.reset()
    stream._step = stream._host.numpy_step  # the NumPy cell, where Numba is not installed
    numpy_steps = np.array([stream.step(row) for row in rows])
    np.testing.assert_allclose(numpy_steps, batch, rtol=0, atol=1e-6)


def test_cpu_runs_are_bit_identical(inputs: tuple, result: WalkForwardResult) -> None:
    features, target = inputs
    again = walk_forward(features, target, TINY_MODEL, TINY_TRAIN, device="cpu", progress=False)
    np.testing.assert_array_equal(again.predictions.to_numpy(), result.predictions.to_numpy())
    other = walk_forward(features, target, TINY_MODEL, replace(TINY_TRAIN, seed=1),
                         device="cpu", progress=False)
    assert not np.array_equal(other.predictions.dropna(), result.predictions.dropna())


def test_rolling_window_and_warm_start(inputs: tuple) -> None:
    features, target = inputs
    config = replace(TINY_TRAIN, train_window=250, warm_start=True)
    result = walk_forward(features, target, TINY_MODEL, config, device="cpu", progress=False)
    starts = [f.train_start for f in result.folds]
    assert starts == sorted(starts) and starts[-1] > starts[0]
    for fold in result.folds:
        span = features.index.get_loc(fold.retrain_date) - features.index.get_loc(fold.train_start)
        assert span <= 250


def test_walk_forward_checkpoint_round_trip(tmp_path: Path, result: WalkForwardResult,
                                            inputs: tuple) -> None:
    path = tmp_path / "wf.pt"
    result.save(path, note="test")
    loaded = WalkForwardResult.load(path)
    pd.testing.assert_series_equal(loaded.predictions, result.predictions, check_freq=False)
    features, _ = inputs
    for old, new in zip(result.folds, loaded.folds, strict=True):
        assert (old.retrain_date, old.n_train) == (new.retrain_date, new.n_train)
        np.testing.assert_array_equal(new.forecaster.predict(features).to_numpy(),
                                      old.forecaster.predict(features).to_numpy())


def test_forecaster_checkpoint_and_mismatch_errors(tmp_path: Path, inputs: tuple) -> None:
    features, target = inputs
    forecaster = fit_forecaster(features, target, TINY_MODEL, TINY_TRAIN, device="cpu")
    path = tmp_path / "model.pt"
    forecaster.save(path)
    loaded = Forecaster.load(path, feature_names=list(features.columns))
    np.testing.assert_array_equal(loaded.predict(features).to_numpy(),
                                  forecaster.predict(features).to_numpy())
    with pytest.raises(CheckpointError, match=r"missing \['rsi'\]"):
        Forecaster.load(path, feature_names=[c for c in features.columns if c != "rsi"])
    with pytest.raises(CheckpointError, match="other order"):
        loaded.predict(features[list(reversed(features.columns))])
    blob = load_checkpoint(path, "forecaster")
    blob["version"] = "0.0.1"
    torch.save(blob, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match=r"written by lstm-strategy 0\.0\.1"):
        Forecaster.load(tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match="expected a 'walk_forward'"):
        WalkForwardResult.load(path)


def test_checkpoint_loading_never_unpickles_code(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format": 1, "payload": Path("/etc/passwd")}, path)  # a pickled object
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(path, "forecaster")
    save_checkpoint(tmp_path / "ok.pt", {"kind": "forecaster", "x": torch.ones(2)})
    assert load_checkpoint(tmp_path / "ok.pt", "forecaster")["x"].sum() == 2


def test_direction_head_gives_probabilities(inputs: tuple) -> None:
    features, target = inputs
    model = replace(TINY_MODEL, head="direction")
    result = walk_forward(features, target, model, TINY_TRAIN, device="cpu", progress=False)
    p = result.predictions.dropna()
    assert ((p > 0) & (p < 1)).all()


def synthetic_bars(returns: np.ndarray, seed: int) -> pd.DataFrame:
    """OHLCV around a close path with the given daily log returns."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(returns))
    open_ = close * np.exp(rng.normal(0, 0.002, len(close)))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.003, len(close))))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.003, len(close))))
    volume = rng.integers(1_000, 5_000, len(close)).astype(float)
    index = pd.bdate_range("2000-01-03", periods=len(close))
    return pd.DataFrame({"Open": open_, "High": high, "Low": low, "Close": close,
                         "Volume": volume}, index=index)


LEARN_MODEL = ModelConfig(hidden_size=16, num_layers=1)
LEARN_TRAIN = TrainConfig(min_train_bars=600, step=200, epochs=15, context_bars=60, bptt=32,
                          burn_in=5, batch_streams=8, lr=5e-3, patience=3)


def directional_accuracy(bars: pd.DataFrame) -> tuple[float, int]:
    features = build_features(bars)
    target = make_target(bars["Close"], 1)
    result = walk_forward(features, target, LEARN_MODEL, LEARN_TRAIN, device="cpu",
                          progress=False)
    metrics = forecast_metrics(result.predictions, target)
    return metrics["directional_accuracy"], metrics["n"]


def test_planted_signal_is_learnt() -> None:
    rng = np.random.default_rng(7)
    noise = rng.normal(0, 0.01, 1600)
    returns = np.zeros_like(noise)
    for t in range(1, len(noise)):  # AR(1): yesterday's return predicts today's sign
        returns[t] = 0.6 * returns[t - 1] + noise[t]
    accuracy, n = directional_accuracy(synthetic_bars(returns, 7))
    # the Bayes rate is about 0.70; 0.60 is six standard errors above chance
    assert n > 900 and accuracy > 0.60


def test_random_walk_is_not_predictable() -> None:
    rng = np.random.default_rng(11)
    accuracy, n = directional_accuracy(synthetic_bars(rng.normal(0, 0.01, 1600), 11))
    # leakage would show as accuracy far above 0.5; allow 2.5 standard errors of chance
    assert accuracy < 0.5 + 2.5 * np.sqrt(0.25 / n)


def test_forecast_metrics_by_hand() -> None:
    index = pd.date_range("2020-01-01", periods=4)
    prediction = pd.Series([0.01, -0.02, 0.03, np.nan], index=index)
    target = pd.Series([0.02, 0.01, 0.01, 0.05], index=index)
    m = forecast_metrics(prediction, target)
    assert m["n"] == 3
    assert m["rmse"] == pytest.approx(np.sqrt((0.01**2 + 0.03**2 + 0.02**2) / 3))
    assert m["mae"] == pytest.approx(0.02)
    assert m["directional_accuracy"] == pytest.approx(2 / 3)
    # ranks of prediction (2, 1, 3) vs target (3, 1.5, 1.5): Pearson of ranks
    assert m["ic"] == pytest.approx(np.corrcoef([2, 1, 3], [3, 1.5, 1.5])[0, 1])


def test_naive_forecasts_and_report(aapl_small: pd.DataFrame) -> None:
    close = aapl_small["Close"]
    naive = naive_forecasts(close, 2)
    assert naive["naive_last"].iloc[5] == pytest.approx(np.log(close.iloc[5] / close.iloc[3]))
    assert (naive["naive_zero"] == 0).all()
    past = np.log(close / close.shift(2)).iloc[:31].dropna()
    assert naive["naive_drift"].iloc[30] == pytest.approx(past.mean())  # only bars <= 30
    assert naive["naive_drift"].iloc[:21].isna().all()
    target = make_target(close, 2)
    report = forecast_report(naive["naive_last"], target, close, 2)
    assert report["model"] == report["naive_last"]
    assert report["naive_zero"]["ic"] is None  # a constant has no rank correlation
    assert report["beats_naive_directional"] is False  # equal is not better


def test_device_choice() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="use auto, cpu"):
        resolve_device("tpu")


def test_full_precision_turns_tf32_off_on_cuda_only_and_restores_the_flags() -> None:
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    before = (cudnn.allow_tf32, cudnn.deterministic, cudnn.benchmark, matmul.allow_tf32)
    with full_precision(torch.device("cpu")):
        assert (cudnn.allow_tf32, cudnn.deterministic) == before[:2]
    matmul.allow_tf32 = True  # as a user who asked for TF32 matmuls would have it
    try:
        with full_precision(torch.device("cuda")):  # the flags exist on CPU builds too
            assert not cudnn.allow_tf32 and cudnn.deterministic and not matmul.allow_tf32
        assert matmul.allow_tf32 and (cudnn.allow_tf32, cudnn.deterministic) == before[:2]
    finally:
        matmul.allow_tf32 = before[3]


@pytest.mark.parametrize("kind", ["sequence", "pooled"])
def test_validation_in_chunks_equals_one_pass(kind: str) -> None:
    # validation runs in CHUNK_BARS-long calls carrying the state (one cuDNN call over a
    # long span fails on a GPU); the loss must be the one a single pass gives
    torch.manual_seed(0)
    assets = 3 if kind == "pooled" else 1
    model = build_model(4, ModelConfig(kind=kind, hidden_size=8, num_layers=2), assets).eval()
    shape = (1000, assets) if kind == "pooled" else (1000,)
    x = torch.randn(*shape, 4)
    labels, val = torch.randn(shape), torch.rand(shape) < 0.3
    loss_fn = torch.nn.MSELoss(reduction="none")
    chunked = model.validation_loss(x, labels, val, loss_fn)
    with torch.no_grad():
        one = model(x.transpose(0, 1).unsqueeze(0) if kind == "pooled" else x.unsqueeze(0))[0][0]
    out = one.T if kind == "pooled" else one
    whole = float((loss_fn(out, labels) * val).sum() / val.sum())
    assert chunked == pytest.approx(whole, rel=1e-5)


def test_too_few_complete_rows_is_a_data_error(inputs: tuple) -> None:
    features, target = inputs
    holed = features.copy()
    holed.iloc[100:340, 0] = np.nan  # a long gap in one feature inside the first fold
    with pytest.raises(DataError, match=r"fold 0 .* complete feature rows"):
        walk_forward(holed, target, TINY_MODEL, TINY_TRAIN, device="cpu", progress=False)
    with pytest.raises(DataError, match="no out-of-sample bar"):
        walk_forward(features.iloc[:300], target.iloc[:300], TINY_MODEL, TINY_TRAIN,
                     device="cpu", progress=False)


@pytest.mark.parametrize("kind", ["sequence", "window"])
def test_a_forecast_never_depends_on_how_many_rows_follow_it(inputs: tuple, kind: str) -> None:
    """Bit-equal prefixes over many segment lengths (GEMM tail rounding depends on row counts)."""
    features, _ = inputs
    rows = features.dropna().to_numpy()[:700]
    torch.manual_seed(3)
    config = ModelConfig(kind=kind, hidden_size=32, num_layers=2,
                         **({"window": 20} if kind == "window" else {}))
    forecaster = Forecaster(build_model(rows.shape[1], config), config, list(features.columns),
                            Scaler.fit(rows), 0.02, 1, "cpu")
    for kwargs in ({}, {"chunk_bars": 16, "batch_size": 8}):
        full = forecaster.forecast_rows(rows, **kwargs)
        assert np.isfinite(full[30:]).all()
        lengths = sorted({*range(1, 80), *range(80, len(rows), 7), len(rows) - 1})
        changed = [n for n in lengths
                   if not np.array_equal(forecaster.forecast_rows(rows[:n], **kwargs),
                                         full[:n], equal_nan=True)]
        assert changed == [], f"prefixes of these lengths differ ({kwargs}): {changed[:10]}"


def test_hourly_forecasts_ignore_a_daily_figure_until_its_day_has_ended() -> None:
    """Perturbation through the model: the macro value dated D moves no forecast made on D."""
    bars = hourly_bars(pd.bdate_range("2008-05-01", "2008-06-30"), seed=1)
    macro = load_exogenous(DATA / "macro_us_daily.csv")
    day = pd.Timestamp("2008-06-18")
    changed = macro.copy()
    changed.loc[day, ["ust_10y", "wti_usd"]] += [0.5, 5.0]
    target = make_target(bars["Close"], 1)
    runs = [walk_forward(build_features(bars, exogenous=m, exog_transform="diff"), target,
                         TINY_MODEL, TINY_TRAIN, device="cpu", progress=False).predictions
            for m in (macro, changed)]
    assert runs[0].first_valid_index() < day
    before = runs[0].index < day + pd.Timedelta(days=1)
    np.testing.assert_array_equal(runs[0][before].to_numpy(), runs[1][before].to_numpy())
    assert not np.array_equal(runs[0][~before].to_numpy(), runs[1][~before].to_numpy())


def test_a_fold_with_nothing_to_learn_from_is_an_error(inputs: tuple) -> None:
    """60 rows for a 60-bar window model: no training window, so nothing may be traded."""
    features, target = inputs
    window = replace(TINY_MODEL, kind="window", window=60)
    with pytest.raises(DataError, match=r"fold 0 .*0 label\(s\) could be trained on"):
        walk_forward(features, target, window, replace(TINY_TRAIN, min_train_bars=60),
                     device="cpu", progress=False)


@pytest.mark.parametrize("kind", ["sequence", "window"])
def test_fold_table_counts_the_labels_really_trained_on(inputs: tuple, kind: str) -> None:
    features, target = inputs
    model = tiny_model(kind)
    config = replace(TINY_TRAIN, epochs=1)
    result = walk_forward(features, target, model, config, device="cpu", progress=False)
    panel = Panel.from_frames(features, target)
    for fold in result.folds:
        retrain = features.index.get_loc(fold.retrain_date)
        rows = slice(0, int(np.searchsorted(panel.pos, retrain)))
        train, _ = label_masks(panel, rows, retrain, config)
        known = int(train.sum())
        if kind == "window":  # labels with a full window of rows behind them
            assert fold.n_train == int(train[model.window - 1:].sum())
        else:  # burn-in steps of each stream and the epoch's offset carry no loss
            assert known - config.batch_streams * config.burn_in - config.bptt <= fold.n_train
        assert fold.n_train < known


def test_progress_without_a_terminal_is_a_line_per_fold(inputs: tuple,
                                                         capsys: pytest.CaptureFixture) -> None:
    features, target = inputs
    walk_forward(features, target, TINY_MODEL, TINY_TRAIN, device="cpu", label="AAPL")
    err = capsys.readouterr().err  # pytest's capture is not a terminal, like nohup or a log
    lines = [line for line in err.splitlines() if line.startswith("walk-forward AAPL: fold")]
    n_folds = len(fold_schedule(len(features), 49, TINY_TRAIN))
    assert len(lines) == n_folds and f"fold {n_folds}/{n_folds}" in lines[-1]
    assert "ETA" in lines[0] and "epochs" in lines[0]
    seen: list[str] = []
    walk_forward(features, target, TINY_MODEL, TINY_TRAIN, device="cpu", progress=seen.append)
    assert len(seen) == n_folds and capsys.readouterr().err == ""
    walk_forward(features, target, TINY_MODEL, TINY_TRAIN, device="cpu", progress=False)
    assert capsys.readouterr().err == ""


def test_the_forecast_cache_serves_only_identical_inputs(aapl_small: pd.DataFrame,
                                                         tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from lstm_strategy.cache import cached_walk_forward
    monkeypatch.setenv("LSTM_STRATEGY_CACHE", str(tmp_path / "cache"))

    def run(bars: pd.DataFrame, **kwargs: object) -> tuple[WalkForwardResult, bool]:
        return cached_walk_forward(build_features(bars), make_target(bars["Close"], 1),
                                   TINY_MODEL, TINY_TRAIN, device="cpu", progress=False,
                                   **kwargs)

    first, trained = run(aapl_small)
    assert trained and len(list((tmp_path / "cache").glob("*.pt"))) == 1
    again, trained = run(aapl_small)
    assert not trained
    np.testing.assert_array_equal(again.predictions.to_numpy(), first.predictions.to_numpy())
    assert again.predictions.index.equals(first.predictions.index)
    # the forecasts file beside the result (read without torch) is the result's forecasts
    from lstm_strategy.cache import cached_predictions, forecasts_path
    key = next((tmp_path / "cache").glob("*.pt")).stem
    pd.testing.assert_series_equal(cached_predictions(key), WalkForwardResult.load(
        tmp_path / "cache" / f"{key}.pt").predictions, check_exact=True, check_freq=False)
    forecasts_path(key).write_bytes(b"PK\x03\x04 truncated")  # damaged: read from the result
    pd.testing.assert_series_equal(cached_predictions(key), first.predictions,
                                   check_exact=True, check_freq=False)
    forecasts_path(key).unlink()  # a cache from before the file: the next hit writes it
    run(aapl_small)
    pd.testing.assert_series_equal(cached_predictions(key), first.predictions,
                                   check_exact=True, check_freq=False)
    # a one-byte change to the data (one close, last digit) is another key: trained again
    changed = aapl_small.copy()
    changed.iloc[500, changed.columns.get_loc("Close")] += 1e-4
    _, trained = run(changed)
    assert trained
    _, trained = run(aapl_small, use_cache=False)
    assert trained
    # code that computes forecasts is an input too: an edited model file is another key
    import lstm_strategy.cache as cache
    monkeypatch.setattr(cache, "code_digest", lambda: "edited")
    _, trained = run(aapl_small)
    assert trained
    monkeypatch.undo()
    monkeypatch.setenv("LSTM_STRATEGY_CACHE", str(tmp_path / "cache"))
    shutil.rmtree(tmp_path / "cache")  # safe to delete at any time
    _, trained = run(aapl_small)
    assert trained


def test_a_forecast_key_needs_no_torch_and_matches_the_one_torch_gives(tmp_path: Path
                                                                       ) -> None:
    """The key's torch version and device kind, read without importing torch, are what
    torch itself says; the config side (kinds, params, training) loads no torch either."""
    from lstm_strategy.cache import device_type, torch_version
    from lstm_strategy.forecaster import resolve_device
    from lstm_strategy.models.kinds import BUILTIN, model_class

    assert torch_version() == torch.__version__
    for device in ("auto", "cpu"):
        assert device_type(device) == resolve_device(device).type
    for kind, spec in BUILTIN.items():  # the torch-free table is each class's own
        cls = model_class(kind)
        assert (cls.Params, cls.multi_asset) == (spec.params, spec.multi_asset)
    code = ("import sys\n"
            "from lstm_strategy.cache import device_type, torch_version\n"
            "from lstm_strategy.config import load_config\n"
            "config = load_config(None, ['model.kind=lstm_gnn', 'model.hidden_size=8'])\n"
            "assert config.model.multi_asset and config.model.knobs.hidden_size == 8\n"
            "print(torch_version(), device_type('auto'), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == [torch.__version__, resolve_device("auto").type, "False"]


def test_panel_ic_icir_and_long_short_by_hand() -> None:
    """Qlib's terms on a 3-day x 4-ticker matrix, computed by hand."""
    from lstm_strategy.evaluation.metrics import ic_summary, long_short_returns, panel_ic
    dates = pd.date_range("2020-01-01", periods=3)
    forecast = pd.DataFrame([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1], [0.1, 0.3, 0.2, np.nan]],
                            index=dates, columns=list("ABCD"))
    realised = pd.DataFrame([[0.01, 0.02, 0.03, 0.04], [0.01, 0.03, 0.02, 0.04],
                             [0.0, 0.02, 0.01, 0.05]], index=dates, columns=list("ABCD"))
    daily = panel_ic(forecast, realised)
    assert daily.loc[dates[0], "ic"] == pytest.approx(1.0)
    assert daily.loc[dates[0], "rank_ic"] == pytest.approx(1.0)
    # day 2: ranks of forecast 4,3,2,1 vs realised 1,3,2,4: Spearman = 1 - 6*sum(d^2)/(n(n^2-1))
    assert daily.loc[dates[1], "rank_ic"] == pytest.approx(1 - 6 * (9 + 0 + 0 + 9) / (4 * 15))
    f, r = np.array([0.4, 0.3, 0.2, 0.1]), np.array([0.01, 0.03, 0.02, 0.04])
    pearson = ((f - f.mean()) * (r - r.mean())).sum() / np.sqrt(
        ((f - f.mean()) ** 2).sum() * ((r - r.mean()) ** 2).sum())
    assert daily.loc[dates[1], "ic"] == pytest.approx(pearson)
    assert daily.loc[dates[2], "rank_ic"] == pytest.approx(1.0)  # D has no forecast: 3 tickers
    summary = ic_summary(daily)
    values = daily["rank_ic"].to_numpy()
    assert summary["rank_ic_mean"] == pytest.approx(values.mean())
    assert summary["rank_icir"] == pytest.approx(values.mean() / values.std(ddof=1))
    spread = long_short_returns(forecast, realised, k=1)
    assert spread.loc[dates[0]] == pytest.approx(0.04 - 0.01)
    assert spread.loc[dates[1]] == pytest.approx(0.01 - 0.04)
    assert spread.loc[dates[2]] == pytest.approx(0.02 - 0.0)


def test_qlib_long_short_is_half_the_quantile_spread_by_hand() -> None:
    """Qlib's calc_long_short_return (dropna=True): (top 20% mean - bottom 20% mean) / 2."""
    from lstm_strategy.evaluation.metrics import long_short_returns, qlib_long_short_returns
    dates = pd.date_range("2020-01-01", periods=2)
    names = [f"S{i}" for i in range(10)]
    forecast = pd.DataFrame([np.arange(10.0), np.r_[np.arange(9.0)[::-1], np.nan]],
                            index=dates, columns=names)
    realised = pd.DataFrame([np.linspace(-0.05, 0.04, 10), np.linspace(0.02, -0.07, 10)],
                            index=dates, columns=names)
    qlib = qlib_long_short_returns(forecast, realised)
    # day 1: int(10 * 0.2) = 2 each side: top S9, S8; bottom S0, S1
    top, bottom = realised.iloc[0][["S9", "S8"]].mean(), realised.iloc[0][["S0", "S1"]].mean()
    assert qlib.iloc[0] == pytest.approx((top - bottom) / 2)
    # day 2: S9 has no forecast, so 9 assets and int(9 * 0.2) = 1 each side: S0 vs S8
    assert qlib.iloc[1] == pytest.approx((realised.iloc[1]["S0"] - realised.iloc[1]["S8"]) / 2)
    # the top-k minus bottom-k spread with the same k is exactly twice Qlib's figure
    assert long_short_returns(forecast.iloc[:1], realised.iloc[:1], k=2).iloc[0] == \
        pytest.approx(2 * qlib.iloc[0])
