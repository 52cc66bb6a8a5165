"""A signal to one chosen thread of another process, as the kernel may deliver a
process-wide one (os.kill leaves the choice of thread to the kernel)."""

from __future__ import annotations

import ctypes
import os
import re
from pathlib import Path

# tgkill(2)'s system call number, per machine.
TGKILL = {"x86_64": 234, "aarch64": 131}


def takes(pid: int, tid: int, sig: int) -> bool:
    """Whether thread ``tid`` of process ``pid`` does not block ``sig``."""
    status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
    blocked = re.search(r"^SigBlk:\s*([0-9a-f]+)$", status, re.M)
    assert blocked is not None
    return not int(blocked.group(1), 16) & (1 << (sig - 1))


def signal_another_thread(pid: int, sig: int) -> int:
    """Send ``sig`` to a thread of ``pid`` other than its main one, among those that do
    not block it; the thread's id."""
    threads = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid)
    takers = [t for t in threads if takes(pid, t, sig)]
    assert takers, f"every thread of {pid} but the main one blocks signal {sig}"
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(TGKILL[os.uname().machine], pid, takers[0], sig) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return takers[0]
