"""Interrupt storms: millions of interrupts through the model, vectorized with numpy.

``irqlab.storm.run(host, storm, engine="vector")`` computes with array operations what the object model does
one interrupt at a time; ``engine="reference"`` replays the storm through the model itself. Both return a
StormResult and leave the host in the same state; they must agree exactly (docs/model-time.md).
"""
from .compile import Unsupported, compile_host
from .engine import DEFAULT_CHUNK, run
from .generate import LazyStorm, Source, Storm, bursts, from_arrays, mix, on_off, poisson, sources
from .result import StormResult
from .windows import chain_starts, greedy_window_starts

__all__ = ["run", "Unsupported", "compile_host", "DEFAULT_CHUNK", "Source", "Storm", "LazyStorm", "StormResult",
           "sources", "poisson", "bursts", "on_off", "mix", "from_arrays", "chain_starts", "greedy_window_starts"]
