"""When recal runs its compiled kernels, and how to turn them off.

Compiled kernels pay a one-time compile (tens of seconds from a cold cache for a
ResNet-50's kernels at its four stage shapes, benchmarks/RESULTS.md; again for each
new shape, e.g. the evaluation batch) to make every later step cheaper, so they are OFF by default and switched
on for the runs that profit: ``set_kernels("compiled")``, the
``RECAL_KERNELS=compiled`` environment variable, or the task option
``kernels: auto`` (compiled when a fit is long enough to repay the compile).
``set_kernels("eager")`` (or ``RECAL_KERNELS=eager``) always wins over auto.

Inside a model that the user compiles as a whole (``torch.compile(model)``),
the kernels run their plain eager definition so that dynamo traces straight
through them: no nested compile and no graph break.

The *readable* mode goes further: every layer runs its readable definition (no
hand-written autograd node, no compiled kernel, no in-place write), the form a
tracer or counter should see. It is on inside :func:`readable_mode` (the
complexity counter's ``torch.jit.trace`` uses it), while ``torch.compile`` or
``torch.export`` trace a model, and during ``torch.fx.symbolic_trace``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import warnings
from typing import Callable, Iterator, Literal, TypeVar

import torch

KernelMode = Literal["eager", "compiled"]
F = TypeVar("F", bound=Callable)

_mode: KernelMode = "compiled" if os.environ.get("RECAL_KERNELS") == "compiled" else "eager"
_forced_eager = os.environ.get("RECAL_KERNELS") == "eager"
_readable_depth = 0


@contextlib.contextmanager
def readable_mode() -> Iterator[None]:
    """Run every layer's readable definition inside this block (tracing, counting)."""
    global _readable_depth
    _readable_depth += 1
    try:
        yield
    finally:
        _readable_depth -= 1


# torch.compiler.is_exporting came with torch 2.5; a GPU machine may have an older torch
_is_exporting = getattr(torch.compiler, "is_exporting", lambda: False)


def is_readable() -> bool:
    """Whether layers must run their readable definitions now (see the module docstring)."""
    return (_readable_depth > 0 or torch.compiler.is_compiling() or _is_exporting()
            or torch.fx._symbolic_trace.is_fx_symbolic_tracing())


def compile_available(device_type: str = "cpu") -> bool:
    """Whether inductor can build kernels here (a C++ compiler for CPU, triton for CUDA)."""
    if device_type == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            return False
        return True
    return shutil.which(os.environ.get("CXX", "g++")) is not None or shutil.which("c++") is not None


def set_kernels(mode: KernelMode) -> None:
    """Use compiled kernels (``"compiled"``) or the eager definitions (``"eager"``) from now on."""
    global _mode
    if mode not in ("eager", "compiled"):
        from recal.errors import InvalidOptionError

        raise InvalidOptionError(f"unknown kernel mode {mode!r}; valid choices: ['eager', 'compiled']")
    _mode = "eager" if _forced_eager else mode


def kernels_enabled() -> bool:
    """True when recal's compiled kernels are in use."""
    return _mode == "compiled"


@contextlib.contextmanager
def compiled_kernels(enabled: bool = True) -> Iterator[None]:
    """Temporarily switch compiled kernels on (or off)."""
    previous = _mode
    set_kernels("compiled" if enabled else "eager")
    try:
        yield
    finally:
        set_kernels(previous)


def _signature(args: tuple, kwargs: dict) -> tuple:
    """What a static-shape compile specialises on: tensor shapes, strides and dtypes, other values."""
    def key(value):
        if isinstance(value, torch.Tensor):
            return (tuple(value.shape), value.stride(), value.dtype, value.device, value.requires_grad)
        return value if isinstance(value, (int, float, str, bool, tuple, type(None))) else id(value)
    return tuple(key(a) for a in args) + tuple((k, key(v)) for k, v in sorted(kwargs.items()))


def fast_kernel(fn: F) -> F:
    """Make ``fn`` dispatch to ``torch.compile(fn)`` while compiled kernels are enabled.

    Compiled for static shapes (``dynamic=False``): inductor's dynamic-shape CPU
    kernels for these reductions measured several times slower
    (benchmarks/RESULTS.md). A network shows each kernel a handful of
    shapes (one per stage, and the evaluation batch), so dynamo's default limit of
    8 compiled versions per function is raised for recal's kernels alone, as each
    new shape arrives. The eager definition stays reachable as ``wrapper.eager``
    (tests compare the two). A compile failure is reported once and that kernel
    runs eagerly after.
    """
    compiled: Callable | None = None
    failed = False
    seen: set[tuple] = set()

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        nonlocal compiled, failed
        if _mode != "compiled" or failed or is_readable():
            return fn(*args, **kwargs)
        if compiled is None:
            compiled = torch.compile(fn, fullgraph=True, dynamic=False)
        try:
            signature = _signature(args, kwargs)
            if signature in seen:
                return compiled(*args, **kwargs)
            with torch._dynamo.config.patch(recompile_limit=len(seen) + 8):
                result = compiled(*args, **kwargs)
            seen.add(signature)
            return result
        except Exception as error:  # an inductor/toolchain failure must not kill a week-long run
            failed = True
            warnings.warn(f"recal: compiling {fn.__qualname__} failed ({type(error).__name__}: {error}); "
                          "running it eagerly from now on (RECAL_KERNELS=eager silences this)", stacklevel=2)
            return fn(*args, **kwargs)

    wrapper.eager = fn  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]
