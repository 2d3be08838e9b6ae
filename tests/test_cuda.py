"""The CUDA path, on a machine with an NVIDIA GPU (skipped elsewhere, CI included).

The CPU tests hold forecasts bit-exact; a GPU sums in other orders (cuDNN's LSTM, cuBLAS),
so here forecasts are held to the CPU's within float32 rounding, and the no-lookahead
and batch == streaming checks are repeated on the device.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lstm_strategy import (
    LSTMStrategy,
    ModelConfig,
    TrainConfig,
    WalkForwardResult,
    backtest,
    build_features,
    make_target,
    walk_forward,
)
from lstm_strategy.cli import main
from lstm_strategy.forecaster import full_precision
from lstm_strategy.models import build_model
from lstm_strategy.training import Panel, fit_fold

from .conftest import TINY_MODEL, TINY_TRAIN, tiny_model, tiny_overrides
from .test_multiasset import GNN, TRAIN, load_panel

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")

ATOL = 1e-5  # float32 forecasts of about 1e-2, summed in another order


@pytest.fixture(scope="module")
def inputs(aapl_small: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    return build_features(aapl_small), make_target(aapl_small["Close"], 1)


def streamed(result: WalkForwardResult, features: pd.DataFrame) -> np.ndarray:
    stream = result.stream()
    values = features.to_numpy()
    return np.array([stream.step(date, values[i]) for i, date in enumerate(features.index)])


@pytest.mark.parametrize("kind", ["sequence", "window"])
def test_cpu_trained_models_forecast_the_same_on_the_gpu(inputs: tuple, kind: str,
                                                         tmp_path: Path) -> None:
    features, target = inputs
    model = tiny_model(kind)
    cpu = walk_forward(features, target, model, TINY_TRAIN, device="cpu", progress=False)
    cpu.save(tmp_path / "wf.pt")
    gpu = WalkForwardResult.load(tmp_path / "wf.pt", device="cuda")
    assert all(f.forecaster.device.type == "cuda" for f in gpu.folds)
    for old, new in zip(cpu.folds, gpu.folds, strict=True):
        np.testing.assert_allclose(new.forecaster.predict(features).to_numpy(),
                                   old.forecaster.predict(features).to_numpy(),
                                   rtol=0, atol=ATOL, equal_nan=True)
    # the stream: warmed on the GPU at each retrain, then stepped on the host (sequence)
    # or with its state on the GPU (window)
    np.testing.assert_allclose(streamed(gpu, features), cpu.predictions.to_numpy(),
                               rtol=0, atol=ATOL, equal_nan=True)


@pytest.mark.parametrize("kind", ["sequence", "window"])
def test_gpu_training_batch_equals_streaming_and_is_causal(aapl_small: pd.DataFrame,
                                                           inputs: tuple, kind: str) -> None:
    features, target = inputs
    model = tiny_model(kind)
    full = walk_forward(features, target, model, TINY_TRAIN, device="cuda", progress=False)
    batch = full.predictions.to_numpy()
    assert np.isfinite(batch[features.index.get_loc(full.first_forecast_date):]).all()
    stream = streamed(full, features)
    np.testing.assert_array_equal(np.isnan(stream), np.isnan(batch))
    np.testing.assert_allclose(stream, batch, rtol=0, atol=ATOL, equal_nan=True)
    index = features.index
    for cut in (full.folds[1].retrain_date, index[index.get_loc(full.folds[2].retrain_date) + 37]):
        bars = aapl_small.loc[:cut]
        short = walk_forward(build_features(bars), make_target(bars["Close"], 1), model,
                             TINY_TRAIN, device="cuda", progress=False)
        np.testing.assert_allclose(short.predictions.to_numpy(),
                                   full.predictions.loc[:cut].to_numpy(), rtol=0, atol=ATOL,
                                   equal_nan=True,
                                   err_msg=f"GPU forecasts moved when data after {cut} was cut")


@pytest.mark.parametrize("kind", ["sequence", "pooled"])
def test_training_on_a_long_span_on_the_gpu(kind: str) -> None:
    # validation over 100,000 bars in one cuDNN call failed (CUDNN_STATUS_NOT_SUPPORTED);
    # it now runs in CHUNK_BARS-long calls carrying the state, as forecasts do
    rng = np.random.default_rng(0)
    bars, assets = 100_000, 2 if kind == "pooled" else 1
    x = rng.normal(size=(bars, assets, 4)) if kind == "pooled" else rng.normal(size=(bars, 4))
    y = rng.normal(0, 0.02, size=(bars, assets) if kind == "pooled" else bars)
    panel = Panel(x, y, np.arange(bars), ("A", "B") if kind == "pooled" else ())
    fit = fit_fold(panel, ["a", "b", "c", "d"], slice(0, bars), bars,
                   ModelConfig(kind=kind, hidden_size=8, num_layers=1),
                   TrainConfig(epochs=1, val_fraction=0.1, batch_streams=16), torch.device("cuda"),
                   seed=0)
    assert fit.n_val > 9_000 and np.isfinite(fit.best_val_loss)


def test_gpu_training_is_reproducible(inputs: tuple) -> None:
    features, target = inputs
    runs = [walk_forward(features, target, TINY_MODEL, TINY_TRAIN, device="cuda",
                         progress=False).predictions.to_numpy() for _ in range(2)]
    np.testing.assert_array_equal(runs[0], runs[1])


def test_gpu_stream_backtest_trades_like_batch(aapl_small: pd.DataFrame, inputs: tuple) -> None:
    features, target = inputs
    result = walk_forward(features, target, TINY_MODEL, TINY_TRAIN, device="cuda",
                          progress=False)
    start = result.first_forecast_date
    batch = backtest({"AAPL": aapl_small}, LSTMStrategy, trade_start=start,
                     extra={"AAPL": result.predictions.rename("forecast").to_frame()})
    stream = backtest({"AAPL": aapl_small}, LSTMStrategy, trade_start=start,
                      extra={"AAPL": features}, stream=result.stream(),
                      feature_lines=tuple(features.columns))
    pd.testing.assert_frame_equal(batch.fills, stream.fills)
    np.testing.assert_allclose(stream.records["forecast"], batch.records["forecast"], atol=ATOL)


@pytest.mark.parametrize("layer", ["gcn", "gat"])
def test_graph_model_on_the_gpu_matches_the_cpu_and_its_stream(layer: str) -> None:
    torch.manual_seed(0)
    config = ModelConfig(kind="lstm_gnn", hidden_size=8, num_layers=2, graph_layer=layer)
    cpu = build_model(5, config, 6).eval()
    cpu.set_graph(np.ones((6, 6)) - np.eye(6))
    gpu = build_model(5, config, 6)
    gpu.load_state_dict(cpu.state_dict())
    gpu = gpu.to("cuda").eval()
    x = torch.randn(300, 6, 5)
    with torch.no_grad(), full_precision(torch.device("cuda")):
        want = cpu.forecast_segment(x, 64, 256).numpy()
        batch = gpu.forecast_segment(x.cuda(), 64, 256)
        state, steps = None, []
        for row in x.cuda():
            out, state = gpu.stream_step(row, state)
            steps.append(out)
    np.testing.assert_allclose(batch.cpu().numpy(), want, rtol=0, atol=ATOL)
    np.testing.assert_allclose(torch.stack(steps).cpu().numpy(), want, rtol=0, atol=ATOL)


def test_multi_asset_walk_forward_on_the_gpu(tmp_path: Path) -> None:
    features, targets = load_panel()
    result = walk_forward(features, targets, GNN, TRAIN, device="cuda", progress=False)
    assert np.isfinite(result.predictions.loc[result.first_forecast_date:].to_numpy()).all()
    result.save(tmp_path / "m.pt")
    on_cpu = WalkForwardResult.load(tmp_path / "m.pt", device="cpu")
    fold = on_cpu.folds[-1]
    tickers = list(features)
    start = features[tickers[0]].index.get_loc(fold.retrain_date)
    context = np.stack([features[t].iloc[start - 60:].to_numpy() for t in tickers], axis=1)
    np.testing.assert_allclose(fold.forecaster.forecast_rows(context)[60:],
                               result.predictions.loc[fold.retrain_date:].to_numpy(),
                               rtol=0, atol=ATOL)


def test_cli_run_on_cuda(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    args = ["run", "--quiet", "--device", "cuda", "--out", str(out)]
    for item in tiny_overrides():
        args += ["--set", item]
    assert main(args) == 0, capsys.readouterr().err
    assert (out / "report.html").exists() and (out / "metrics.json").exists()
    assert main(["check", "--device", "cuda"]) == 0
