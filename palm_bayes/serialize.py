"""Saving and loading a fitted :class:`~palm_bayes.forecast.Forecaster`: one ArviZ-readable NetCDF file.

Groups: ``posterior`` (dims curve, chain, draw), ``observed_data`` (the fitted tidy rows), ``constant_data``
(per-curve b, point fit, divergences, seconds, geometry, target_accept), for pooled fits ``group_posterior``
(the group-level draws, dims group, chain, draw) and, when curve families other than PALM were fitted,
``family_posterior`` (dims member, chain, draw: one member per curve and family, with its sampler diagnostics);
the settings and the families' weights in the file's attributes. Kept apart from the
model, as Prophet keeps ``serialize.py`` apart from its forecaster.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from . import __version__
from .data import CURVE_KEYS
from .diagnostics import diagnostics_table, health_warnings
from .engine import CurvePosterior, SamplerSettings
from .ensemble import FAMILY_PARAMS, FamilyPosterior
from .errors import InputError
from .model import PARAMS
from .outputs import OutputDir
from .pointfit import PARAM_NAMES, PointFit
from .pooling import GROUP_PARAMS, GroupPosterior

if TYPE_CHECKING:
    from .forecast import Forecaster

POSTERIOR_FILE = "posterior.nc"


def save_forecaster(fc: Forecaster, out: OutputDir | str | Path, name: str = POSTERIOR_FILE) -> Path:
    """Write the posterior, the fitted data and the settings to one ArviZ-readable NetCDF file.

    Groups: ``posterior`` (dims curve, chain, draw), ``observed_data`` (the fitted tidy rows),
    ``constant_data`` (per-curve b, point fit, divergences, seconds) and, for pooled fits, ``group_posterior``
    (the group-level draws, dims group, chain, draw, with per-group divergences, seconds and target_accept);
    settings in the file's attributes.
    """
    import xarray as xr

    out = out if isinstance(out, OutputDir) else OutputDir(out)
    keys = [k for k in fc.keys() if k in fc.posteriors]
    curve = ["/".join(k) for k in keys]
    first = next(iter(fc.posteriors.values())) if fc.posteriors else None
    names = list(first.draws) if first else list(PARAMS)
    post = xr.Dataset(
        {n: (("curve", "chain", "draw"), np.stack([fc.posteriors[k].draws[n] for k in keys]))
         for n in names} if keys else {},
        coords={"curve": curve, "dataset": ("curve", [k[0] for k in keys]),
                "model": ("curve", [k[1] for k in keys]), "method": ("curve", [k[2] for k in keys])},
    )
    hist = fc.history.reset_index(drop=True)
    observed = xr.Dataset({c: ("obs", hist[c].astype(str).to_numpy() if c in (*CURVE_KEYS, "run")
                                   else hist[c].to_numpy(dtype=float)) for c in hist.columns})
    all_keys = fc.keys()
    const = xr.Dataset(
        {"b": ("all_curve", [fc.point_fits[k].b if k in fc.point_fits else np.nan for k in all_keys]),
         **{f"point_{p}": ("all_curve", [getattr(fc.point_fits[k], p) if k in fc.point_fits else np.nan
                                        for k in all_keys]) for p in PARAM_NAMES},
         "point_success": ("all_curve", [bool(k in fc.point_fits and fc.point_fits[k].success)
                                         for k in all_keys]),
         "divergences": ("all_curve", [fc.posteriors[k].divergences if k in fc.posteriors else -1
                                       for k in all_keys]),
         "x_first": ("all_curve", [fc.posteriors[k].x_first if k in fc.posteriors else np.nan
                                   for k in all_keys]),
         "seconds": ("all_curve", [fc.posteriors[k].seconds if k in fc.posteriors else np.nan
                                   for k in all_keys]),
         "failure": ("all_curve", [fc.failures.get(k, "") for k in all_keys]),
         "geometry": ("all_curve", [fc.posteriors[k].geometry if k in fc.posteriors else ""
                                    for k in all_keys]),
         "target_accept": ("all_curve", [fc.posteriors[k].target_accept if k in fc.posteriors else np.nan
                                         for k in all_keys]),
         **sampled_diagnostics(fc, all_keys)},
        coords={"all_curve": ["/".join(k) for k in all_keys], "diag_param": list(names)},
    )
    meta = {"palm_bayes_version": __version__, "scale": fc.scale, "settings": asdict(fc.settings),
            "a_max_below": fc.a_max_below, "a_max_range": fc.a_max_range, "discrepancy": fc.discrepancy,
            "drift": fc.drift, "pooling": fc.pooling, "joint_groups": len(fc.groups),
            "keys": [list(k) for k in all_keys],
            "families": list(fc.families), "family_members": sum(len(m) for m in fc.members.values()),
            "weights": {"/".join(k): fc.weights(k) for k in keys if k in fc.members}}
    post.attrs["palm_bayes"] = json.dumps(meta)

    def write(path: Path) -> None:
        post.to_netcdf(path, group="posterior", engine="h5netcdf", mode="w")
        observed.to_netcdf(path, group="observed_data", engine="h5netcdf", mode="a")
        const.to_netcdf(path, group="constant_data", engine="h5netcdf", mode="a")
        if fc.groups:
            groups_dataset(fc.groups).to_netcdf(path, group="group_posterior", engine="h5netcdf", mode="a")
        if fc.members:
            members_dataset(fc.members).to_netcdf(path, group="family_posterior", engine="h5netcdf", mode="a")

    return out.write_with(name, write)


def load_forecaster(path: str | Path, cls: type[Forecaster] | None = None) -> Forecaster:
    """Read a forecaster written by :func:`save_forecaster` (a ``posterior.nc`` file or the folder holding it) as
    an instance of ``cls`` (:class:`~palm_bayes.forecast.Forecaster` by default)."""
    import xarray as xr

    if cls is None:
        from .forecast import Forecaster as cls

    p = Path(path)
    p = p / POSTERIOR_FILE if p.is_dir() else p
    if not p.exists():
        raise InputError(f"{p}: no saved posterior (expected {POSTERIOR_FILE} written by palm-bayes forecast)")
    try:
        post = xr.open_dataset(p, group="posterior", engine="h5netcdf").load()
        observed = xr.open_dataset(p, group="observed_data", engine="h5netcdf").load()
        const = xr.open_dataset(p, group="constant_data", engine="h5netcdf").load()
        meta = json.loads(post.attrs["palm_bayes"])
        groups = (xr.open_dataset(p, group="group_posterior", engine="h5netcdf").load()
                  if meta.get("joint_groups") else None)
        members = (xr.open_dataset(p, group="family_posterior", engine="h5netcdf").load()
                   if meta.get("family_members") else None)
    except (OSError, KeyError, ValueError) as e:
        raise InputError(f"{p}: not a palm-bayes posterior file ({type(e).__name__})") from None
    s = meta["settings"]
    accepted = inspect.signature(cls).parameters  # settings of older or newer versions are skipped
    fc = cls(**{k: v for k, v in s.items() if k in accepted and k in SamplerSettings.__dataclass_fields__},
             a_max_below=meta.get("a_max_below"), a_max_range=meta.get("a_max_range"),
             discrepancy=meta.get("discrepancy", 0.0), drift=meta.get("drift", 0.0),
             pooling=meta.get("pooling", "none"),
             families=tuple(meta.get("families", ["palm"])))
    fc.scale = meta["scale"]
    hist = observed.to_dataframe().reset_index(drop=True)
    fc.history = hist[[*CURVE_KEYS, "run", "budget", "score"]]
    for i, key in enumerate(tuple(k) for k in meta["keys"]):
        b = float(const["b"].values[i])
        vals = [float(const[f"point_{q}"].values[i]) for q in PARAM_NAMES]
        if np.all(np.isfinite(vals)):
            fc.point_fits[key] = PointFit(*vals, b=b, axis="budget", mode="robust", sse=np.nan, rmse=np.nan,
                                          n_points=0, success=bool(const["point_success"].values[i]))
        if str(const["failure"].values[i]):
            fc.failures[key] = str(const["failure"].values[i])
    position = {tuple(k): i for i, k in enumerate(meta["keys"])}
    for j in range(post.sizes.get("curve", 0)):
        key = (str(post["dataset"].values[j]), str(post["model"].values[j]), str(post["method"].values[j]))
        i = position[key]
        draws = {n: np.asarray(post[n].values[j]) for n in post.data_vars}
        diag = diagnostics_table(draws) if "diag_r_hat" not in const else pd.DataFrame(
            {"param": [str(v) for v in const["diag_param"].values],
             **{c: const[f"diag_{c}"].values[i] for c in DIAG_COLUMNS}})
        ndiv = int(const["divergences"].values[i])
        fc.posteriors[key] = CurvePosterior(draws=draws, b=float(const["b"].values[i]), scale=fc.scale,
                                            diagnostics=diag, divergences=ndiv,
                                            seconds=float(const["seconds"].values[i]),
                                            likelihood=s["likelihood"], warnings=health_warnings(diag, ndiv),
                                            x_first=float(const["x_first"].values[i]),
                                            geometry=str(const["geometry"].values[i]) if "geometry" in const
                                            else "shape",
                                            target_accept=float(const["target_accept"].values[i])
                                            if "target_accept" in const else s["target_accept"])
    if groups is not None:
        fc.groups = groups_from_dataset(groups, fc)
    if members is not None:
        fc.members = members_from_dataset(members)
    for k, w in meta.get("weights", {}).items():  # the weights a reload mixes by are the ones it was saved with
        key = tuple(k.split("/"))
        if key in fc.members and fc.weights(key) != w:
            raise InputError(f"{p}: the saved weights of {k} differ from this version's ({w} vs "
                             f"{fc.weights(key)}); refit with this version")
    return fc


DIAG_COLUMNS = ("r_hat", "ess_bulk", "ess_tail")


def sampled_diagnostics(fc: Forecaster, keys: list) -> dict:
    """Each curve's own diagnostics as they were when it was sampled (dims all_curve, diag_param): the reload
    shows them rather than recomputing them from the draws, which for a two-stage pooled fit are resampled
    (:mod:`palm_bayes.two_stage`: their ESS is scaled by the resampling's effective share)."""
    names = list(next(iter(fc.posteriors.values())).draws) if fc.posteriors else list(PARAMS)
    out = {}
    for c in DIAG_COLUMNS:
        table = np.full((len(keys), len(names)), np.nan)
        for i, k in enumerate(keys):
            if k in fc.posteriors:
                d = fc.posteriors[k].diagnostics.set_index("param")[c]
                table[i] = [d.get(n, np.nan) for n in names]
        out[f"diag_{c}"] = (("all_curve", "diag_param"), table)
    return out


def groups_dataset(groups: dict[tuple[str, str], GroupPosterior]):
    """The group-level draws of pooled fits as one xarray Dataset (dims group, chain, draw)."""
    import xarray as xr

    keys = list(groups)
    names = list(next(iter(groups.values())).draws)
    return xr.Dataset(
        {**{n: (("group", "chain", "draw"), np.stack([groups[k].draws[n] for k in keys])) for n in names},
         "divergences": ("group", [groups[k].divergences for k in keys]),
         "seconds": ("group", [groups[k].seconds for k in keys]),
         "target_accept": ("group", [groups[k].target_accept for k in keys])},
        coords={"group": ["/".join(k) for k in keys], "dataset": ("group", [k[0] for k in keys]),
                "model": ("group", [k[1] for k in keys])})


def groups_from_dataset(ds, fc: Forecaster) -> dict[tuple[str, str], GroupPosterior]:
    """Inverse of :func:`groups_dataset`, re-linking each group to its curves' posteriors."""
    out = {}
    names = [n for n in GROUP_PARAMS[fc.pooling] if n in ds.data_vars]
    for j in range(ds.sizes["group"]):
        g = (str(ds["dataset"].values[j]), str(ds["model"].values[j]))
        draws = {n: np.asarray(ds[n].values[j]) for n in names}
        diag = diagnostics_table(draws)
        curves = [p for k, p in fc.posteriors.items() if k[:2] == g]
        own = pd.concat([*(p.diagnostics for p in curves), diag], ignore_index=True)
        for post in curves:  # a curve of a pooled group is as healthy as its group (as when it was fitted)
            post.diagnostics = pd.concat([post.diagnostics, diag], ignore_index=True)
            post.warnings = health_warnings(post.diagnostics, post.divergences)
        ndiv = int(ds["divergences"].values[j])
        out[g] = GroupPosterior(curves=curves, draws=draws, diagnostics=diag, divergences=ndiv,
                                seconds=float(ds["seconds"].values[j]), pooling=fc.pooling,
                                target_accept=float(ds["target_accept"].values[j]),
                                warnings=health_warnings(own, ndiv))
    return out


def members_dataset(members: dict[tuple, dict[str, FamilyPosterior]]):
    """The other curve families' posteriors as one xarray Dataset (dims member, chain, draw; one member per
    curve and family), with each member's b, first budget, sampler diagnostics and time."""
    import xarray as xr

    items = [(k, f, post) for k, fams in members.items() for f, post in fams.items()]
    names = list(FAMILY_PARAMS)
    diag = {c: [[post.diagnostics.set_index("param")[c].get(n, np.nan) for n in names] for _, _, post in items]
            for c in DIAG_COLUMNS}
    return xr.Dataset(
        {**{n: (("member", "chain", "draw"), np.stack([post.draws[n] for _, _, post in items])) for n in names},
         **{f"diag_{c}": (("member", "family_param"), np.asarray(v, dtype=float)) for c, v in diag.items()},
         **{a: ("member", [getattr(post, a) for _, _, post in items])
            for a in ("b", "x_first", "divergences", "seconds", "target_accept")}},
        coords={"member": [f"{'/'.join(k)}|{f}" for k, f, _ in items], "family_param": names,
                "dataset": ("member", [k[0] for k, _, _ in items]), "model": ("member", [k[1] for k, _, _ in items]),
                "method": ("member", [k[2] for k, _, _ in items]), "family": ("member", [f for _, f, _ in items])})


def members_from_dataset(ds) -> dict[tuple, dict[str, FamilyPosterior]]:
    """Inverse of :func:`members_dataset`."""
    out: dict[tuple, dict[str, FamilyPosterior]] = {}
    names = [str(n) for n in ds["family_param"].values]
    for j in range(ds.sizes["member"]):
        key = tuple(str(ds[c].values[j]) for c in CURVE_KEYS)
        family = str(ds["family"].values[j])
        diag = pd.DataFrame({"param": names, **{c: ds[f"diag_{c}"].values[j] for c in DIAG_COLUMNS}})
        ndiv = int(ds["divergences"].values[j])
        out.setdefault(key, {})[family] = FamilyPosterior(
            family, {n: np.asarray(ds[n].values[j]) for n in names}, float(ds["b"].values[j]),
            float(ds["x_first"].values[j]), diag, ndiv, float(ds["seconds"].values[j]),
            float(ds["target_accept"].values[j]), health_warnings(diag, ndiv))
    return out


def saved_posterior(path: str | Path) -> Path | None:
    """The posterior file a path names, if it is one written by :func:`save_forecaster` (a ``.nc`` file, or a
    folder holding ``posterior.nc``); ``None`` for any other input."""
    p = Path(path)
    if p.is_dir() and (p / POSTERIOR_FILE).is_file():
        return p / POSTERIOR_FILE
    return p if p.suffix == ".nc" else None
