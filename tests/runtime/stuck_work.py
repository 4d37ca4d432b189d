"""Work that hangs or dies, for the worker-guarantee tests (test_worker_guarantees, test_pool).

Workers import this module to unpickle it, within their deadline: numpy and the standard library only,
so that loading it is quick even on a loaded machine (pytest alone takes a good part of a second).
"""

from __future__ import annotations

import os
import re
import signal
import time

import numpy as np


def catastrophic_regex():
    # Exponential backtracking inside the C regex engine, which holds the GIL the whole time: no Python
    # signal handler or thread can run in this worker until it returns.
    re.match(r"(a+)+$", "a" * 64 + "b")


class Hangs:
    """A dataset whose batch `at` never finishes, in one of four ways."""

    def __init__(self, how, at=2, n=6):
        self.how, self.at, self.n = how, at, n

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        if index == self.at:
            if self.how == "sleep":
                time.sleep(3600)  # the stuck batch sleeps
            elif self.how == "busy":
                spins = 0
                while spins >= 0:  # the stuck batch spins (the stack shows one of these two lines)
                    spins += 1
            elif self.how == "regex-holding-the-gil":
                catastrophic_regex()
            elif self.how == "stopped":
                os.kill(os.getpid(), signal.SIGSTOP)
        return np.full((2, 3), index, np.float32)


class HangsWhileLoading:
    def __init__(self):
        self.state = "has some, so that unpickling calls __setstate__"

    def __len__(self):
        return 3

    def __getitem__(self, index):
        return np.zeros(2)

    def __setstate__(self, state):
        time.sleep(3600)  # loading the dataset in the worker hangs


class Small:
    def __len__(self):
        return 4

    def __getitem__(self, index):
        return np.full((8, 8), index, np.float32)


def square(x):
    return x * x


def slow_square(x):
    time.sleep(0.01 * (x % 3))  # finishes out of order
    return x * x


def fails_on_5(x):
    if x == 5:
        raise KeyError(f"no row {x}")
    return x


def hangs_on_3(x):
    if x == 3:
        time.sleep(3600)  # item 3 never finishes
    return x


def dies_on_2(x):
    if x == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return x
