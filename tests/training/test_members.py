"""Members trained side by side (rnnkit.training.members): results in order, and a failure or an
interrupt stops the other members instead of waiting for the whole ensemble."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from rnnkit.config import ModelConfig
from rnnkit.training.members import threads_are_deterministic, train_side_by_side

#: a member that is never halted would run this many epochs: the tests check that none does
EPOCHS = 200_000


def test_results_come_in_member_order_both_ways():
    def one(k, halt):
        for _ in range(50 - 10 * k):  # later members finish first
            halt({})
            time.sleep(0.0001)
        return k * k
    assert train_side_by_side(one, 5) == [0, 1, 4, 9, 16]
    assert train_side_by_side(one, 5, parallel=False) == [0, 1, 4, 9, 16]


def _members(first_fails_with, epochs_run: dict):
    def one(k, halt):
        if k == 0:
            first_fails_with()
        for e in range(EPOCHS):
            epochs_run[k] = e + 1
            halt({"epoch": e + 1})  # fit calls it after every epoch
            time.sleep(0.0005)
        return k
    return one


def test_a_failing_member_stops_the_others():
    epochs_run: dict = {}

    def fail():
        raise ValueError("member 0 diverged")
    with pytest.raises(ValueError, match="member 0 diverged"):
        train_side_by_side(_members(fail, epochs_run), 6)
    assert all(e < EPOCHS for e in epochs_run.values()), epochs_run  # halted, none ran to the end


@pytest.mark.parametrize("to_main", [True, False], ids=["to the main thread", "to a member's thread"])
def test_ctrl_c_stops_the_members(to_main):
    # a real SIGINT: the main thread waits for the members, and the kernel may deliver the signal
    # to any thread; Python runs the handler (KeyboardInterrupt) in the main thread either way
    epochs_run: dict = {}
    main = threading.main_thread().ident

    def interrupt():
        time.sleep(0.05)
        signal.pthread_kill(main if to_main else threading.get_ident(), signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        train_side_by_side(_members(interrupt, epochs_run), 4)
    assert all(e < EPOCHS for e in epochs_run.values()), epochs_run  # halted, none ran to the end


def test_dropout_trains_members_one_at_a_time():
    assert threads_are_deterministic(ModelConfig(num_layers=2))
    assert not threads_are_deterministic(ModelConfig(num_layers=2, dropout=0.1))


@pytest.mark.parametrize("inner_parallel", [True, False], ids=["inner side by side", "inner one at a time"])
def test_ctrl_c_stops_members_trained_inside_members(inner_parallel):
    # work trained side by side that itself trains side by side (conformal calibration refits, each an
    # ensemble): the inner members never see the outer halt directly, yet stop with it
    epochs_run: dict = {}
    main = threading.main_thread().ident

    def outer(k, halt):
        def inner(j, inner_halt):
            if (k, j) == (0, 0):
                time.sleep(0.05)
                signal.pthread_kill(main, signal.SIGINT)
            for e in range(EPOCHS):
                epochs_run[k, j] = e + 1
                inner_halt({"epoch": e + 1})
                time.sleep(0.0005)
            return j
        return train_side_by_side(inner, 3, parallel=inner_parallel)
    with pytest.raises(KeyboardInterrupt):
        train_side_by_side(outer, 2)
    assert epochs_run and all(e < EPOCHS for e in epochs_run.values()), epochs_run


def test_seeded_draws_are_not_interleaved_across_threads():
    # each thread seeds torch's global generator and draws from it while other threads do the same:
    # under seeded() every draw is the one a single thread would make
    import torch
    from rnnkit.training.members import seeded
    with seeded(7):
        expected = torch.rand(2000)

    def one(k, halt):
        out = []
        for _ in range(20):
            with seeded(7):
                out.append(torch.rand(2000))
        return out
    for draws in train_side_by_side(one, 4):
        assert all(torch.equal(d, expected) for d in draws)
