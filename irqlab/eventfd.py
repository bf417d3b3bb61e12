"""eventfd: a 64-bit counter with a wait queue that kernel subscribers (KVM's irqfd, vfio's virqfd) join.

Models fs/eventfd.c (``eventfd_write``, ``eventfd_read``, ``eventfd_poll``, ``eventfd_signal_mask``,
``eventfd_ctx_do_read``) and the wait queue of kernel/sched/wait.c (``add_wait_queue_priority_exclusive``,
``__wake_up_common``). Simplification: a call that would block (a full counter on write, an empty one on
read, without EFD_NONBLOCK) raises ``KernelError(EAGAIN)`` saying it would block, since nothing else runs
while the model waits.
"""
from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Any, Callable

from .errors import KernelError
from .uapi import EFD_CLOEXEC, EFD_NONBLOCK, EFD_SEMAPHORE

__all__ = ["Eventfd", "WaitQueueEntry", "EPOLLIN", "EPOLLOUT", "EPOLLERR", "EPOLLHUP", "ULLONG_MAX"]

ULLONG_MAX = (1 << 64) - 1
EPOLLIN, EPOLLPRI, EPOLLOUT, EPOLLERR, EPOLLHUP = 0x1, 0x2, 0x4, 0x8, 0x10
EFD_FLAGS_SET = EFD_SEMAPHORE | EFD_CLOEXEC | EFD_NONBLOCK

#: ``func(eventfd, mask, token) -> int``; non-zero means "woken and handled" (stops an exclusive wake-up).
WakeFunc = Callable[["Eventfd", int, Any], int]


@dataclass(eq=False)
class WaitQueueEntry:
    """A ``wait_queue_entry`` with a custom wake function (``init_waitqueue_func_entry``)."""

    func: WakeFunc
    name: str = "waiter"
    priority: bool = False
    exclusive: bool = False


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
        Eventfd._next_id += 1
        self.id = Eventfd._next_id
        self.name = name or f"eventfd{self.id}"
        self.count = int(initval)
        self.flags = int(flags)
        self.waiters: list[WaitQueueEntry] = []
        self.closed = False
        self.signals = 0  # kernel-side eventfd_signal calls
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

    def _check_open(self) -> None:
        if self.closed:
            raise KernelError(errno.EBADF, f"{self.name} is closed")

    # the wait queue -----------------------------------------------------------------------------
    def add_wait_queue(self, entry: WaitQueueEntry) -> None:
        entry.priority, entry.exclusive = False, False
        self.waiters.append(entry)

    def add_wait_queue_priority_exclusive(self, entry: WaitQueueEntry) -> None:
        """6.18: at most one priority waiter; -EBUSY if there already is one (an irqfd in any VM)."""
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
        """__wake_up_common with nr_exclusive=1; returns True if some waiter handled it."""
        handled = False
        for w in list(self.waiters):
            if w.func(self, mask, token):
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

        ``token`` is the model's interrupt being carried (or None). Returns True if a waiter took it.
        """
        self._check_open()
        if token is not None:
            token.hop("eventfd_signal", "include/linux/eventfd.h", "eventfd", f"{self.name}")
            token.hop("eventfd_signal_mask", "fs/eventfd.c", "eventfd", f"{self.name}: count {self.count}→"
                      f"{self.count + 1 if self.count < ULLONG_MAX else self.count}, wake_up_locked_poll(EPOLLIN)")
        before = self.count
        if self.count < ULLONG_MAX:
            self.count += 1
        self.signals += 1
        if token is not None:
            token.change(f"{self.name} count", before, self.count)
        return self._wake_up(EPOLLIN, token)

    # user side ----------------------------------------------------------------------------------
    def write(self, value: Any) -> int:
        """write(2) of 8 bytes; returns 8. -EINVAL for ULLONG_MAX; -EAGAIN when it would overflow."""
        self._check_open()
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
        """read(2): the whole count (or 1 with EFD_SEMAPHORE); -EINVAL below 8 bytes; -EAGAIN at 0."""
        self._check_open()
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
        """eventfd_poll: EPOLLIN if count > 0, EPOLLERR at ULLONG_MAX, EPOLLOUT below ULLONG_MAX - 1."""
        mask = 0
        if self.count > 0:
            mask |= EPOLLIN
        if self.count == ULLONG_MAX:
            mask |= EPOLLERR
        if ULLONG_MAX - 1 > self.count:
            mask |= EPOLLOUT
        return mask

    def close(self) -> None:
        """The last close sends EPOLLHUP to the waiters (irqfd shuts down)."""
        if not self.closed:
            self._wake_up(EPOLLHUP)
            self.closed = True
