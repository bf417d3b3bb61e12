"""The kernel's errors: ``KernelError`` is an ``OSError`` carrying the kernel's errno.

Models the ``return -EBUSY`` / ``-EINVAL`` convention of the kernel API (include/uapi/asm-generic/errno*.h);
simplification: a failing call raises instead of returning a negative number.
"""
from __future__ import annotations

import errno as _errno
import os

__all__ = ["KernelError", "kernel_error"]


class KernelError(OSError):
    """A kernel call failed; ``.errno`` is the kernel's errno (``errno.EBUSY``, ``errno.EINVAL``...).

    ``str(err)`` reads like the kernel's own report, e.g. ``[Errno 16] EBUSY: request_irq(16): Flags mismatch``.
    """

    def __init__(self, err: int, message: str):
        name = _errno.errorcode.get(err, str(err))
        super().__init__(err, f"{name}: {message} ({os.strerror(err)})")
        self.errname = name
        self.detail = message


def kernel_error(err: int, message: str) -> KernelError:
    """Build a ``KernelError`` (``raise kernel_error(errno.EINVAL, "...")``)."""
    return KernelError(err, message)
