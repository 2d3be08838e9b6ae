"""The fast evaluator's loop, compiled with Numba when it is installed (plain Python if not).

A line-for-line port of the broker and rules loop in fastsim.py's reference (kept as
`simulate(..., compiled=False)`), on flat arrays. Signals and volatility estimates come in
precomputed (they are NumPy reductions whose rounding must match the strategy's), so the
loop itself only adds, multiplies and compares.
"""

from __future__ import annotations

import math

import numpy as np

# error_model="numpy": a division is a plain IEEE division, without Python's zero check and
# the exception machinery it brings (which made a five-line helper 30x slower). No
# division here can meet a zero (each divisor is checked or validated first), so the
# results are the same; _nrt=False on the helpers that allocate nothing: no reference
# counting of their array arguments.
try:
    from numba import njit
except ImportError:  # pragma: no cover - the reference path still works
    def njit(*args, **kwargs):
        return (lambda fn: fn) if not args or not callable(args[0]) else args[0]


@njit(cache=True, error_model="numpy", _nrt=False)
def _update(size_arr, price_arr, i, size, price):
    """backtrader's Position.update on slot i; returns (opened, closed)."""
    old = size_arr[i]
    new = old + size
    size_arr[i] = new
    if new == 0.0:
        price_arr[i] = 0.0
        return 0.0, size
    if old == 0.0:
        price_arr[i] = price
        return size, 0.0
    if old > 0:
        if size > 0:
            price_arr[i] = (price_arr[i] * old + size * price) / new
            return size, 0.0
        if new > 0:
            return 0.0, size
        price_arr[i] = price
        return new, -old
    if size < 0:
        price_arr[i] = (price_arr[i] * old + size * price) / new
        return size, 0.0
    if new < 0:
        return 0.0, size
    price_arr[i] = price
    return new, -old


@njit(cache=True, error_model="numpy", inline="always")
def _probe(old, size):
    """Position.update's (opened, closed) split of adding `size` to `old`, on scalars:
    nothing changes and nothing is allocated (the split does not depend on prices)."""
    new = old + size
    if new == 0.0:
        return 0.0, size
    if old == 0.0:
        return size, 0.0
    if old > 0:
        if size > 0:
            return size, 0.0
        if new > 0:
            return 0.0, size
        return new, -old
    if size < 0:
        return size, 0.0
    if new < 0:
        return 0.0, size
    return new, -old


@njit(cache=True, error_model="numpy", _nrt=False)
def _trade_update(tr_size, tr_price, tr_pnl, tr_comm, tr_long, i, size, price, commission):
    tr_comm[i] += commission
    old = tr_size[i]
    if old == 0.0:
        tr_long[i] = size > 0
    tr_size[i] = old + size
    if abs(tr_size[i]) > abs(old):
        tr_price[i] = (old * tr_price[i] + size * price) / tr_size[i]
    else:
        tr_pnl[i] += -size * (price - tr_price[i]) * 1.0


@njit(cache=True, error_model="numpy", _nrt=False)
def _broker_value(cash, pos_size, pos_price, closes, bar):
    unlevered = 0.0
    for i in range(pos_size.shape[0]):
        value = pos_size[i] * closes[bar, i]
        if value > 0:
            unrealised = pos_size[i] * (closes[bar, i] - pos_price[i]) * 1.0
            unlevered += (value - unrealised) / 1.0
            unlevered += unrealised
        else:
            unlevered += value
    return cash + unlevered


@njit(cache=True, error_model="numpy", _nrt=False)
def _size_orders(want_i, want_t, n_want, pos_size, prices, bar, value, cash, comm, slip,
                 fractional, new_i, new_size, changes, order):
    """order_targets: target fractions of `value` as order sizes at `prices`, reductions
    first (a stable sort, as the strategy's), purchases capped at the cash left; returns
    how many orders went to new_*. `changes` and `order` are the caller's buffers: nothing
    is allocated."""
    for k in range(n_want):
        changes[k] = want_t[k] * value - pos_size[want_i[k]] * prices[bar, want_i[k]]
        # insertion sort of the indices by change, ties in their given order (stable):
        # the permutation np.argsort(kind="mergesort") gives, without its allocation
        j = k
        while j > 0 and changes[order[j - 1]] > changes[k]:
            order[j] = order[j - 1]
            j -= 1
        order[j] = k
    return _sized(want_i, want_t, n_want, pos_size, prices, bar, value, cash, comm, slip,
                  fractional, new_i, new_size, changes, order)


@njit(cache=True, error_model="numpy", _nrt=False)
def _sized(want_i, want_t, n_want, pos_size, prices, bar, value, cash, comm, slip,
           fractional, new_i, new_size, changes, order):
    """_size_orders' sizing in the order given (no allocation: no reference counting)."""
    n_new = 0
    left = cash
    for j in range(n_want):
        k = order[j]
        i = want_i[k]
        price = prices[bar, i]
        held_value = pos_size[i] * price
        change = changes[k]
        target_value = want_t[k] * value
        if change > 0 and held_value >= 0:
            affordable = max(left, 0.0) / ((1.0 + comm) * (1.0 + slip))
            target_value = held_value + min(change, affordable)
            left -= (target_value - held_value) * (1.0 + comm) * (1.0 + slip)
        else:
            left -= (target_value - held_value) * (1.0 - slip) * (1.0 - comm)
        if target_value == 0.0 and pos_size[i] != 0.0:
            new_i[n_new] = i
            new_size[n_new] = -pos_size[i]
            n_new += 1
            continue
        current_value = pos_size[i] * price
        if target_value == current_value:
            continue
        amount = abs(target_value - current_value)
        size = amount / price if fractional else float(int(amount // price))
        if size != 0.0:
            new_i[n_new] = i
            new_size[n_new] = size if target_value > current_value else -size
            n_new += 1
    return n_new


@njit(cache=True, error_model="numpy")
def run(opens, highs, lows, closes, signals, vols, decides, start,
        entry, exit_, allow_short, min_hold, stop_loss, take_profit, sizing, fraction,
        target_vol, confidence_scale, max_position, band,
        cash, comm, slip, close_fill, fractional):
    """The loop; sizing 0 fixed, 1 vol_target, 2 confidence. Returns flat result arrays."""
    bars, n = closes.shape
    pos_size = np.zeros(n)
    pos_price = np.zeros(n)
    direction = np.zeros(n, np.int64)
    target = np.zeros(n)
    entry_bar = np.full(n, -1, np.int64)
    entry_price = np.full(n, np.nan)
    blocked = np.zeros(n, np.int64)
    tr_open = np.zeros(n, np.bool_)
    tr_size = np.zeros(n)
    tr_price = np.zeros(n)
    tr_pnl = np.zeros(n)
    tr_comm = np.zeros(n)
    tr_long = np.zeros(n, np.bool_)
    tr_bar = np.zeros(n, np.int64)
    cap = 2 * bars * n + 8  # records: written before read, sliced to their counts
    new_i = np.zeros(n, np.int64)
    new_size = np.zeros(n)
    changes = np.empty(n)
    order = np.empty(n, np.int64)
    n_new = 0
    w_i = np.zeros(4 * n + 4, np.int64)
    w_rem = np.zeros(4 * n + 4)
    w_created = np.zeros(4 * n + 4, np.int64)
    w_ex = np.zeros(4 * n + 4)
    w_px = np.zeros(4 * n + 4)
    w_comm = np.zeros(4 * n + 4)
    n_work = 0
    f_bar = np.empty(cap, np.int64)
    f_i = np.empty(cap, np.int64)
    f_size = np.empty(cap)
    f_price = np.empty(cap)
    f_comm = np.empty(cap)
    n_fill = 0
    t_i = np.empty(cap, np.int64)
    t_open = np.empty(cap, np.int64)
    t_close = np.empty(cap, np.int64)
    t_long = np.empty(cap, np.bool_)
    t_price = np.empty(cap)
    t_pnl = np.empty(cap)
    t_comm = np.empty(cap)
    n_trade = 0
    r_bar = np.empty(cap, np.int64)
    r_i = np.empty(cap, np.int64)
    n_rej = 0
    ev_kind = np.zeros(8 * n + 8, np.int64)  # 1 filled, 2 margin
    ev_i = np.zeros(8 * n + 8, np.int64)
    ev_px = np.zeros(8 * n + 8)
    values = np.empty(bars)  # every bar writes its own
    cash_line = np.empty(bars)
    gross = np.empty(bars)
    value = cash
    created_bar = -1
    want_i = np.zeros(n, np.int64)
    want_t = np.zeros(n)
    checks = closes if close_fill else opens  # where check_submitted prices new orders
    deferred = False
    deferred_value = 0.0
    deferred_n = 0
    for bar in range(bars):
        n_ev = 0
        if deferred:
            n_new = _size_orders(want_i, want_t, deferred_n, pos_size, opens, bar,
                                 deferred_value, cash, comm, slip, fractional, new_i, new_size,
                                 changes, order)
            created_bar = bar
            deferred = False
        if n_new:
            check = cash
            for k in range(n_new):
                i = new_i[k]
                size = new_size[k]
                price = checks[created_bar, i]
                opened, closed = _probe(pos_size[i], size)
                if closed != 0.0:
                    check += -closed * price
                    check -= abs(closed) * comm * price
                if opened != 0.0:
                    check -= opened * price
                    check -= abs(opened) * comm * price
                if check >= 0.0:
                    w_i[n_work] = i
                    w_rem[n_work] = size
                    w_created[n_work] = created_bar
                    w_ex[n_work] = 0.0
                    w_px[n_work] = 0.0
                    w_comm[n_work] = 0.0
                    n_work += 1
                else:
                    ev_kind[n_ev] = 2
                    ev_i[n_ev] = i
                    n_ev += 1
            n_new = 0
        kept = 0
        for k in range(n_work):
            i = w_i[k]
            size = w_rem[k]
            created = w_created[k]
            if close_fill:
                base = closes[created, i]
                when = created
                price = base * (1 + slip) if size > 0 else base * (1 - slip)
            else:
                base = opens[bar, i]
                when = bar
                if slip == 0.0:
                    price = base
                elif size > 0:
                    price = min(base * (1 + slip), highs[bar, i])
                else:
                    price = max(base * (1 - slip), lows[bar, i])
            original = pos_price[i]
            opened, closed = _probe(pos_size[i], size)
            paid = 0.0
            running = cash
            closed_comm = 0.0
            opened_comm = 0.0
            if closed != 0.0:
                running += -closed * original + (-closed) * (price - original)
                closed_comm = abs(closed) * comm * price
                running -= closed_comm
                paid += closed_comm
                cash = running
            had_open = opened
            if opened != 0.0:
                running -= opened * price
                opened_comm = abs(opened) * comm * price
                running -= opened_comm
                if running < 0.0:
                    opened = 0.0
                else:
                    cash = running
                    paid += opened_comm
            executed = closed + opened
            if closed != 0.0:
                _trade_update(tr_size, tr_price, tr_pnl, tr_comm, tr_long, i, closed, price,
                              closed_comm)
                if tr_size[i] == 0.0:
                    t_i[n_trade] = i
                    t_open[n_trade] = tr_bar[i]
                    t_close[n_trade] = bar
                    t_long[n_trade] = tr_long[i]
                    t_price[n_trade] = tr_price[i]
                    t_pnl[n_trade] = tr_pnl[i]
                    t_comm[n_trade] = tr_comm[i]
                    n_trade += 1
                    tr_open[i] = False
            if opened != 0.0:
                if not tr_open[i]:
                    tr_open[i] = True
                    tr_size[i] = 0.0
                    tr_price[i] = 0.0
                    tr_pnl[i] = 0.0
                    tr_comm[i] = 0.0
                    tr_bar[i] = bar
                _trade_update(tr_size, tr_price, tr_pnl, tr_comm, tr_long, i, opened, price,
                              opened_comm)
            if executed != 0.0:
                _update(pos_size, pos_price, i, executed, price)
                total = w_ex[k] + executed
                w_px[k] = (w_ex[k] * w_px[k] + executed * price) / total
                w_ex[k] = total
                w_comm[k] += paid
                w_rem[k] = size - executed
            if had_open != 0.0 and opened == 0.0:
                ev_kind[n_ev] = 2
                ev_i[n_ev] = i
                n_ev += 1
            elif w_rem[k] != 0.0:
                w_i[kept] = w_i[k]
                w_rem[kept] = w_rem[k]
                w_created[kept] = w_created[k]
                w_ex[kept] = w_ex[k]
                w_px[kept] = w_px[k]
                w_comm[kept] = w_comm[k]
                kept += 1
            else:
                f_bar[n_fill] = when
                f_i[n_fill] = i
                f_size[n_fill] = w_ex[k]
                f_price[n_fill] = w_px[k]
                f_comm[n_fill] = w_comm[k]
                n_fill += 1
                ev_kind[n_ev] = 1
                ev_i[n_ev] = i
                ev_px[n_ev] = w_px[k]
                n_ev += 1
        n_work = kept
        value = _broker_value(cash, pos_size, pos_price, closes, bar)
        for e in range(n_ev):
            i = ev_i[e]
            if ev_kind[e] == 1:
                if math.isnan(entry_price[i]) and direction[i] != 0:
                    entry_price[i] = ev_px[e]
            else:
                r_bar[n_rej] = bar
                r_i[n_rej] = i
                n_rej += 1
                size = pos_size[i]
                target[i] = size * closes[bar, i] / value if value > 0 else 0.0
                direction[i] = 1 if size > 0 else (-1 if size < 0 else 0)
        if bar >= start:
            n_want = 0
            for i in range(n):
                if not decides[bar, i]:
                    continue
                signal = signals[bar, i]
                close = closes[bar, i]
                held = bar + 1 - entry_bar[i] if min_hold and entry_bar[i] >= 0 else 0
                block = blocked[i]
                current = direction[i]
                stopped = False
                if (stop_loss or take_profit) and current != 0 and not math.isnan(entry_price[i]):
                    move = current * (close / entry_price[i] - 1.0)
                    stopped = (stop_loss != 0.0 and move <= -stop_loss) or (
                        take_profit != 0.0 and move >= take_profit)
                if stopped:
                    block = current
                    new_dir = 0
                elif signal != signal:
                    new_dir = current
                elif current != 0 and held < min_hold:
                    new_dir = current
                else:
                    wants = 1 if signal > entry else (-1 if (allow_short and signal < -entry) else 0)
                    if block == 1 and signal <= exit_:
                        block = 0
                    if block == -1 and signal >= -exit_:
                        block = 0
                    if wants == block:
                        wants = 0
                    if current == 1 and wants == 0 and signal > exit_:
                        new_dir = 1
                    elif current == -1 and wants == 0 and signal < -exit_:
                        new_dir = -1
                    else:
                        new_dir = wants
                if new_dir == 0:
                    new_target = 0.0
                elif new_dir == current and sizing == 0:
                    new_target = target[i]
                else:
                    base = fraction
                    if sizing == 1:
                        vol = vols[bar, i]
                        if math.isnan(vol):
                            base = -1.0
                        else:
                            base = base * (target_vol / vol if vol > 0 else 1.0)
                    elif sizing == 2:
                        base = base * min(1.0, abs(signal) / confidence_scale)
                    size_abs = 0.0 if base == -1.0 else min(base, max_position)
                    new_target = new_dir * size_abs
                if new_dir != current:
                    entry_bar[i] = bar + 1 if new_dir != 0 else -1
                    entry_price[i] = np.nan
                if new_dir != current or abs(new_target - target[i]) > band:
                    direction[i] = new_dir
                    target[i] = new_target
                    want_i[n_want] = i
                    want_t[n_want] = new_target
                    n_want += 1
                blocked[i] = block
            if n_want and close_fill:
                n_new = _size_orders(want_i, want_t, n_want, pos_size, closes, bar, value,
                                     cash, comm, slip, fractional, new_i, new_size, changes,
                                     order)
                created_bar = bar
            elif n_want:  # cheat-on-open: sized at the next bar's open
                deferred = True
                deferred_value = value
                deferred_n = n_want
        values[bar] = value
        cash_line[bar] = cash
        g = 0.0
        for i in range(n):
            g += abs(pos_size[i]) * closes[bar, i]
        gross[bar] = g
    return (values, cash_line, gross, f_bar[:n_fill], f_i[:n_fill], f_size[:n_fill],
            f_price[:n_fill], f_comm[:n_fill], t_i[:n_trade], t_open[:n_trade],
            t_close[:n_trade], t_long[:n_trade], t_price[:n_trade], t_pnl[:n_trade],
            t_comm[:n_trade], r_bar[:n_rej], r_i[:n_rej], tr_open, tr_size, tr_price, tr_pnl,
            tr_comm, tr_long, tr_bar)


@njit(cache=True, error_model="numpy")
def _block_sum(a, lo, n):
    """NumPy's pairwise_sum for n <= 128: a plain loop under 8, else 8 running sums."""
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    stop = n - (n % 8)
    while i < stop:
        j = lo + i
        r0 += a[j]
        r1 += a[j + 1]
        r2 += a[j + 2]
        r3 += a[j + 3]
        r4 += a[j + 4]
        r5 += a[j + 5]
        r6 += a[j + 6]
        r7 += a[j + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@njit(cache=True, error_model="numpy")
def _pairwise(a, lo, n):
    """NumPy's pairwise summation of a[lo:lo + n], operation for operation (its sums of
    contiguous float64 arrays), so scores computed here equal `strategy_metrics`' bit for
    bit. Its halving recursion runs on an explicit stack (Numba caches no recursion)."""
    if n <= 128:
        return _block_sum(a, lo, n)
    todo_lo = np.empty(128, np.int64)
    todo_n = np.empty(128, np.int64)
    todo_join = np.empty(128, np.bool_)
    sums = np.empty(128)
    top = 0
    depth = 0
    todo_lo[0], todo_n[0], todo_join[0] = lo, n, False
    top = 1
    while top:
        top -= 1
        start, size, join = todo_lo[top], todo_n[top], todo_join[top]
        if join:  # both halves are summed: add them
            depth -= 1
            sums[depth - 1] = sums[depth - 1] + sums[depth]
        elif size <= 128:
            sums[depth] = _block_sum(a, start, size)
            depth += 1
        else:
            half = size // 2
            half -= half % 8
            todo_lo[top], todo_n[top], todo_join[top] = start, size, True
            todo_lo[top + 1], todo_n[top + 1], todo_join[top + 1] = start + half, size - half, False
            todo_lo[top + 2], todo_n[top + 2], todo_join[top + 2] = start, half, False
            top += 3
    return sums[0]


STATS = 13  # first, last, n_bars, values_sum, mean, std, downside, mdd, held_bars, traded,
#             n_trades, winning trades, open trades


@njit(cache=True, error_model="numpy")
def _segment(equity, gross, equity_bar, gap, lo, hi, fill_bar, fill_value, out, returns_out):
    """`strategy_metrics`' ingredients of equity[lo:hi] into out[:10] (its per-bar returns
    without NaN and the bars after holes, as there); every bar's return into returns_out
    when it has room."""
    n = hi - lo
    out[0] = equity[lo]
    out[1] = equity[hi - 1]
    out[2] = n
    out[3] = _pairwise(equity, lo, n)
    kept = np.empty(max(n - 1, 0))
    m = 0
    for k in range(lo, hi - 1):
        change = equity[k + 1] / equity[k] - 1.0
        if returns_out.shape[0]:
            returns_out[k - lo] = change
        if change == change and not gap[equity_bar[k + 1]]:
            kept[m] = change
            m += 1
    mean = _pairwise(kept, 0, m) / m if m else np.nan
    squares = np.empty(m)
    downs = np.empty(m)
    for k in range(m):
        d = mean - kept[k]
        squares[k] = d * d
        low = min(kept[k], 0.0)
        downs[k] = low * low
    out[4] = mean
    out[5] = math.sqrt(_pairwise(squares, 0, m) / (m - 1)) if m > 1 else np.nan
    out[6] = math.sqrt(_pairwise(downs, 0, m) / m) if m else np.nan
    peak = -np.inf
    worst = -np.inf
    held = 0
    for k in range(lo, hi):
        peak = max(peak, equity[k])
        worst = max(worst, 1.0 - equity[k] / peak)
        held += gross[k] > 0
    out[7] = worst
    out[8] = held
    first_bar = equity_bar[lo] + (1 if lo > 0 else 0)  # fills dated inside the segment
    last_bar = equity_bar[hi - 1]
    values = np.empty(fill_bar.shape[0])
    count = 0
    for k in range(fill_bar.shape[0]):
        if (lo == 0 or fill_bar[k] >= first_bar) and fill_bar[k] <= last_bar:
            values[count] = fill_value[k]
            count += 1
    out[9] = _pairwise(values, 0, count)
    return m


@njit(cache=True, error_model="numpy")
def run_many(opens, highs, lows, closes, signal_sets, vol_sets, decides, start, signal_of,
             vol_of, points, cash, comm, slip, close_fill, fractional, gap, cut_bar,
             keep_returns):
    """Many strategy points on one forecast set in one call: for each, `run` and then the
    ingredients of its in-sample scores and (with `cut_bar` >= 0, the hold-out's first
    bar) its hold-out scores, as `backtest_task` slices them. `points` holds one row per
    point: entry, exit, allow_short, min_hold, stop_loss, take_profit, sizing, fraction,
    target_vol, confidence_scale, max_position, band. Returns (stats [points, 2, STATS],
    in-sample per-bar returns [points, rows] (padded; empty unless keep_returns), how many
    each has)."""
    bars = closes.shape[0]
    n_points = points.shape[0]
    rows = bars - start + 1 if start > 0 else bars + 1
    stats = np.full((n_points, 2, STATS), np.nan)
    returns = np.full((n_points if keep_returns else 0, rows), np.nan)
    n_returns = np.zeros(n_points, np.int64)
    equity = np.empty(rows)
    gross_rows = np.empty(rows)
    equity_bar = np.empty(rows, np.int64)
    no_returns = np.empty(0)
    for p in range(n_points):
        q = points[p]
        out = run(opens, highs, lows, closes, signal_sets[signal_of[p]], vol_sets[vol_of[p]],
                  decides, start, q[0], q[1], q[2] > 0.0, int(q[3]), q[4], q[5], int(q[6]),
                  q[7], q[8], q[9], q[10], q[11], cash, comm, slip, close_fill, fractional)
        values, gross = out[0], out[2]
        f_bar, f_size, f_price = out[3], out[5], out[6]
        t_open, t_close, t_pnl, t_comm = out[9], out[10], out[13], out[14]
        tr_open, tr_size, tr_price, tr_pnl, tr_comm, tr_bar = (out[17], out[18], out[19],
                                                               out[20], out[21], out[23])
        # the equity rows backtest() reports: from the bar before start, or a starting row
        if start > 0:
            for k in range(rows):
                equity[k] = values[start - 1 + k]
                gross_rows[k] = gross[start - 1 + k]
                equity_bar[k] = start - 1 + k
        else:
            equity[0] = cash
            gross_rows[0] = 0.0
            equity_bar[0] = 0  # the starting row: no return is dated on it
            for k in range(bars):
                equity[k + 1] = values[k]
                gross_rows[k + 1] = gross[k]
                equity_bar[k + 1] = k
        fill_value = np.empty(f_size.shape[0])
        for k in range(f_size.shape[0]):
            fill_value[k] = abs(f_size[k]) * f_price[k]
        if cut_bar >= 0:  # in sample: the rows dated before the hold-out starts
            cut = 0
            while cut < rows and (equity_bar[cut] < cut_bar or (cut == 0 and start == 0)):
                cut += 1
        else:
            cut = rows
        _segment(equity, gross_rows, equity_bar, gap, 0, cut, f_bar, fill_value, stats[p, 0],
                 returns[p] if keep_returns else no_returns)
        n_returns[p] = cut - 1
        last = bars - 1
        for side in range(2 if cut_bar >= 0 else 1):
            count = 0
            wins = 0
            still = 0
            for k in range(t_open.shape[0]):
                inside = t_close[k] < cut_bar if cut_bar >= 0 else True
                if (side == 0 and inside) or (side == 1 and t_open[k] >= cut_bar):
                    count += 1
                    wins += t_pnl[k] - t_comm[k] > 0
            for i in range(tr_open.shape[0]):
                if tr_open[i] and (side == 1 or cut_bar < 0):
                    if side == 1 and tr_bar[i] < cut_bar:
                        continue
                    unrealised = tr_size[i] * (closes[last, i] - tr_price[i])
                    count += 1
                    still += 1
                    wins += tr_pnl[i] + unrealised - tr_comm[i] > 0
            stats[p, side, 10] = count
            stats[p, side, 11] = wins
            stats[p, side, 12] = still
        if cut_bar >= 0:
            _segment(equity, gross_rows, equity_bar, gap, cut - 1, rows, f_bar, fill_value,
                     stats[p, 1], no_returns)
    return stats, returns, n_returns


# -- the cross-sectional book (CrossSectionalStrategy), for fastbook.BookEvaluator ---------
@njit(cache=True, error_model="numpy")
def _broker_bar(bar, prices, close_fill, slip, comm, cash, new_i, new_size, n_new,
                created_bar, pos_size, pos_price, open_trades, work, fills, done, events,
                counts):
    """The broker section of `run`'s loop, as a function of its own for `run_book`: the
    n_new orders submitted at `created_bar` checked against one running balance, then
    every accepted order executed. Returns the cash; `counts` holds n_work, n_fill,
    n_trade and n_ev in and out. `run` keeps the same lines inline: calling this from it
    made a 1,000-point grid 2x slower (measured), and that loop is the sweeps' hot path."""
    opens, highs, lows, closes, checks = prices
    tr_open, tr_size, tr_price, tr_pnl, tr_comm, tr_long, tr_bar = open_trades
    w_i, w_rem, w_created, w_ex, w_px, w_comm = work
    f_bar, f_i, f_size, f_price, f_comm = fills
    t_i, t_open, t_close, t_long, t_price, t_pnl, t_comm = done
    ev_kind, ev_i, ev_px = events
    n_work, n_fill, n_trade, n_ev = counts[0], counts[1], counts[2], counts[3]
    if n_new:
        check = cash
        for k in range(n_new):
            i = new_i[k]
            size = new_size[k]
            price = checks[created_bar, i]
            opened, closed = _probe(pos_size[i], size)
            if closed != 0.0:
                check += -closed * price
                check -= abs(closed) * comm * price
            if opened != 0.0:
                check -= opened * price
                check -= abs(opened) * comm * price
            if check >= 0.0:
                w_i[n_work] = i
                w_rem[n_work] = size
                w_created[n_work] = created_bar
                w_ex[n_work] = 0.0
                w_px[n_work] = 0.0
                w_comm[n_work] = 0.0
                n_work += 1
            else:
                ev_kind[n_ev] = 2
                ev_i[n_ev] = i
                n_ev += 1
        n_new = 0
    kept = 0
    for k in range(n_work):
        i = w_i[k]
        size = w_rem[k]
        created = w_created[k]
        if close_fill:
            base = closes[created, i]
            when = created
            price = base * (1 + slip) if size > 0 else base * (1 - slip)
        else:
            base = opens[bar, i]
            when = bar
            if slip == 0.0:
                price = base
            elif size > 0:
                price = min(base * (1 + slip), highs[bar, i])
            else:
                price = max(base * (1 - slip), lows[bar, i])
        original = pos_price[i]
        opened, closed = _probe(pos_size[i], size)
        paid = 0.0
        running = cash
        closed_comm = 0.0
        opened_comm = 0.0
        if closed != 0.0:
            running += -closed * original + (-closed) * (price - original)
            closed_comm = abs(closed) * comm * price
            running -= closed_comm
            paid += closed_comm
            cash = running
        had_open = opened
        if opened != 0.0:
            running -= opened * price
            opened_comm = abs(opened) * comm * price
            running -= opened_comm
            if running < 0.0:
                opened = 0.0
            else:
                cash = running
                paid += opened_comm
        executed = closed + opened
        if closed != 0.0:
            _trade_update(tr_size, tr_price, tr_pnl, tr_comm, tr_long, i, closed, price,
                          closed_comm)
            if tr_size[i] == 0.0:
                t_i[n_trade] = i
                t_open[n_trade] = tr_bar[i]
                t_close[n_trade] = bar
                t_long[n_trade] = tr_long[i]
                t_price[n_trade] = tr_price[i]
                t_pnl[n_trade] = tr_pnl[i]
                t_comm[n_trade] = tr_comm[i]
                n_trade += 1
                tr_open[i] = False
        if opened != 0.0:
            if not tr_open[i]:
                tr_open[i] = True
                tr_size[i] = 0.0
                tr_price[i] = 0.0
                tr_pnl[i] = 0.0
                tr_comm[i] = 0.0
                tr_bar[i] = bar
            _trade_update(tr_size, tr_price, tr_pnl, tr_comm, tr_long, i, opened, price,
                          opened_comm)
        if executed != 0.0:
            _update(pos_size, pos_price, i, executed, price)
            total = w_ex[k] + executed
            w_px[k] = (w_ex[k] * w_px[k] + executed * price) / total
            w_ex[k] = total
            w_comm[k] += paid
            w_rem[k] = size - executed
        if had_open != 0.0 and opened == 0.0:
            ev_kind[n_ev] = 2
            ev_i[n_ev] = i
            n_ev += 1
        elif w_rem[k] != 0.0:
            w_i[kept] = w_i[k]
            w_rem[kept] = w_rem[k]
            w_created[kept] = w_created[k]
            w_ex[kept] = w_ex[k]
            w_px[kept] = w_px[k]
            w_comm[kept] = w_comm[k]
            kept += 1
        else:
            f_bar[n_fill] = when
            f_i[n_fill] = i
            f_size[n_fill] = w_ex[k]
            f_price[n_fill] = w_px[k]
            f_comm[n_fill] = w_comm[k]
            n_fill += 1
            ev_kind[n_ev] = 1
            ev_i[n_ev] = i
            ev_px[n_ev] = w_px[k]
            n_ev += 1
    n_work = kept
    counts[0], counts[1], counts[2], counts[3] = n_work, n_fill, n_trade, n_ev
    return cash


@njit(cache=True, error_model="numpy")
def _by_score(members, scores):
    """decision._by_score: best score first, NaN last, ties by asset order."""
    ordered = np.sort(members)
    keys = np.empty(len(ordered))
    for j in range(len(ordered)):
        value = scores[ordered[j]]
        keys[j] = -value if math.isfinite(value) else np.inf
    return ordered[np.argsort(keys, kind="mergesort")]


@njit(cache=True, error_model="numpy")
def _dropout_targets(forecasts, held, top_k, n_drop, allow_short, gross, target):
    """decision.topk_dropout_targets into `target`, operation for operation."""
    n = len(forecasts)
    target[:] = held
    legs = 2 if allow_short else 1
    for leg in range(legs):
        sign = 1.0 if leg == 0 else -1.0
        scores = forecasts if leg == 0 else -forecasts
        mine = np.flatnonzero(sign * target > 0)
        free = np.flatnonzero(target == 0)
        last = _by_score(mine, scores)
        finite_free = free[np.isfinite(scores[free])]
        candidates = _by_score(finite_free, scores)
        today = candidates[:max(n_drop + top_k - len(last), 0)]
        combined = _by_score(np.concatenate((last, today)), scores)
        worst = combined[max(len(combined) - n_drop, 0):] if n_drop > 0 else combined[:0]
        n_sold = 0
        for j in range(len(last)):
            for w in range(len(worst)):
                if worst[w] == last[j]:
                    target[last[j]] = 0.0
                    n_sold += 1
                    break
        bought = today[:max(n_sold + top_k - len(last), 0)]
        kept = np.empty(n)
        n_kept = 0
        for i in range(n):
            if sign * target[i] > 0:
                kept[n_kept] = sign * target[i]
                n_kept += 1
        if len(bought):
            weight = sign * max(gross / legs - _pairwise(kept, 0, n_kept), 0.0) / len(bought)
            for j in range(len(bought)):
                target[bought[j]] = weight


@njit(cache=True, error_model="numpy")
def _rank_targets(forecasts, held, top_k, allow_short, weighting, gross, max_turnover,
                  target):
    """decision.rank_targets into `target` (weighting 0 equal, 1 forecast), operation
    for operation: NumPy's pairwise sums, its stable sort."""
    n = len(forecasts)
    target[:] = 0.0
    finite = np.flatnonzero(np.isfinite(forecasts))
    m = len(finite)
    k = min(top_k, m // 2 if allow_short else m)
    if k > 0:
        values = forecasts[finite]
        ranked = finite[np.argsort(-values, kind="mergesort")]
        centre = _pairwise(values, 0, m) / m
        legs = 2 if allow_short else 1
        share = gross / legs
        for leg in range(legs):
            sign = 1.0 if leg == 0 else -1.0
            members = ranked[:k] if leg == 0 else ranked[::-1][:k]
            scores = np.empty(k)
            for j in range(k):
                scores[j] = max(sign * (forecasts[members[j]] - centre), 0.0)
            total = _pairwise(scores, 0, k)
            if weighting == 0 or not total > 0:
                scores[:] = 1.0
                total = _pairwise(scores, 0, k)
            scale = sign * share
            for j in range(k):
                target[members[j]] = scale * scores[j] / total
    if max_turnover > 0:
        change = np.empty(n)
        moved_abs = np.empty(n)
        for i in range(n):
            change[i] = target[i] - held[i]
            moved_abs[i] = abs(change[i])
        moved = _pairwise(moved_abs, 0, n)
        if moved > max_turnover:
            for i in range(n):
                target[i] = held[i] + change[i] * (max_turnover / moved)


@njit(cache=True, error_model="numpy")
def run_book(opens, highs, lows, closes, forecasts, start, top_k, allow_short, rebalance,
             weighting, gross, max_turnover, dropout, n_drop, cash, comm, slip, close_fill,
             fractional):
    """CrossSectionalStrategy's loop on flat arrays (`run`'s broker, the book's rules at
    each rebalance); returns what `run` returns."""
    bars, n = closes.shape
    pos_size = np.zeros(n)
    pos_price = np.zeros(n)
    tr_open = np.zeros(n, np.bool_)
    tr_size = np.zeros(n)
    tr_price = np.zeros(n)
    tr_pnl = np.zeros(n)
    tr_comm = np.zeros(n)
    tr_long = np.zeros(n, np.bool_)
    tr_bar = np.zeros(n, np.int64)
    cap = 2 * bars * n + 8
    new_i = np.zeros(n, np.int64)
    new_size = np.zeros(n)
    changes = np.empty(n)
    order = np.empty(n, np.int64)
    n_new = 0
    work = (np.zeros(4 * n + 4, np.int64), np.zeros(4 * n + 4), np.zeros(4 * n + 4, np.int64),
            np.zeros(4 * n + 4), np.zeros(4 * n + 4), np.zeros(4 * n + 4))
    fills = (np.empty(cap, np.int64), np.empty(cap, np.int64), np.empty(cap), np.empty(cap),
             np.empty(cap))
    done = (np.empty(cap, np.int64), np.empty(cap, np.int64), np.empty(cap, np.int64),
            np.empty(cap, np.bool_), np.empty(cap), np.empty(cap), np.empty(cap))
    events = (np.zeros(8 * n + 8, np.int64), np.zeros(8 * n + 8, np.int64),
              np.zeros(8 * n + 8))
    open_trades = (tr_open, tr_size, tr_price, tr_pnl, tr_comm, tr_long, tr_bar)
    checks = closes if close_fill else opens
    prices = (opens, highs, lows, closes, checks)
    counts = np.zeros(4, np.int64)
    r_bar = np.empty(cap, np.int64)
    r_i = np.empty(cap, np.int64)
    n_rej = 0
    values = np.empty(bars)
    cash_line = np.empty(bars)
    gross_line = np.empty(bars)
    held = np.zeros(n)
    target = np.zeros(n)
    want_i = np.zeros(n, np.int64)
    want_t = np.zeros(n)
    created_bar = -1
    deferred = False
    deferred_value = 0.0
    deferred_n = 0
    since = -1  # bars since the last rebalance (-1: none yet)
    for bar in range(bars):
        if deferred:
            n_new = _size_orders(want_i, want_t, deferred_n, pos_size, opens, bar,
                                 deferred_value, cash, comm, slip, fractional, new_i, new_size,
                                 changes, order)
            created_bar = bar
            deferred = False
        if n_new or counts[0]:
            counts[3] = 0
            cash = _broker_bar(bar, prices, close_fill, slip, comm, cash, new_i, new_size,
                               n_new, created_bar, pos_size, pos_price, open_trades, work,
                               fills, done, events, counts)
            n_new = 0
            for e in range(counts[3]):
                if events[0][e] == 2:
                    r_bar[n_rej] = bar
                    r_i[n_rej] = events[1][e]
                    n_rej += 1
        value = _broker_value(cash, pos_size, pos_price, closes, bar)
        if bar >= start and not (since >= 0 and since + 1 < rebalance):
            since = 0
            for i in range(n):
                held[i] = pos_size[i] * closes[bar, i] / value if value > 0 else 0.0
            if dropout:
                _dropout_targets(forecasts[bar], held, top_k, n_drop, allow_short, gross,
                                 target)
            else:
                _rank_targets(forecasts[bar], held, top_k, allow_short, weighting, gross,
                              max_turnover, target)
            n_want = 0
            for i in range(n):
                if target[i] != held[i]:
                    want_i[n_want] = i
                    want_t[n_want] = target[i]
                    n_want += 1
            if n_want and close_fill:
                n_new = _size_orders(want_i, want_t, n_want, pos_size, closes, bar, value,
                                     cash, comm, slip, fractional, new_i, new_size, changes,
                                     order)
                created_bar = bar
            elif n_want:
                deferred = True
                deferred_value = value
                deferred_n = n_want
        elif bar >= start:
            since += 1
        values[bar] = value
        cash_line[bar] = cash
        g = 0.0
        for i in range(n):
            g += abs(pos_size[i]) * closes[bar, i]
        gross_line[bar] = g
    n_fill, n_trade = counts[1], counts[2]
    f_bar, f_i, f_size, f_price, f_comm = fills
    t_i, t_open, t_close, t_long, t_price, t_pnl, t_comm = done
    return (values, cash_line, gross_line, f_bar[:n_fill], f_i[:n_fill], f_size[:n_fill],
            f_price[:n_fill], f_comm[:n_fill], t_i[:n_trade], t_open[:n_trade],
            t_close[:n_trade], t_long[:n_trade], t_price[:n_trade], t_pnl[:n_trade],
            t_comm[:n_trade], r_bar[:n_rej], r_i[:n_rej], tr_open, tr_size, tr_price, tr_pnl,
            tr_comm, tr_long, tr_bar)
