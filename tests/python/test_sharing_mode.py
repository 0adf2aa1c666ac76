"""Sharing mode: in_share_context() and sharing_mode() nest, restore the
state on exceptions, and are per thread."""

import contextlib
import threading

import pytest

import support  # noqa: F401  (puts the package on sys.path)
from modelfs.sharing import in_share_context, sharing_mode


def test_default_is_not_sharing():
    assert in_share_context() is False


def test_nesting():
    assert not in_share_context()
    with sharing_mode():
        assert in_share_context() is True
        with sharing_mode():
            assert in_share_context()
            with sharing_mode():
                assert in_share_context()
            assert in_share_context()
        assert in_share_context()
    assert in_share_context() is False


def test_exception_restores_state():
    with pytest.raises(KeyError):
        with sharing_mode():
            with sharing_mode():
                raise KeyError("x")
    assert not in_share_context()
    with sharing_mode():
        with pytest.raises(KeyError):
            with sharing_mode():
                raise KeyError("y")
        assert in_share_context()
    assert not in_share_context()


def _in_thread(fn):
    out = []
    errors = []

    def run():
        try:
            out.append(fn())
        except BaseException as e:  # report in the main thread
            errors.append(e)
    t = threading.Thread(target=run)
    t.start()
    t.join(30)
    assert not t.is_alive()
    if errors:
        raise errors[0]
    return out[0]


def test_thread_does_not_inherit_sharing_mode():
    with sharing_mode():
        assert in_share_context()
        assert _in_thread(in_share_context) is False
        assert in_share_context()


def test_thread_sharing_mode_does_not_leak():
    inside = threading.Event()
    leave = threading.Event()
    seen = []

    def worker():
        with sharing_mode():
            seen.append(in_share_context())
            inside.set()
            leave.wait(30)
        seen.append(in_share_context())

    t = threading.Thread(target=worker)
    t.start()
    try:
        assert inside.wait(30)
        # the other thread is in share context; this one is not
        assert not in_share_context()
        with sharing_mode():
            assert in_share_context()
        assert not in_share_context()
    finally:
        leave.set()
        t.join(30)
    assert seen == [True, False]
    assert not in_share_context()


def test_many_threads_independent():
    barrier = threading.Barrier(8)
    results = []
    errors = []

    def run(depth):
        try:
            with contextlib.ExitStack() as stack:
                for _ in range(depth):
                    stack.enter_context(sharing_mode())
                barrier.wait(30)
                ok = in_share_context() == (depth > 0)
                barrier.wait(30)
            results.append(ok and not in_share_context())
        except BaseException as e:  # report in the main thread
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i % 3,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert results == [True] * 8
    assert not in_share_context()
