"""Walk-forward training: fit on the past, forecast the next `step` bars, repeat.

The schedule is anchored at the start of the data: retrain bar R_k = first complete
feature row + min_train_bars + k * step. Fold k fits its scaler on feature rows
[train_start, R_k) and its model on labels whose horizon ends before R_k (purged:
t + horizon < R_k), with the last part of that span held out, again purged, for early
stopping. It then forecasts bars [R_k, R_k + step). Nothing in fold k depends on the
data after R_k + step, so appending newer bars never changes an older forecast.
"""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from .config import TrainConfig
from .data import stamp
from .errors import ConfigError, DataError
from .forecaster import (
    Forecaster,
    Scaler,
    WalkForwardStream,
    full_precision,
    load_checkpoint,
    resolve_device,
    save_checkpoint,
)
from .graph import build_graph
from .models import ForecastModel, ModelConfig, build_model
from .models.base import detach_state
from .models.sequence import masked_mean

MIN_TRAIN_SAMPLES = 20  # fewer labels than this in a fold's loss is not a model worth trading


class TooFewSamples(DataError):
    """A fold whose training span leaves (almost) no label to learn from."""

    def __init__(self, trained: int, labels: int) -> None:
        super().__init__(f"{trained} label(s) could be trained on ({labels} known before the "
                         f"retrain date; a window model needs model.window rows before each, "
                         f"a sequence model loses train.burn_in steps per stream); at least "
                         f"{MIN_TRAIN_SAMPLES} are needed")
        self.trained, self.labels = trained, labels


@dataclass
class Fold:
    """One walk-forward fold: what it trained on, what it forecast, and the model."""

    index: int
    retrain_date: pd.Timestamp  # first bar forecast by this fold
    end_date: pd.Timestamp  # last bar forecast by this fold
    train_start: pd.Timestamp
    last_label_date: pd.Timestamp  # latest bar whose label trained the model
    label_end_date: pd.Timestamp  # latest bar any training label looks at (< retrain_date)
    n_train: int
    n_val: int
    epochs_run: int
    best_val_loss: float
    forecaster: Forecaster = field(repr=False)


@dataclass
class Panel:
    """Complete feature rows of one series (or of several assets on one calendar),
    compressed, with their positions in the data."""

    x: np.ndarray  # [rows, features], or [rows, assets, features]
    y: np.ndarray  # [rows] labels (NaN where unknown), or [rows, assets]
    pos: np.ndarray  # [rows] position of each row in the full index
    assets: tuple[str, ...] = ()  # the assets' names, for a multi-asset panel
    sectors: dict | None = None  # asset -> sector, for graph models that ask for it

    @property
    def n_assets(self) -> int:
        return self.x.shape[1] if self.x.ndim == 3 else 1

    @classmethod
    def from_assets(cls, features: Mapping[str, pd.DataFrame], targets: Mapping[str, pd.Series],
                    sectors: Mapping[str, str] | None = None) -> Panel:
        """Several assets on one calendar; a bar is kept when every asset's features are."""
        assets = list(features)
        first = features[assets[0]]
        for asset in assets:
            if not (features[asset].index.equals(first.index)
                    and targets[asset].index.equals(first.index)):
                raise ValueError(f"{asset}: every asset's features and target must share one "
                                 f"index; load the bars with align='inner'.")
            if list(features[asset].columns) != list(first.columns):
                raise ValueError(f"{asset}: every asset needs the same feature columns.")
        values = np.stack([features[a].to_numpy(dtype=np.float64) for a in assets], axis=1)
        labels = np.stack([targets[a].to_numpy(dtype=np.float64) for a in assets], axis=1)
        complete = np.isfinite(values).all(axis=(1, 2))
        return cls(values[complete], labels[complete], np.flatnonzero(complete),
                   tuple(assets), dict(sectors) if sectors else None)

    @classmethod
    def from_frames(cls, features: pd.DataFrame, target: pd.Series) -> Panel:
        """Keep the rows whose features are all finite; labels may be NaN."""
        if not features.index.equals(target.index):
            raise ValueError("features and target must share one index; build both from the "
                             "same bars.")
        values = features.to_numpy(dtype=np.float64)
        complete = np.isfinite(values).all(axis=1)
        return cls(values[complete], target.to_numpy(dtype=np.float64)[complete],
                   np.flatnonzero(complete))


def fold_schedule(n_bars: int, first_complete: int, config: TrainConfig) -> list[int]:
    """Retrain positions R_k, anchored at the data start; independent of data after R_k."""
    first = first_complete + config.min_train_bars
    return list(range(first, n_bars, config.step))


def schedule_rows(retrains: list[int], first_complete: int, window: int | None) -> int:
    """Bars the folds train on, summed (what a walk-forward's training time follows): each
    fold's span from the first complete row, or its last `window` bars."""
    spans = [r - first_complete for r in retrains]
    return sum(spans if window is None else (min(s, window) for s in spans))


EXPANDING_NOTE_FACTOR = 3  # `check` says so when expanding costs this many times rolling


def expanding_note(index: pd.DatetimeIndex, retrains: list[int], first_complete: int,
                   config: TrainConfig) -> str | None:
    """What `check` says when an expanding window will cost EXPANDING_NOTE_FACTOR times or
    more what a rolling one of twice the first fold would (long intraday files: its cost
    per fold grows with history, so the whole grows as bars^2); None otherwise.
    `retrains` is the schedule (`fold_schedule`) from the first complete row."""
    if config.train_window is not None:
        return None
    window = 2 * config.min_train_bars
    expanding, rolling = (schedule_rows(retrains, first_complete, w) for w in (None, window))
    if not rolling or expanding < EXPANDING_NOTE_FACTOR * rolling:
        return None
    same = [r for r in retrains if r - first_complete <= window]
    return (f"train.train_window: null (an expanding window) trains its {len(retrains)} folds "
            f"on {expanding:,} bars in all, {expanding / rolling:.1f}x what "
            f"--set train.train_window={window} would (a rolling window of twice the first "
            f"fold's span; training time follows the bars). A rolling window trains each fold "
            f"on its last {window} bars: the {len(same)} fold(s) retrained by "
            f"{stamp(index[same[-1]])} stay the same, later ones no longer see older bars.")


def label_masks(panel: Panel, rows: slice, retrain_pos: int, config: TrainConfig
                ) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation label masks over `rows`, each purged by the horizon."""
    pos = panel.pos[rows]
    y = panel.y[rows]
    at = pos.reshape(-1, *([1] * (y.ndim - 1)))  # one position per row, for every asset
    known = np.isfinite(y) & (at + config.horizon < retrain_pos)
    n_val = round(len(pos) * config.val_fraction)
    if n_val < 2:
        return known, np.zeros_like(known)
    val_start = pos[len(pos) - n_val]
    train = known & (at + config.horizon < val_start)
    val = known & (at >= val_start)
    return train, val


def _loss_fn(head: str) -> nn.Module:
    return nn.BCEWithLogitsLoss(reduction="none") if head == "direction" else nn.MSELoss(
        reduction="none")


def _labels(y_scaled: torch.Tensor, head: str) -> torch.Tensor:
    return (y_scaled > 0).float() if head == "direction" else y_scaled


def train_epochs(model: ForecastModel, x: torch.Tensor, labels: torch.Tensor,
                 train: torch.Tensor, val: torch.Tensor, config: TrainConfig,
                 loss_fn: nn.Module, rng: np.random.Generator, used: torch.Tensor
                 ) -> Iterator[float]:
    """Train `model` on the span x for `config.epochs` epochs; yields the validation loss.

    The model cuts each epoch into chunks (`training_chunks`); state carries between
    chunks that ask for it, detached (truncated back-propagation). `used` marks every row
    (every row and asset) whose label entered a loss; chunks name them by flat index.
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr,
                                 weight_decay=config.weight_decay)
    scored = validation_span(model, val, config)
    for _ in range(config.epochs):
        model.train()
        state = None
        for chunk in model.training_chunks(x, labels, train, config, rng):
            out, state = model(chunk.inputs, state if chunk.carry else None)
            state = detach_state(state)
            flat = used.view(-1)
            if chunk.mask is None:
                flat[chunk.rows] = True
            else:
                flat[chunk.rows[chunk.mask > 0]] = True
            if not chunk.has_loss:
                continue
            loss = loss_fn(out, chunk.labels)
            loss = loss.mean() if chunk.mask is None else masked_mean(loss, chunk.mask)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
        model.eval()
        yield model.validation_loss(x[scored], labels[scored], val[scored], loss_fn)


def validation_span(model: ForecastModel, val: torch.Tensor, config: TrainConfig) -> slice:
    """The rows an epoch's validation runs over: the validation tail and the context
    before it (the model's `context_rows`), from a cold start, as a fold's forecasts are
    made; not the whole training span, which made validation a third of training."""
    rows = val.reshape(len(val), -1).any(dim=1).nonzero()
    if len(rows) == 0:
        return slice(None)
    first = int(rows[0, 0].item())
    return slice(max(0, first - model.context_rows(config.context_bars)), None)


@dataclass
class FoldFit:
    """A model fitted on one fold's training span, and what it was fitted on."""

    forecaster: Forecaster
    n_train: int  # labels that entered a loss
    n_val: int
    epochs_run: int
    best_val_loss: float
    train_start_pos: int  # position in the full index of the first training row
    last_label_pos: int  # position of the latest labelled row used (-1 if none)


def fit_fold(
    panel: Panel,
    feature_names: list[str],
    rows: slice,
    retrain_pos: int,
    model_config: ModelConfig,
    config: TrainConfig,
    device: torch.device,
    seed: int,
    init_state: dict | None = None,
) -> FoldFit:
    """Fit scaler and model on the panel rows `rows`, using only labels known before `retrain_pos`.

    Early stopping on the purged validation tail keeps the best epoch's weights. Raises
    `TooFewSamples` when fewer than MIN_TRAIN_SAMPLES labels could enter a loss.
    """
    with full_precision(device):
        return _fit_fold(panel, feature_names, rows, retrain_pos, model_config, config, device,
                         seed, init_state)


def _fit_fold(panel: Panel, feature_names: list[str], rows: slice, retrain_pos: int,
              model_config: ModelConfig, config: TrainConfig, device: torch.device, seed: int,
              init_state: dict | None) -> FoldFit:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x_raw = panel.x[rows]
    train, val = label_masks(panel, rows, retrain_pos, config)
    y_known = panel.y[rows][train]
    target_std = float(y_known.std()) if len(y_known) > 1 and y_known.std() > 0 else 1.0
    model = build_model(len(feature_names), model_config, panel.n_assets)
    if init_state is not None:
        model.load_state_dict(init_state)
    if model.uses_graph:  # from the labels known before the retrain date, nothing later
        known = train | val
        model.set_graph(build_graph(np.where(known, panel.y[rows], np.nan), panel.assets,
                                    model_config, panel.sectors))
    forecaster = Forecaster(model, model_config, feature_names, Scaler.fit(x_raw), target_std,
                            config.horizon, device)
    x = forecaster.scale(x_raw)
    y = torch.as_tensor(np.nan_to_num(panel.y[rows] / target_std), dtype=torch.float32,
                        device=device)
    train_t = torch.as_tensor(train, device=device)
    used = torch.zeros_like(train_t)
    epochs = train_epochs(model, x, _labels(y, model_config.head), train_t,
                          torch.as_tensor(val, device=device), config,
                          _loss_fn(model_config.head), rng, used)
    best_loss, best_state, since_best, epochs_run = float("inf"), None, 0, 0
    for val_loss in epochs:
        epochs_run += 1
        if not np.isfinite(val_loss):
            continue  # no validation set: train every epoch, keep the last weights
        if val_loss < best_loss - 1e-9:
            best_loss, best_state, since_best = val_loss, copy.deepcopy(model.state_dict()), 0
        else:
            since_best += 1
            if since_best >= config.patience:
                break
    n_trained = int(used.sum().item())
    if n_trained < MIN_TRAIN_SAMPLES:
        raise TooFewSamples(n_trained, int(train.sum()))
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    pos = panel.pos[rows]
    labelled = pos[(train | val).reshape(len(pos), -1).any(axis=1)]
    return FoldFit(forecaster, n_trained, int(val.sum()), epochs_run,
                   best_loss if best_state is not None else float("nan"), int(pos[0]),
                   int(labelled.max()) if len(labelled) else -1)


class WalkForwardResult:
    """Out-of-sample forecasts of every fold, the folds' models, and a streaming view."""

    def __init__(self, index: pd.DatetimeIndex, folds: list[Fold],
                 predictions: pd.Series | pd.DataFrame, model_config: ModelConfig,
                 train_config: TrainConfig) -> None:
        self.index = index
        self.folds = folds
        self.predictions = predictions  # a frame with a column per asset for a panel
        self.model_config = model_config
        self.train_config = train_config

    @property
    def assets(self) -> list[str]:
        """The assets of a multi-asset result (empty for one series)."""
        return [str(c) for c in self.predictions.columns] if isinstance(
            self.predictions, pd.DataFrame) else []

    def asset(self, name: str) -> WalkForwardResult:
        """One asset's forecasts of a multi-asset result, with the shared folds."""
        return WalkForwardResult(self.index, self.folds,
                                 self.predictions[name].rename("forecast"),
                                 self.model_config, self.train_config)

    def graphs(self) -> dict[pd.Timestamp, pd.DataFrame]:
        """Each fold's asset graph by retrain date (graph models only)."""
        return {f.retrain_date: pd.DataFrame(f.forecaster.model.adjacency.cpu().numpy(),
                                             index=self.assets, columns=self.assets)
                for f in self.folds if f.forecaster.model.uses_graph}

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.folds[0].forecaster.feature_names if self.folds else ()

    @property
    def first_forecast_date(self) -> pd.Timestamp | None:
        return self.folds[0].retrain_date if self.folds else None

    def fold_table(self) -> pd.DataFrame:
        """One row per fold: dates, sample counts, epochs and validation loss."""
        rows = [{k: v for k, v in vars(f).items() if k != "forecaster"} for f in self.folds]
        return pd.DataFrame(rows).set_index("index") if rows else pd.DataFrame()

    def stream(self) -> WalkForwardStream:
        """Streaming forecasts with the same fold models, switched at each retrain date."""
        if self.model_config.multi_asset:
            raise ConfigError(f"streaming forecasts of model.kind={self.model_config.kind} "
                              f"(one model for all assets) are not built; use "
                              f"strategy.mode: batch.")
        return WalkForwardStream([(f.retrain_date, f.forecaster) for f in self.folds],
                                 self.train_config.context_bars)

    def save(self, path: str | Path, **meta: object) -> None:
        """Checkpoint every fold's model with its scaler, dates and the configs."""
        save_checkpoint(path, {
            "kind": "walk_forward",
            "model_config": asdict(self.model_config),
            "train_config": asdict(self.train_config),
            "index": torch.tensor(self.index.as_unit("ns").asi8),
            "index_unit": self.index.unit,
            "index_name": self.index.name,
            "predictions": torch.tensor(self.predictions.to_numpy()),
            "assets": self.assets,
            "folds": [{**{k: (v.value if isinstance(v, pd.Timestamp) else v)
                          for k, v in vars(f).items() if k != "forecaster"},
                       "forecaster": f.forecaster.to_dict()} for f in self.folds],
            "meta": meta,
        })

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> WalkForwardResult:
        blob = load_checkpoint(path, "walk_forward")
        index = pd.DatetimeIndex(blob["index"].numpy().astype("datetime64[ns]"),
                                 name=blob.get("index_name")).as_unit(blob["index_unit"])
        folds = []
        for f in blob["folds"]:
            dates = {k: pd.Timestamp(f[k]) for k in
                     ("retrain_date", "end_date", "train_start", "last_label_date",
                      "label_end_date")}
            rest = {k: f[k] for k in ("index", "n_train", "n_val", "epochs_run",
                                      "best_val_loss")}
            folds.append(Fold(**rest, **dates,
                              forecaster=Forecaster.from_dict(f["forecaster"], device)))
        values = blob["predictions"].numpy()
        predictions = (pd.DataFrame(values, index=index, columns=blob["assets"])
                       if blob.get("assets") else pd.Series(values, index=index, name="forecast"))
        return cls(index, folds, predictions, ModelConfig(**blob["model_config"]),
                   TrainConfig(**blob["train_config"]))


class FoldProgress:
    """Progress of a walk-forward run: a bar on a terminal, a line per fold elsewhere.

    `progress`: None picks by where stderr goes (a bar on a TTY; lines in logs, under
    nohup, in notebooks' captured output), True forces the bar, False is silent, and a
    callable receives each line instead of stderr.
    """

    def __init__(self, total: int, label: str, progress: bool | Callable[[str], None] | None
                 ) -> None:
        self.total, self.label = total, label
        self.started = time.perf_counter()
        self.say = progress if callable(progress) else None
        interactive = progress is True or (progress is None and sys.stderr.isatty())
        self.bar = tqdm(total=total, desc=f"walk-forward {label}".strip(), unit="fold",
                        leave=False) if interactive else None
        if progress is None and not interactive:
            self.say = lambda line: print(line, file=sys.stderr, flush=True)

    def fold_done(self, k: int, retrain: pd.Timestamp, fit: FoldFit) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(epochs=fit.epochs_run, val=f"{fit.best_val_loss:.3g}")
        if self.say is not None:
            elapsed = time.perf_counter() - self.started
            eta = elapsed / (k + 1) * (self.total - k - 1)
            self.say(f"walk-forward {self.label + ': ' if self.label else ''}fold {k + 1}/"
                     f"{self.total} (retrain {stamp(retrain)}) {fit.epochs_run} epochs, val "
                     f"{fit.best_val_loss:.3g}; {elapsed:.0f}s elapsed, ETA {eta:.0f}s")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def fit_fold_at(panel: Panel, names: list[str], index: pd.DatetimeIndex, k: int,
                retrain_pos: int, model_config: ModelConfig, config: TrainConfig,
                device: torch.device, init_state: dict | None = None) -> FoldFit:
    """Fold k of the walk-forward: trained on the complete rows before `retrain_pos` (all of
    them, or the last `train_window` bars), with the labels known then, seed `seed + k`.

    The one fold recipe of the batch walk-forward and the live runner, so a fold trained
    on the bars of a live feed is the backtest's fold. `index` names dates in messages.
    """
    first_row = int(np.searchsorted(panel.pos, retrain_pos))
    start_pos = 0 if config.train_window is None else retrain_pos - config.train_window
    train_rows = slice(int(np.searchsorted(panel.pos, start_pos)), first_row)
    when = (stamp(index[retrain_pos]) if retrain_pos < len(index)  # live: the bar is to come
            else f"after {stamp(index[-1])}")
    if train_rows.stop - train_rows.start < config.min_train_bars // 2:
        raise DataError(
            f"fold {k} (retrain {when}) has only "
            f"{train_rows.stop - train_rows.start} complete feature rows to train on; "
            f"rows with NaN features are skipped. Fill the gaps in the data or widen "
            f"train.train_window.")
    try:
        return fit_fold(panel, names, train_rows, retrain_pos, model_config, config, device,
                        seed=config.seed + k,
                        init_state=init_state if config.warm_start else None)
    except TooFewSamples as exc:
        raise DataError(
            f"fold {k} (retrain {when}): {exc}. Raise "
            f"train.min_train_bars (or train.train_window), or lower model.window / "
            f"train.burn_in; no untrained model is traded.") from None


def fold_forecasts(panel: Panel, forecaster: Forecaster, retrain_pos: int,
                   config: TrainConfig, n_bars: int) -> tuple[slice, np.ndarray]:
    """A fold's out-of-sample forecasts: the panel rows it covers and their values (its
    state warmed over `context_bars` before the retrain date, as the stream does)."""
    end_pos = min(retrain_pos + config.step, n_bars)
    first_row = int(np.searchsorted(panel.pos, retrain_pos))
    stop_row = int(np.searchsorted(panel.pos, end_pos))
    if stop_row <= first_row:
        return slice(first_row, first_row), np.empty((0, *panel.y.shape[1:]))
    context_row = max(0, first_row - forecaster.model.context_rows(config.context_bars))
    out = forecaster.forecast_rows(panel.x[context_row:stop_row])
    return slice(first_row, stop_row), out[first_row - context_row:]


def fold_task(panel: Panel, names: list[str], index: pd.DatetimeIndex, k: int,
              retrain_pos: int, model_config: ModelConfig, config: TrainConfig
              ) -> tuple[FoldFit, tuple[slice, np.ndarray]]:
    """Fold k trained and forecast in a worker (on the CPU): what the loop does for it."""
    device = torch.device("cpu")
    fit = fit_fold_at(panel, names, index, k, retrain_pos, model_config, config, device)
    return fit, fold_forecasts(panel, fit.forecaster, retrain_pos, config, len(index))


def _in_parallel(backend: object | None, config: TrainConfig, device: torch.device,
                 folds: int) -> bool:
    return (backend is not None and not config.warm_start and device.type == "cpu"
            and folds > 1)


def _folds_on(backend: object, panel: Panel, names: list[str], index: pd.DatetimeIndex,
              retrains: list[int], model_config: ModelConfig, config: TrainConfig,
              report: FoldProgress) -> list[tuple[FoldFit, tuple[slice, np.ndarray]]]:
    """Every fold as a task on `backend`; their outcomes in fold order."""
    handles = {backend.submit(fold_task, panel, names, index, k, pos, model_config, config): k
               for k, pos in enumerate(retrains)}
    done: dict[int, tuple] = {}
    pending = list(handles)
    while pending:
        for handle in backend.wait(pending):
            pending.remove(handle)
            k = handles[handle]
            done[k] = backend.result(handle)
            report.fold_done(len(done) - 1, index[retrains[k]], done[k][0])
    return [done[k] for k in range(len(retrains))]


def walk_forward(
    features: pd.DataFrame | Mapping[str, pd.DataFrame],
    target: pd.Series | Mapping[str, pd.Series],
    model_config: ModelConfig | None = None,
    train_config: TrainConfig | None = None,
    *,
    device: str | torch.device = "auto",
    progress: bool | Callable[[str], None] | None = None,
    label: str = "",
    sectors: Mapping[str, str] | None = None,
    backend: object | None = None,
) -> WalkForwardResult:
    """Train fold by fold and return out-of-sample forecasts on the features' index.

    `target` is the label series from `make_target` (forward log return over
    `train_config.horizon` bars). Forecasts before the first retrain date are NaN.
    `progress` (see `FoldProgress`) reports each fold, `label` names the series in it.
    For a multi-asset model (`model.kind` pooled or lstm_gnn) pass {asset: features} and
    {asset: target} on one calendar: one model forecasts them all, and `predictions` is a
    frame with a column per asset; `sectors` ({asset: sector}) feeds sector graphs.
    `backend` (`sweep.backends.make_backend`) trains the folds as parallel tasks, each on
    one torch thread: the forecasts equal the loop's on one thread, bit for bit. Folds
    that warm-start, and models on a GPU, train in this process, one after another.
    """
    model_config = model_config or ModelConfig()
    config = train_config or TrainConfig()
    device = resolve_device(device)
    single = isinstance(features, pd.DataFrame)
    if single and model_config.multi_asset:
        features, target = {label or "asset": features}, {label or "asset": target}
    if isinstance(features, pd.DataFrame):
        panel = Panel.from_frames(features, target)
        index, columns = features.index, features.columns
    else:
        panel = Panel.from_assets(features, target, sectors)
        index, columns = next(iter(features.values())).index, next(iter(features.values())).columns
    names = [str(c) for c in columns]
    predictions = np.full((len(index), *panel.y.shape[1:]), np.nan)
    if len(panel.pos) == 0:
        raise DataError("no complete feature row: every row has a NaN feature.")
    retrains = fold_schedule(len(index), int(panel.pos[0]), config)
    if not retrains:
        raise DataError(f"{len(index)} bars leave no out-of-sample bar after "
                         f"{int(panel.pos[0])} warm-up + {config.min_train_bars} training "
                         f"bars (train.min_train_bars); supply more history or lower it.")
    report = FoldProgress(len(retrains), label, progress)
    if _in_parallel(backend, config, device, len(retrains)):
        outcomes = _folds_on(backend, panel, names, index, retrains, model_config, config,
                             report)
    else:
        outcomes, init_state = [], None
        for k, retrain_pos in enumerate(retrains):
            fit = fit_fold_at(panel, names, index, k, retrain_pos, model_config, config,
                              device, init_state)
            if config.warm_start:
                init_state = copy.deepcopy(fit.forecaster.model.state_dict())
            outcomes.append((fit, fold_forecasts(panel, fit.forecaster, retrain_pos, config,
                                                 len(index))))
            report.fold_done(k, index[retrain_pos], fit)
    folds: list[Fold] = []
    for k, (retrain_pos, (fit, (rows, out))) in enumerate(zip(retrains, outcomes, strict=True)):
        predictions[panel.pos[rows]] = out
        end_pos = min(retrain_pos + config.step, len(index))
        last_label = max(fit.last_label_pos, 0)
        folds.append(Fold(
            index=k, retrain_date=index[retrain_pos], end_date=index[end_pos - 1],
            train_start=index[fit.train_start_pos], last_label_date=index[last_label],
            label_end_date=index[last_label + config.horizon], n_train=fit.n_train,
            n_val=fit.n_val, epochs_run=fit.epochs_run, best_val_loss=fit.best_val_loss,
            forecaster=fit.forecaster))
    report.close()
    if predictions.ndim == 1:
        forecast = pd.Series(predictions, index=index, name="forecast")
    elif single:
        forecast = pd.Series(predictions[:, 0], index=index, name="forecast")
    else:
        forecast = pd.DataFrame(predictions, index=index, columns=list(panel.assets))
    return WalkForwardResult(index, folds, forecast, model_config, config)


def fit_forecaster(
    features: pd.DataFrame,
    target: pd.Series,
    model_config: ModelConfig | None = None,
    train_config: TrainConfig | None = None,
    *,
    device: str | torch.device = "auto",
) -> Forecaster:
    """One model on every label known by the last bar (for live use after a backtest)."""
    model_config = model_config or ModelConfig()
    config = train_config or TrainConfig()
    panel = Panel.from_frames(features, target)
    start = 0 if config.train_window is None else len(features) - config.train_window
    rows = slice(int(np.searchsorted(panel.pos, start)), len(panel.pos))
    return fit_fold(panel, [str(c) for c in features.columns], rows, len(features),
                    model_config, config, resolve_device(device), seed=config.seed).forecaster
