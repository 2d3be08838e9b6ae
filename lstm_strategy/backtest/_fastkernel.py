"""The fast evaluator's loop, compiled with Numba when it is installed (plain Python if not).

A line-for-line port of the broker and rules loop in fastsim.py's reference (kept as
`simulate(..., compiled=False)`), on flat arrays. Signals and volatility estimates come in
precomputed (they are NumPy reductions whose rounding must match the strategy's), so the
loop itself only adds, multiplies and compares.
"""

from __future__ import annotations

import math

import numpy as np

try:
    from numba import njit
except ImportError:  # pragma: no cover - the reference path still works
    def njit(*args, **kwargs):
        return (lambda fn: fn) if not args or not callable(args[0]) else args[0]


@njit(cache=True)
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


@njit(cache=True)
def _probe(size, price_now, add, price):
    """Position.update on a copy: (opened, closed) without changing anything."""
    s = np.array([size])
    p = np.array([price_now])
    return _update(s, p, 0, add, price)


@njit(cache=True)
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


@njit(cache=True)
def _broker_value(cash, pos_size, pos_price, closes_row):
    unlevered = 0.0
    for i in range(pos_size.shape[0]):
        value = pos_size[i] * closes_row[i]
        if value > 0:
            unrealised = pos_size[i] * (closes_row[i] - pos_price[i]) * 1.0
            unlevered += (value - unrealised) / 1.0
            unlevered += unrealised
        else:
            unlevered += value
    return cash + unlevered


@njit(cache=True)
def _size_orders(want_i, want_t, n_want, pos_size, prices, value, cash, comm, slip,
                 fractional, new_i, new_size):
    """order_targets: target fractions of `value` as order sizes at `prices`, reductions
    first, purchases capped at the cash left; returns how many orders went to new_*."""
    n_new = 0
    changes = np.zeros(n_want)
    for k in range(n_want):
        changes[k] = want_t[k] * value - pos_size[want_i[k]] * prices[want_i[k]]
    order = np.argsort(changes, kind="mergesort")
    left = cash
    for k in order:
        i = want_i[k]
        price = prices[i]
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


@njit(cache=True)
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
    cap = 2 * bars * n + 8
    new_i = np.zeros(n, np.int64)
    new_size = np.zeros(n)
    n_new = 0
    w_i = np.zeros(4 * n + 4, np.int64)
    w_rem = np.zeros(4 * n + 4)
    w_created = np.zeros(4 * n + 4, np.int64)
    w_ex = np.zeros(4 * n + 4)
    w_px = np.zeros(4 * n + 4)
    w_comm = np.zeros(4 * n + 4)
    n_work = 0
    f_bar = np.zeros(cap, np.int64)
    f_i = np.zeros(cap, np.int64)
    f_size = np.zeros(cap)
    f_price = np.zeros(cap)
    f_comm = np.zeros(cap)
    n_fill = 0
    t_i = np.zeros(cap, np.int64)
    t_open = np.zeros(cap, np.int64)
    t_close = np.zeros(cap, np.int64)
    t_long = np.zeros(cap, np.bool_)
    t_price = np.zeros(cap)
    t_pnl = np.zeros(cap)
    t_comm = np.zeros(cap)
    n_trade = 0
    r_bar = np.zeros(cap, np.int64)
    r_i = np.zeros(cap, np.int64)
    n_rej = 0
    ev_kind = np.zeros(8 * n + 8, np.int64)  # 1 filled, 2 margin
    ev_i = np.zeros(8 * n + 8, np.int64)
    ev_px = np.zeros(8 * n + 8)
    values = np.zeros(bars)
    cash_line = np.zeros(bars)
    gross = np.zeros(bars)
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
            n_new = _size_orders(want_i, want_t, deferred_n, pos_size, opens[bar],
                                 deferred_value, cash, comm, slip, fractional, new_i, new_size)
            created_bar = bar
            deferred = False
        if n_new:
            check = cash
            for k in range(n_new):
                i = new_i[k]
                size = new_size[k]
                price = checks[created_bar, i]
                opened, closed = _probe(pos_size[i], pos_price[i], size, price)
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
            opened, closed = _probe(pos_size[i], pos_price[i], size, price)
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
        value = _broker_value(cash, pos_size, pos_price, closes[bar])
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
                n_new = _size_orders(want_i, want_t, n_want, pos_size, closes[bar], value,
                                     cash, comm, slip, fractional, new_i, new_size)
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
