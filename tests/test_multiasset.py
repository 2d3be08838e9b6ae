"""Many assets at once: pooled LSTM, LSTM-GNN, the per-fold graph, the comparison."""

from __future__ import annotations

import dataclasses
import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lstm_strategy import ModelConfig, TrainConfig, walk_forward
from lstm_strategy.cli import main
from lstm_strategy.evaluation.metrics import forecast_metrics
from lstm_strategy.features import FeatureConfig, build_features, make_target
from lstm_strategy.graph import correlation_graph, load_sectors
from lstm_strategy.models import build_model
from lstm_strategy.training import WalkForwardResult

from .conftest import DATA, random_walk_bars
from .test_browser import CHROMIUM, assert_renders

SP32 = DATA / "sp32"
FOUR = ["XOM", "CVX", "JPM", "BAC"]
GNN = ModelConfig(kind="lstm_gnn", hidden_size=8, num_layers=1, graph_k=1, graph_window=60)
TRAIN = TrainConfig(min_train_bars=300, step=150, epochs=2, context_bars=60, bptt=32,
                    burn_in=5, batch_streams=4, patience=2)


def load_panel() -> tuple[dict, dict]:
    """Features and next-bar targets of four sp32 stocks, 2004 to mid-2007."""
    from lstm_strategy import load_many

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bars = load_many({t: SP32 / f"{t}.csv" for t in FOUR})
    bars = {t: f.loc["2004-01-01":"2007-06-30"] for t, f in bars.items()}
    features = {t: build_features(f, FeatureConfig()) for t, f in bars.items()}
    targets = {t: make_target(f["Close"], 1) for t, f in bars.items()}
    return features, targets


@pytest.fixture(scope="module")
def panel() -> tuple[dict, dict]:
    return load_panel()


def cut(frames: dict, end: pd.Timestamp) -> dict:
    return {t: f.loc[:end] for t, f in frames.items()}


def test_graph_and_forecasts_depend_only_on_data_before_each_retrain(panel: tuple) -> None:
    features, targets = panel
    full = walk_forward(features, targets, GNN, TRAIN, device="cpu", progress=False)
    assert full.assets == FOUR and len(full.folds) >= 3
    graphs = full.graphs()
    for k in (1, 2):  # cut inside fold k: folds before it (and their graphs) are fixed
        end = full.folds[k].retrain_date + pd.Timedelta(days=20)
        short = walk_forward(cut(features, end), cut(targets, end), GNN, TRAIN, device="cpu",
                             progress=False)
        for date, graph in short.graphs().items():
            pd.testing.assert_frame_equal(graph, graphs[date])
        kept = short.predictions.index
        pd.testing.assert_frame_equal(short.predictions, full.predictions.loc[kept])
    # the graph really comes from the data: a link per asset at least, none to itself
    first = next(iter(graphs.values()))
    assert (first.to_numpy().sum(axis=1) >= 1).all() and np.trace(first.to_numpy()) == 0


def test_graph_ignores_labels_from_the_retrain_date_on(panel: tuple) -> None:
    # perturbation: change one label the fold cannot know yet; the fold's graph stays
    features, targets = panel
    full = walk_forward(features, targets, GNN, TRAIN, device="cpu", progress=False)
    fold = full.folds[1]
    late = {t: s.copy() for t, s in targets.items()}
    late["XOM"].loc[fold.retrain_date - pd.Timedelta(days=1):] *= -5.0  # labels reaching it
    again = walk_forward(features, late, GNN, TRAIN, device="cpu", progress=False)
    for k in (0, 1):
        date = full.folds[k].retrain_date
        pd.testing.assert_frame_equal(again.graphs()[date], full.graphs()[date])
    window = slice(full.folds[0].retrain_date, fold.end_date)
    pd.testing.assert_frame_equal(again.predictions.loc[window], full.predictions.loc[window])
    # the next fold knows those labels: its forecasts move (the change was seen, later)
    later = slice(full.folds[2].retrain_date, None)
    assert not np.allclose(again.predictions.loc[later], full.predictions.loc[later])


def test_correlation_graph_by_hand() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(200, 1))
    labels = np.hstack([base, base + 0.1 * rng.normal(size=(200, 1)),
                        rng.normal(size=(200, 1)), -base])
    adjacency = correlation_graph(labels, k=1, threshold=0.0, window=100)
    # 0 and 1 pick each other; 2's best peer is weakly correlated (kept: >= 0 or dropped:
    # < 0); 3 is anti-correlated with both, so its links fall under the threshold
    assert adjacency[0, 1] == adjacency[1, 0] == 1.0
    assert adjacency[3].sum() == 0 and adjacency[:, 3].sum() == 0
    assert np.array_equal(adjacency, adjacency.T) and np.trace(adjacency) == 0
    # fewer than 20 complete rows: no links yet
    assert correlation_graph(labels[:10], k=2, threshold=0.0, window=100).sum() == 0


def test_sector_map_file(tmp_path: Path) -> None:
    sectors = load_sectors(SP32 / "sectors.csv")
    assert len(sectors) == 32 and sectors["XOM"] == sectors["CVX"] == "energy"
    bad = tmp_path / "s.csv"
    bad.write_text("ticker,sector\nXOM,energy\nXOM,tech\n")
    with pytest.raises(Exception, match="XOM appears twice"):
        load_sectors(bad)


def test_pooled_batch_forecasts_equal_streaming_steps() -> None:
    torch.manual_seed(0)
    model = build_model(5, ModelConfig(kind="lstm_gnn", hidden_size=8, num_layers=2), 6).eval()
    model.set_graph(np.ones((6, 6)) - np.eye(6))
    x = torch.randn(300, 6, 5)
    with torch.no_grad():
        batch = model.forecast_segment(x, 64, 256)
        state, steps = None, []
        for row in x:
            out, state = model.stream_step(row, state)
            steps.append(out)
    np.testing.assert_allclose(torch.stack(steps).numpy(), batch.numpy(), rtol=1e-5, atol=1e-6)


def test_checkpoint_round_trip_keeps_forecasts_and_graphs(panel: tuple, tmp_path: Path) -> None:
    features, targets = panel
    result = walk_forward(features, targets, GNN, TRAIN, device="cpu", progress=False)
    result.save(tmp_path / "m.pt")
    loaded = WalkForwardResult.load(tmp_path / "m.pt")
    pd.testing.assert_frame_equal(loaded.predictions, result.predictions)
    for date, graph in result.graphs().items():
        pd.testing.assert_frame_equal(loaded.graphs()[date], graph)
    fold = loaded.folds[-1]
    rows = np.stack([features[t].loc[fold.retrain_date:].to_numpy() for t in FOUR], axis=1)
    start = features[FOUR[0]].index.get_loc(fold.retrain_date)
    context = np.stack([features[t].iloc[start - 60:].to_numpy() for t in FOUR], axis=1)
    again = fold.forecaster.forecast_rows(context)[60:]
    np.testing.assert_allclose(again, result.predictions.loc[fold.retrain_date:].to_numpy(),
                               rtol=1e-6)
    assert len(rows) == len(again)


def test_a_planted_cross_asset_signal_is_learnt_by_the_graph_model_alone() -> None:
    # B's return follows A's of the bar before; nothing in B's own past predicts it
    rng = np.random.default_rng(0)
    n = 1400
    index = pd.bdate_range("2010-01-04", periods=n)
    returns = {t: rng.normal(0, 0.01, n) for t in "ABCD"}
    returns["B"] = np.r_[0.0, 0.9 * returns["A"][:-1]] + rng.normal(0, 0.004, n)
    features = {t: pd.DataFrame({"ret": r, "ret_lag": np.r_[0.0, r[:-1]]}, index=index)
                for t, r in returns.items()}
    targets = {t: pd.Series(np.r_[r[1:], np.nan], index=index) for t, r in returns.items()}
    train = TrainConfig(epochs=15, min_train_bars=700, step=350, bptt=32, burn_in=5,
                        context_bars=50, batch_streams=8, patience=5, lr=3e-3)
    sectors = {"A": "x", "B": "x", "C": "y", "D": "z"}  # the graph links A and B

    def ic(forecast: pd.Series) -> float:
        known = forecast.notna() & targets["B"].notna()
        return forecast_metrics(forecast[known], targets["B"][known])["ic"]

    model = ModelConfig(hidden_size=16, num_layers=1)
    alone = walk_forward(features["B"], targets["B"], model, train, device="cpu",
                         progress=False).predictions
    graph = walk_forward(features, targets, ModelConfig(kind="lstm_gnn", hidden_size=16,
                                                        num_layers=1, graph="sector"),
                         train, device="cpu", progress=False, sectors=sectors).predictions
    assert ic(graph["B"]) > 0.5
    assert abs(ic(alone)) < 0.15


def compare_config(tmp_path: Path, **extra: str) -> Path:
    paths = ", ".join(str(SP32 / f"{t}.csv") for t in FOUR)
    text = f"""name: tiny_compare
data: {{paths: [{paths}], start: 2003-01-01, end: 2006-12-31}}
model: {{kind: lstm_gnn, hidden_size: 8, num_layers: 1, graph_k: 1, graph_window: 60}}
train: {{min_train_bars: 300, step: 250, epochs: 2, context_bars: 60, bptt: 32, burn_in: 5,
        batch_streams: 4, patience: 2}}
report: {{save_models: false}}
portfolio: {{top_k: 1, rebalance: 5}}
compare: {{models: [sequence, lstm_gnn], macro: [true, false]}}
"""
    for key, value in extra.items():
        text += f"{key}: {value}\n"
    path = tmp_path / "compare.yaml"
    path.write_text(text)
    return path


def test_compare_writes_one_table_for_every_model_and_the_benchmark(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import importlib.util

    tracked = importlib.util.find_spec("mlflow") is not None  # the [track] extra
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    code = main(["compare", "--quiet", "--config", str(compare_config(tmp_path)), "--out",
                 str(tmp_path / "out"), *(["--track", "mlflow", "--track-uri", uri]
                                          if tracked else [])])
    assert code == 0
    table = pd.read_csv(tmp_path / "out" / "comparison.csv", index_col="model")
    assert list(table.index) == ["per-asset LSTM", "per-asset LSTM, no macro", "LSTM-GNN",
                                 "LSTM-GNN, no macro", "equal-weight buy & hold"]
    for column in ("ic", "rank_ic", "icir", "directional_accuracy",
                   "naive_directional_accuracy", "annual_return", "information_ratio",
                   "max_drawdown", "turnover"):
        assert column in table
    assert table.loc["LSTM-GNN", "ic"] == table.loc["LSTM-GNN", "ic"]  # a number, not NaN
    assert np.isnan(table.loc["equal-weight buy & hold", "ic"])
    for name in ("comparison.md", "daily_ic.csv", "equity.csv", "forecasts.parquet",
                 "compare_report.html", "config.yaml"):
        assert (tmp_path / "out" / name).is_file()
    assert "| LSTM-GNN |" in capsys.readouterr().out
    if CHROMIUM:  # the page in a real browser: its charts decoded, nothing on the console
        assert_renders(tmp_path / "out" / "compare_report.html", charts=6)  # 2 + 4 books
    # every variant is scored on the same bars
    equity = pd.read_csv(tmp_path / "out" / "equity.csv", index_col="date")
    assert equity.notna().all().all()
    if tracked:  # the comparison logged to MLflow, read back through its client
        import mlflow

        client = mlflow.tracking.MlflowClient(uri)
        (run,) = client.search_runs([client.get_experiment_by_name(
            "tiny_compare").experiment_id])
        assert run.data.metrics["LSTM-GNN.ic"] == pytest.approx(table.loc["LSTM-GNN", "ic"])
        assert "compare_report.html" in {a.path for a in client.list_artifacts(
            run.info.run_id)}


def test_compare_refuses_a_book_bigger_than_the_universe(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    path = compare_config(tmp_path)
    code = main(["compare", "--quiet", "--config", str(path), "--set", "portfolio.top_k=3",
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "portfolio.top_k=3 needs at least 6 tickers" in err
    assert not (tmp_path / "out").exists()


def test_multi_asset_run_has_no_lookahead_through_the_cli(tmp_path: Path) -> None:
    paths = [str(SP32 / f"{t}.csv") for t in FOUR]
    common = ["run", "--quiet", "--data", *paths, "--set", "model.kind=lstm_gnn",
              "--set", "model.hidden_size=8", "--set", "model.num_layers=1",
              "--set", "model.graph_window=60", "--set", "train.epochs=2",
              "--set", "train.min_train_bars=300", "--set", "train.step=150",
              "--set", "train.context_bars=60", "--set", "train.bptt=32",
              "--set", "train.burn_in=5", "--set", "data.start=2004-01-01",
              "--set", "report.charts=false", "--set", "report.save_models=false"]
    assert main([*common, "--set", "data.end=2007-06-30", "--out", str(tmp_path / "a")]) == 0
    assert main([*common, "--set", "data.end=2006-09-29", "--out", str(tmp_path / "b")]) == 0
    full = pd.read_csv(tmp_path / "a" / "predictions.csv", parse_dates=["date"])
    short = pd.read_csv(tmp_path / "b" / "predictions.csv", parse_dates=["date"])
    end = short["date"].max()
    kept = full[full["date"] <= end].reset_index(drop=True)
    # the last bar's target needs the next bar: known in the long run, not the short one
    pd.testing.assert_frame_equal(kept.drop(columns="target"), short.drop(columns="target"))
    assert len(short) > 100
    equity_full = pd.read_csv(tmp_path / "a" / "equity.csv", index_col="date")
    equity_short = pd.read_csv(tmp_path / "b" / "equity.csv", index_col="date")
    pd.testing.assert_frame_equal(equity_full.loc[:equity_short.index[-2], ["lstm"]],
                                  equity_short.iloc[:-1][["lstm"]])



@pytest.mark.parametrize("spacing", ["h", "MS"])
def test_graph_model_has_no_lookahead_on_hourly_and_monthly_bars(spacing: str) -> None:
    index = pd.date_range("1990-01-01", periods=700, freq=spacing)
    bars = {t: random_walk_bars(index, seed) for seed, t in enumerate("ABC")}
    features = {t: build_features(f, FeatureConfig()) for t, f in bars.items()}
    targets = {t: make_target(f["Close"], 1) for t, f in bars.items()}
    train = TrainConfig(min_train_bars=300, step=100, epochs=2, context_bars=40, bptt=32,
                        burn_in=5, batch_streams=4, patience=2)
    full = walk_forward(features, targets, GNN, train, device="cpu", progress=False)
    end = full.folds[1].retrain_date + (index[1] - index[0]) * 30
    short = walk_forward(cut(features, end), cut(targets, end), GNN, train, device="cpu",
                         progress=False)
    pd.testing.assert_frame_equal(short.predictions, full.predictions.loc[:end])
    for date, graph in short.graphs().items():
        pd.testing.assert_frame_equal(graph, full.graphs()[date])
    assert short.predictions.notna().sum().min() > 50


def test_the_attention_variant_is_causal_too(panel: tuple) -> None:
    features, targets = panel
    gat = ModelConfig(kind="lstm_gnn", hidden_size=8, num_layers=1, graph_k=1,
                      graph_window=60, graph_layer="gat")
    full = walk_forward(features, targets, gat, TRAIN, device="cpu", progress=False)
    end = full.folds[1].retrain_date + pd.Timedelta(days=20)
    short = walk_forward(cut(features, end), cut(targets, end), gat, TRAIN, device="cpu",
                         progress=False)
    pd.testing.assert_frame_equal(short.predictions, full.predictions.loc[short.predictions.index])
    assert full.predictions.notna().sum().min() > 100


def test_folds_in_parallel_give_the_loops_forecasts_bit_for_bit(panel: tuple) -> None:
    from lstm_strategy.sweep.backends import LazyBackend

    features, targets = panel
    with torch_one_thread():
        loop = walk_forward(features, targets, GNN, TRAIN, device="cpu", progress=False)
    assert len(loop.folds) >= 3
    backends = ["local"] + (["ray"] if importlib.util.find_spec("ray") else [])
    for backend in backends:  # worker processes, and a local Ray
        tasks = LazyBackend(backend, 2)
        try:
            parallel = walk_forward(features, targets, GNN, TRAIN, device="cpu",
                                    progress=False, backend=tasks)
        finally:
            tasks.close()
        pd.testing.assert_frame_equal(parallel.predictions, loop.predictions,
                                      check_exact=True)
        for a, b in zip(parallel.folds, loop.folds, strict=True):
            assert (a.retrain_date, a.n_train, a.epochs_run, a.best_val_loss) == (
                b.retrain_date, b.n_train, b.epochs_run, b.best_val_loss)
        for date, graph in loop.graphs().items():
            pd.testing.assert_frame_equal(parallel.graphs()[date], graph)
    # folds that warm-start depend on each other: they train here, in order, as before
    warm = dataclasses.replace(TRAIN, warm_start=True)
    tasks = LazyBackend("local", 2)
    with torch_one_thread():
        started = walk_forward(features, targets, GNN, warm, device="cpu", progress=False,
                               backend=tasks)
        pd.testing.assert_frame_equal(
            started.predictions,
            walk_forward(features, targets, GNN, warm, device="cpu", progress=False).predictions)
    assert tasks._backend is None  # nothing was sent to a worker


def torch_one_thread() -> object:
    from lstm_strategy.forecaster import torch_threads

    return torch_threads(1)


def factor_graph(assets: int, seed: int = 0) -> np.ndarray:
    """A top-5 correlation graph of one-factor returns: hubs, as real universes have."""
    rng = np.random.default_rng(seed)
    returns = rng.uniform(0.2, 1.5, assets) * rng.standard_normal((300, 1)) + \
        rng.standard_normal((300, assets))
    return correlation_graph(returns, 5, 0.0, 252)


def test_sparse_and_dense_graph_layers_agree_and_checkpoints_hold_links() -> None:
    from lstm_strategy.models.lstm_gnn import SPARSE_FROM

    assets = SPARSE_FROM + 16
    config = ModelConfig(kind="lstm_gnn", hidden_size=8, num_layers=1, graph_layers=2)
    torch.manual_seed(0)
    model = build_model(5, config, assets)
    assert model.propagation == "sparse"  # chosen by the model from the universe's size
    graph = factor_graph(assets)
    model.set_graph(graph)
    x = torch.randn(2, assets, 9, 5)
    sparse_out, _ = model(x)
    with torch.no_grad():  # forecasts take an in-place path of their own
        torch.testing.assert_close(model(x)[0], sparse_out, atol=1e-6, rtol=0)
    sparse_out.square().sum().backward()
    sparse_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.propagation = "dense"  # the same weights through torch-geometric's DenseGCNConv
    model._graph_changed()
    dense_out, _ = model(x)
    dense_out.square().sum().backward()
    torch.testing.assert_close(sparse_out, dense_out, atol=1e-6, rtol=0)
    for a, b in zip(sparse_grads, (p.grad for p in model.parameters()), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    # the checkpoint holds the graph as its links, and loads back to the same forecasts
    state = model.state_dict()
    assert state["edges"].shape == (2, int(graph.sum()))
    assert not any(t.shape == (assets, assets) for t in state.values())
    again = build_model(5, config, assets)
    again.load_state_dict(state)
    np.testing.assert_array_equal(again.adjacency.numpy(), graph)
    torch.testing.assert_close(again(x)[0], sparse_out, atol=0, rtol=0)
    # and a checkpoint of the dense-matrix format (before links) still loads
    legacy = {k: v for k, v in state.items() if k != "edges"}
    legacy["adjacency"] = torch.as_tensor(graph, dtype=torch.float32)
    old = build_model(5, config, assets)
    old.load_state_dict(legacy)
    torch.testing.assert_close(old(x)[0], sparse_out, atol=0, rtol=0)
    # attention stays dense at any size
    gat = build_model(5, ModelConfig(kind="lstm_gnn", hidden_size=8, graph_layer="gat"),
                      assets)
    assert gat.propagation == "dense"


@pytest.mark.parametrize("spacing", ["B", "h", "MS"])
def test_the_sparse_graph_path_has_no_lookahead(spacing: str) -> None:
    from lstm_strategy.models.lstm_gnn import SPARSE_FROM

    index = pd.date_range("1970-01-01", periods=420, freq=spacing)
    tickers = [f"S{i:02d}" for i in range(SPARSE_FROM)]
    bars = {t: random_walk_bars(index, seed) for seed, t in enumerate(tickers)}
    features = {t: build_features(f, FeatureConfig()) for t, f in bars.items()}
    targets = {t: make_target(f["Close"], 1) for t, f in bars.items()}
    train = TrainConfig(min_train_bars=250, step=60, epochs=1, context_bars=30, bptt=32,
                        burn_in=5, batch_streams=2, patience=1)
    full = walk_forward(features, targets, GNN, train, device="cpu", progress=False)
    assert full.folds[0].forecaster.model.propagation == "sparse"
    end = full.folds[1].retrain_date + (index[1] - index[0]) * 8
    short = walk_forward(cut(features, end), cut(targets, end), GNN, train, device="cpu",
                         progress=False)
    pd.testing.assert_frame_equal(short.predictions, full.predictions.loc[:end])
    assert short.predictions.notna().to_numpy().sum() > 1000
