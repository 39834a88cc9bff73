"""Whether watched files changed, as the kernel says: Linux inotify through libc (ctypes), read without blocking.

The kennel answers many commands about one town, and each used to scan the
town's plugin directories afresh (two ``stat`` calls per plugin).  The kernel
queues an inotify event within the very system call that changes a watched
file or directory, so a queue found empty when a command starts proves that
nothing watched changed before it started: no time window, no polling
(:mod:`gtcore.plugins.scan_keeper` keeps a scan on that proof).

Where inotify cannot be had (another system, a libc without it, the instance
or watch limits reached) a :class:`Watch` is not :attr:`~Watch.usable`: it
says every time that things changed, and its user trusts nothing it kept.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import struct
from collections.abc import Iterable

IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE = 0x2, 0x4, 0x8
IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x40, 0x80, 0x100, 0x200
IN_DELETE_SELF, IN_MOVE_SELF = 0x400, 0x800
IN_Q_OVERFLOW = 0x4000
IN_NONBLOCK, IN_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC  # inotify_init1's flags are the open(2) ones
MASK = (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO
        | IN_DELETE_SELF | IN_MOVE_SELF)
EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then len bytes of NUL-padded name
READ_BYTES = 64 * 1024
LIMITS = (errno.ENOSPC, errno.EMFILE, errno.ENFILE, errno.ENOMEM)  # the user's watches or instances are used up

Names = frozenset[str] | None
"""The entries of a watched directory whose changes matter; None: every one but dot-entries (a file: frozenset())."""


class Watch:
    """An inotify instance watching a set of paths, each directory with the names in it that matter."""

    def __init__(self) -> None:
        self._libc = _libc()
        self._fd = -1 if self._libc is None else self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        self._names: dict[int, Names] = {}  # watch descriptor -> names that matter in it

    @property
    def usable(self) -> bool:
        """Whether the kernel watches: when not, :meth:`changed` always says yes."""
        return self._fd >= 0

    def close(self) -> None:
        """Let the kernel drop every watch (the kennel goes)."""
        if self._fd >= 0:
            os.close(self._fd)
        self._fd, self._names = -1, {}

    def changed(self) -> bool:
        """Whether anything that matters changed since the last call; reads the whole queue (it never waits).

        A queue that overflowed (events were lost) and a read that failed (no
        inotify: no descriptor to read) count as changes; so does every event
        on a watched path itself (its deletion, its move, the kernel dropping
        its watch).
        """
        changed = False
        while True:
            try:
                data = os.read(self._fd, READ_BYTES)
            except BlockingIOError:
                return changed
            except OSError:
                return True
            changed = self._matters(data) or changed

    def watch(self, wanted: Iterable[tuple[str, Names]]) -> bool:
        """Watch exactly ``wanted`` from now on (path, names that matter in it); whether every one was watched already
        (the same file: a path now naming another file is a new watch): only then has any change to them since the
        last call been seen.

        A path that does not exist needs no watch (its directory's shows it
        appear), but a dangling or looping symbolic link, or a path the kernel
        refuses, cannot be watched: False.
        """
        if self._fd < 0:
            return False
        names: dict[int, Names] = {}
        kept = True
        for path, wanted_names in wanted:
            wd = self._add(path)
            if wd is None:
                kept = False
            elif wd >= 0:
                kept = kept and wd in self._names
                names[wd] = _union(names[wd], wanted_names) if wd in names else wanted_names
            if self._fd < 0:
                return False
        for wd in self._names.keys() - names.keys():
            self._libc.inotify_rm_watch(self._fd, wd)  # type: ignore[union-attr]  # its IN_IGNORED then names no watch
        self._names = names
        return kept

    def _add(self, path: str) -> int | None:
        """The watch descriptor of ``path`` (following symbolic links), -1 when nothing is there, None when it cannot be
        watched; the limits reached close the watch."""
        wd = self._libc.inotify_add_watch(self._fd, os.fsencode(path), MASK)  # type: ignore[union-attr]
        if wd >= 0:
            return int(wd)
        error = ctypes.get_errno()
        if error in (errno.ENOENT, errno.ENOTDIR) and not os.path.lexists(path):
            return -1
        if error in LIMITS:
            self.close()
        return None

    def _matters(self, data: bytes) -> bool:
        """Whether the events in ``data`` say a change that matters (every event is read: the queue is emptied)."""
        matters, offset = False, 0
        while offset < len(data):
            wd, mask, _, length = EVENT.unpack_from(data, offset)
            name = data[offset + EVENT.size:offset + EVENT.size + length].rstrip(b"\0")
            offset += EVENT.size + length
            matters = self._event_matters(wd, mask, os.fsdecode(name)) or matters
        return matters

    def _event_matters(self, wd: int, mask: int, name: str) -> bool:
        if mask & IN_Q_OVERFLOW:
            return True
        if wd not in self._names:
            return False  # a watch dropped by :meth:`watch` (its last events, the IN_IGNORED of its removal)
        names = self._names[wd]
        return not name or (not name.startswith(".") if names is None else name in names)


def _union(one: Names, other: Names) -> Names:
    return None if one is None or other is None else one | other


def _libc() -> ctypes.CDLL | None:
    """libc with inotify, or None (not Linux, or no such functions)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        for function in (libc.inotify_init1, libc.inotify_add_watch, libc.inotify_rm_watch):
            function.restype = ctypes.c_int
        libc.inotify_add_watch.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
        return libc
    return None
