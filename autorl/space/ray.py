"""Search spaces as Ray Tune domains, both ways. ``ray.tune`` is imported only when used."""

from __future__ import annotations

from typing import Any

from autorl.space.base import Param, ParamType, SearchSpace, Transform


def to_ray(space: SearchSpace) -> dict[str, Any]:
    """Ray Tune domains keyed by searched name; fixed values stay constants; conditions are dropped."""
    from ray import tune

    out: dict[str, Any] = {}
    for p in space.values():
        if p.type is ParamType.FIXED:
            out[p.name] = p.value
        elif p.type is ParamType.CATEGORICAL:
            out[p.name] = tune.choice(list(p.choices))
        else:
            low, high = p.search_bounds()
            if p.type is ParamType.FLOAT:
                if p.log:
                    out[p.search_name] = tune.loguniform(low, high)
                elif p.step:
                    out[p.search_name] = tune.quniform(low, high, p.step)
                else:
                    out[p.search_name] = tune.uniform(low, high)
            elif p.transform is Transform.POW2:
                out[p.search_name] = tune.randint(round(low), round(high) + 1)  # upper bound exclusive
            elif p.log:
                out[p.search_name] = tune.lograndint(int(low), int(high) + 1)
            elif p.step:
                out[p.search_name] = tune.qrandint(int(low), int(high), int(p.step))  # inclusive
            else:
                out[p.search_name] = tune.randint(int(low), int(high) + 1)
    return out


def config_of(space: SearchSpace, sampled: dict[str, Any]) -> dict[str, Any]:
    """A configuration on the user's scale from values Tune sampled from :func:`to_ray`'s domains
    (searched names: ``one_minus_gamma`` becomes ``gamma``); parameters whose condition fails are left out."""
    out: dict[str, Any] = {}
    for p in space.values():
        if p.type is ParamType.FIXED:
            out[p.name] = sampled.get(p.name, p.value)
        elif p.search_name in sampled:
            value = sampled[p.search_name]
            out[p.name] = p.transform.from_search(value) if p.transform is not None else value
    return {name: value for name, value in out.items() if space[name].active(out)}


def from_ray(domains: dict[str, Any]) -> SearchSpace:
    """Inverse of :func:`to_ray` for the domain kinds it produces."""
    from ray.tune.search.sample import Categorical, Float, Integer, LogUniform, Quantized

    params: list[Param] = []
    for name, d in domains.items():
        sampler = getattr(d, "sampler", None)
        log = isinstance(sampler, LogUniform) or type(sampler).__name__ == "LogUniform"
        q = sampler.q if isinstance(sampler, Quantized) else None
        if isinstance(d, Categorical):
            params.append(Param(name, ParamType.CATEGORICAL, choices=tuple(d.categories)))
        elif isinstance(d, Float):
            if name.startswith("one_minus_"):
                params.append(
                    Param(
                        name[len("one_minus_") :],
                        ParamType.FLOAT,
                        low=1 - d.upper,
                        high=1 - d.lower,
                        log=log,
                        transform=Transform.ONE_MINUS,
                    )
                )
            else:
                params.append(Param(name, ParamType.FLOAT, low=d.lower, high=d.upper, log=log, step=q))
        elif isinstance(d, Integer):
            upper = d.upper if q else d.upper - 1  # qrandint includes its upper bound, the others exclude it
            if name.startswith("log2_"):
                params.append(
                    Param(
                        name[len("log2_") :],
                        ParamType.INT,
                        low=2**d.lower,
                        high=2**upper,
                        transform=Transform.POW2,
                    )
                )
            else:
                params.append(Param(name, ParamType.INT, low=d.lower, high=upper, log=log, step=q))
        else:
            params.append(Param(name, ParamType.FIXED, value=d))
    return SearchSpace(params)
