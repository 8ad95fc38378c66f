"""Schedulers built from a stage folder's `scheduler_config.json`, as the published code built them.

Each stage names its diffusers scheduler class (DPM-Solver++ for the Show-1 stages, DDPM for IF-II
and the image-noising schedulers); any scheduler class diffusers offers for DDPM-trained models
can drive a stage. The published configs were written by diffusers 0.19, and later diffusers
releases gave some keys those configs lack a default that computes something else. A config
without such a key gets the value that reproduces its own release (`LEGACY_DEFAULTS`); a key the
config names is always kept.
"""

from __future__ import annotations

import inspect
from functools import lru_cache
from pathlib import Path

from .errors import ModelLoadError

# key -> value that reproduces diffusers 0.19, for keys added later with a different default.
LEGACY_DEFAULTS = {
    # 0.19 ended on the alpha of timestep 0; "zero" (today's default) lands on sigma = 0
    "DPMSolverMultistepScheduler": {"final_sigmas_type": "sigma_min"},
    "DPMSolverSinglestepScheduler": {"final_sigmas_type": "sigma_min", "lower_order_final": True},
    "UniPCMultistepScheduler": {"final_sigmas_type": "sigma_min"},
}


@lru_cache(maxsize=None)
def compatible_schedulers() -> tuple[str, ...]:
    """Scheduler classes diffusers declares interchangeable with DDPM for epsilon-trained models."""
    from diffusers import DDPMScheduler

    return tuple(sorted({"DDPMScheduler", *DDPMScheduler._compatibles}))


def scheduler_class(name: str, where: Path | str):
    import diffusers

    if name not in compatible_schedulers():
        known = getattr(diffusers, name, None) is not None
        what = "cannot drive a Show-1 stage (it is not one of the schedulers diffusers offers for DDPM-trained " \
               "models)" if known else f"is not a scheduler of the installed diffusers {diffusers.__version__}"
        raise ModelLoadError(f"{where}: scheduler {name} {what}; use one of {', '.join(compatible_schedulers())}, "
                             "e.g. DPMSolverMultistepScheduler as the Show-1 repositories ship")
    cls = getattr(diffusers, name, None)
    if cls is None:
        raise ModelLoadError(f"{where}: scheduler {name} is not in the installed diffusers {diffusers.__version__}; "
                             "upgrade diffusers or name another scheduler")
    return cls


def build_scheduler(config: dict, where: Path | str = "scheduler_config.json"):
    """A fresh scheduler of the class `config` names (schedulers hold per-run state)."""
    name = config.get("_class_name", "DDPMScheduler")
    cls = scheduler_class(name, where)
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    settings = {k: v for k, v in config.items() if k in accepted}
    settings.update({k: v for k, v in LEGACY_DEFAULTS.get(name, {}).items() if k not in config and k in accepted})
    try:
        return cls(**settings)
    except (ValueError, TypeError, NotImplementedError) as e:
        raise ModelLoadError(f"{where}: {name} cannot be built from this config ({e})") from None


def timesteps(scheduler, steps: int) -> list[int | float]:
    """The whole schedule of `steps` denoising steps (more entries for second-order schedulers), as
    the scheduler numbers them (integers, or floats for the sigma-based schedulers)."""
    scheduler.set_timesteps(steps)
    return [t.item() for t in scheduler.timesteps]


def strength_timesteps(scheduler, steps: int, strength: float) -> list[int | float]:
    """The last int(steps * strength) steps of the schedule, as diffusers' img2img pipelines run them."""
    full = timesteps(scheduler, steps)
    start = (steps - min(int(steps * strength), steps)) * scheduler.order
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(start)
    return full[start:]


def learns_variance(scheduler) -> bool:
    """Whether the scheduler takes the pixel UNets' variance channels (else the pipeline drops them)."""
    return getattr(scheduler.config, "variance_type", None) in ("learned", "learned_range")


@lru_cache(maxsize=None)
def _takes_generator(cls) -> bool:
    return "generator" in inspect.signature(cls.step).parameters


def step(scheduler, model_output, t: int | float, sample, generator=None):
    """One scheduler step -> (x_{t-1}, the predicted x_0 where the scheduler reports one, else None)."""
    kwargs = {"generator": generator} if _takes_generator(type(scheduler)) else {}
    out = scheduler.step(model_output, t, sample, **kwargs)
    return out.prev_sample, getattr(out, "pred_original_sample", None)
