"""eventfd: a 64-bit counter with a wait queue that kernel subscribers (KVM's irqfd, vfio's virqfd) join.

Models fs/eventfd.c (``eventfd_write``, ``eventfd_read``, ``eventfd_poll``, ``eventfd_signal_mask``,
``eventfd_ctx_do_read``, ``eventfd_release``) and the wait queue of kernel/sched/wait.c
(``add_wait_queue_priority_exclusive``, ``__wake_up_common``).

Lifetime: the object is the ``eventfd_ctx`` and userspace's file at once. ``close()`` is the last close of the
file (``eventfd_release``): it wakes the waiters with ``EPOLLHUP`` (KVM's irqfd and vfio's virqfd detach) and
from then on userspace's calls fail with ``EBADF``; the kernel's users (vfio's trigger, KVM's resamplefd) hold
their own reference (``eventfd_ctx_fdget``), so ``signal()`` never fails: the count still goes up and wakes
whoever is left on the queue — usually nobody.
Simplification: a call that would block (a full counter on write, an empty one on read, without EFD_NONBLOCK)
raises ``KernelError(EAGAIN)`` saying it would block, since nothing else runs while the model waits.
"""
from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Any, Callable

from .errors import KernelError
from .event import IrqEvent
from .uapi import EFD_CLOEXEC, EFD_NONBLOCK, EFD_SEMAPHORE

__all__ = ["Eventfd", "WaitQueueEntry", "EPOLLIN", "EPOLLOUT", "EPOLLERR", "EPOLLHUP", "ULLONG_MAX"]

ULLONG_MAX = (1 << 64) - 1
EPOLLIN, EPOLLPRI, EPOLLOUT, EPOLLERR, EPOLLHUP = 0x1, 0x2, 0x4, 0x8, 0x10
EFD_FLAGS_SET = EFD_SEMAPHORE | EFD_CLOEXEC | EFD_NONBLOCK

#: ``func(eventfd, mask, token) -> int``; non-zero means "woken and handled" (stops an exclusive wake-up).
WakeFunc = Callable[["Eventfd", int, Any], int]


@dataclass(eq=False)
class WaitQueueEntry:
    """A ``wait_queue_entry`` with a custom wake function (``init_waitqueue_func_entry``).

    ``echo``: this waiter carries on the *way back* of an interrupt that already has its outcome (the resample
    of a passed-through INTx: the resamplefd's virqfd); any other waiter woken on that way back is told of no
    interrupt (the model's bookkeeping, no kernel field)."""

    func: WakeFunc
    name: str = "waiter"
    priority: bool = False
    exclusive: bool = False
    echo: bool = False

    def __post_init__(self) -> None:
        if not callable(self.func):
            raise TypeError(f"WaitQueueEntry: func must be callable(eventfd, mask, token) -> int, "
                            f"not {type(self.func).__name__}")
        if not isinstance(self.name, str):
            raise TypeError(f"WaitQueueEntry: name must be a str, not {type(self.name).__name__}")


def _u64(value: Any, what: str) -> int:
    if isinstance(value, (bytes, bytearray, memoryview)):
        b = bytes(value)
        if len(b) != 8:
            raise KernelError(errno.EINVAL, f"{what}: the buffer must be exactly 8 bytes, got {len(b)}")
        return int.from_bytes(b, "little")
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{what} takes an int (or 8 bytes), not {type(value).__name__}")
    v = int(value)
    if not 0 <= v <= ULLONG_MAX:
        raise ValueError(f"{what}: {v} does not fit in a u64 (0..2**64-1)")
    return v


class Eventfd:
    """``eventfd(initval, flags)``; the model passes this object where the kernel takes its fd."""

    _next_id = 0

    def __init__(self, initval: int = 0, flags: int = 0, *, name: str | None = None):
        if isinstance(initval, bool) or not hasattr(initval, "__index__"):
            raise TypeError(f"initval must be an int, not {type(initval).__name__}")
        if isinstance(flags, bool) or not hasattr(flags, "__index__"):
            raise TypeError(f"flags must be an int, not {type(flags).__name__}")
        if not 0 <= int(initval) <= 0xFFFFFFFF:
            raise ValueError(f"initval is an unsigned int (0..2**32-1), got {initval}")
        if int(flags) & ~EFD_FLAGS_SET:
            raise KernelError(errno.EINVAL, f"eventfd2: unknown flags 0x{int(flags) & ~EFD_FLAGS_SET:x}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None, not {type(name).__name__}")
        Eventfd._next_id += 1
        self.id = Eventfd._next_id
        self.name = name or f"eventfd{self.id}"
        self.count = int(initval)
        self.flags = int(flags)
        self.waiters: list[WaitQueueEntry] = []
        self.closed = False  # userspace's file is released; the kernel's references keep the context
        self.signals = 0  # kernel-side eventfd_signal calls
        self.signals_after_close = 0  # of which on a released file: counted, read by nobody
        self.writes = 0
        self.reads = 0

    def __repr__(self) -> str:
        return f"<Eventfd {self.name} count={self.count}{' closed' if self.closed else ''}>"

    @property
    def semaphore(self) -> bool:
        return bool(self.flags & EFD_SEMAPHORE)

    @property
    def nonblock(self) -> bool:
        return bool(self.flags & EFD_NONBLOCK)

    def _check_open(self, call: str) -> None:
        if self.closed:
            raise KernelError(errno.EBADF, f"{call} on {self.name}: the file descriptor is closed")

    # the wait queue -----------------------------------------------------------------------------
    @staticmethod
    def _entry(entry: Any) -> WaitQueueEntry:
        if not isinstance(entry, WaitQueueEntry):
            raise TypeError(f"expected an irqlab.eventfd.WaitQueueEntry, not {type(entry).__name__}")
        return entry

    def add_wait_queue(self, entry: WaitQueueEntry) -> None:
        self._entry(entry)
        entry.priority, entry.exclusive = False, False
        self.waiters.append(entry)

    def add_wait_queue_priority_exclusive(self, entry: WaitQueueEntry) -> None:
        """6.18: at most one priority waiter; -EBUSY if there already is one (an irqfd in any VM)."""
        self._entry(entry)
        if any(w.priority for w in self.waiters):
            raise KernelError(errno.EBUSY, f"{self.name} already has a priority waiter (an irqfd)")
        entry.priority, entry.exclusive = True, True
        self.waiters.insert(0, entry)

    def remove_wait_queue(self, entry: WaitQueueEntry) -> None:
        if entry in self.waiters:
            self.waiters.remove(entry)

    def eventfd_ctx_remove_wait_queue(self, entry: WaitQueueEntry) -> int:
        """Unhook ``entry`` and atomically read-and-reset the count (returns what was there)."""
        self.remove_wait_queue(entry)
        return self.eventfd_ctx_do_read()

    def _wake_up(self, mask: int, token: Any = None) -> bool:
        """__wake_up_common with nr_exclusive=1; returns True if some waiter handled it. The way back of an
        interrupt already settled (a token that is not ``real``) goes only to ``echo`` waiters."""
        handled = False
        for w in list(self.waiters):
            tok = token if (token is None or w.echo or getattr(token, "real", True)) else None
            if w.func(self, mask, tok):
                handled = True
                if w.exclusive:
                    break
        return handled

    # kernel side --------------------------------------------------------------------------------
    def eventfd_ctx_do_read(self) -> int:
        """Consume the counter as a read would (all of it, or 1 in semaphore mode); no wake-up."""
        cnt = 1 if (self.semaphore and self.count) else self.count
        self.count -= cnt
        return cnt

    def signal(self, token: Any = None) -> bool:
        """Kernel ``eventfd_signal(ctx)`` (6.8+): +1, saturating at ULLONG_MAX, then wake with EPOLLIN.

        ``token`` is the model's interrupt being carried (or None). Returns True if a waiter took it. Never
        fails, even after userspace's ``close()``: the caller (vfio's handler, KVM's resampler) holds its own
        reference to the context, so the count goes up and the wake-up reaches whoever is left (nobody, once
        the irqfd and virqfd have detached on EPOLLHUP) — this runs in hard-IRQ context and cannot fail.
        """
        if token is not None and not isinstance(token, IrqEvent):
            raise TypeError(f"signal: token is the interrupt being carried (an IrqEvent) or None, "
                            f"not {type(token).__name__}")
        if token is not None:
            token.hop("eventfd_signal", "include/linux/eventfd.h", "eventfd", f"{self.name}")
            who = "no waiter left (the file is closed)" if self.closed and not self.waiters else \
                "wake_up_locked_poll(EPOLLIN)"
            token.hop("eventfd_signal_mask", "fs/eventfd.c", "eventfd", f"{self.name}: count {self.count}→"
                      f"{self.count + 1 if self.count < ULLONG_MAX else self.count}, {who}")
        before = self.count
        if self.count < ULLONG_MAX:
            self.count += 1
        self.signals += 1
        if self.closed:
            self.signals_after_close += 1
        if token is not None:
            token.change(f"{self.name} count", before, self.count)
        return self._wake_up(EPOLLIN, token)

    # user side ----------------------------------------------------------------------------------
    def write(self, value: Any) -> int:
        """write(2) of 8 bytes; returns 8. -EINVAL for ULLONG_MAX; -EAGAIN when it would overflow; -EBADF once
        closed."""
        self._check_open("write")
        v = _u64(value, "eventfd write")
        if v == ULLONG_MAX:
            raise KernelError(errno.EINVAL, "eventfd write: 0xffffffffffffffff is not allowed")
        if not ULLONG_MAX - self.count > v:
            how = "EFD_NONBLOCK" if self.nonblock else "blocking fd: the writer would sleep until a read"
            raise KernelError(errno.EAGAIN, f"eventfd write of {v} would overflow count {self.count} ({how})")
        self.count += v
        self.writes += 1
        self._wake_up(EPOLLIN)
        return 8

    def read(self, size: int = 8) -> int:
        """read(2): the whole count (or 1 with EFD_SEMAPHORE); -EINVAL below 8 bytes; -EAGAIN at 0; -EBADF once
        closed."""
        self._check_open("read")
        if isinstance(size, bool) or not hasattr(size, "__index__"):
            raise TypeError(f"size must be an int, not {type(size).__name__}")
        if size < 8:
            raise KernelError(errno.EINVAL, f"eventfd read: buffer of {size} bytes is smaller than 8")
        if self.count == 0:
            how = "EFD_NONBLOCK" if self.nonblock else "blocking fd: the reader would sleep until a write"
            raise KernelError(errno.EAGAIN, f"eventfd read: count is 0 ({how})")
        cnt = self.eventfd_ctx_do_read()
        self.reads += 1
        self._wake_up(EPOLLOUT)
        return cnt

    def poll(self) -> int:
        """eventfd_poll: EPOLLIN if count > 0, EPOLLERR at ULLONG_MAX, EPOLLOUT below ULLONG_MAX - 1.
        -EBADF once closed (what select(2) and epoll_ctl(2) say of a closed fd)."""
        self._check_open("poll")
        mask = 0
        if self.count > 0:
            mask |= EPOLLIN
        if self.count == ULLONG_MAX:
            mask |= EPOLLERR
        if ULLONG_MAX - 1 > self.count:
            mask |= EPOLLOUT
        return mask

    def close(self) -> None:
        """close(2) of the last file reference: ``eventfd_release`` wakes the waiters with EPOLLHUP (KVM's irqfd
        and vfio's virqfd detach: ``irqfd_deactivate``, ``virqfd_deactivate``), then drops userspace's
        reference. The context lives on while vfio or KVM holds it (``signal()`` keeps working). A second
        close is -EBADF."""
        self._check_open("close")
        self.closed = True
        self._wake_up(EPOLLHUP)
