"""Interrupt storms: millions of interrupts through the model, vectorized with numpy.

``irqlab.storm.run(host, storm, engine="vector")`` computes with array operations what the object model
does one interrupt at a time; ``engine="reference"`` replays the storm through the model itself. Both
return a StormResult, and they must agree exactly (docs/model-time.md is the contract).
"""
from .engine import Unsupported, run
from .generate import LazyStorm, Source, Storm, bursts, from_arrays, mix, on_off, poisson, sources
from .result import StormResult
from .windows import greedy_window_starts

__all__ = ["run", "Unsupported", "Source", "Storm", "LazyStorm", "StormResult", "sources", "poisson", "bursts", "on_off",
           "mix", "from_arrays", "greedy_window_starts"]
