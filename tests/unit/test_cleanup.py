"""bilge.cleanup: temporary paths are recorded before a signal can interrupt, and removed however a
run ends (issue 16: 15, 16)."""

from __future__ import annotations

import os
import signal

import pytest

from bilge import cleanup


@pytest.fixture(autouse=True)
def fresh_state(monkeypatch):
    monkeypatch.setattr(cleanup, "_LIVE", {})
    monkeypatch.setattr(cleanup, "_held", 0)
    monkeypatch.setattr(cleanup, "_pending", None)
    monkeypatch.setattr(cleanup, "_caught", None)
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    yield
    for s, h in old.items():
        signal.signal(s, h)


def test_a_signal_inside_a_held_section_is_raised_after_it(tmp_path):
    cleanup.install_handlers()
    with pytest.raises(cleanup.Terminated) as info:
        with cleanup.signals_held():
            path = cleanup.mkdtemp(tmp_path, "stage-")
            os.kill(os.getpid(), signal.SIGTERM)
            assert path.is_dir()  # still running: the signal waits for the section to end
            recorded = list(cleanup._LIVE)
    assert info.value.signum == signal.SIGTERM
    assert recorded == [str(path)]
    cleanup.remove_all()
    assert not path.exists() and cleanup._LIVE == {}


def test_sigint_becomes_keyboard_interrupt_and_discard_drops_it(tmp_path):
    cleanup.install_handlers()
    with pytest.raises(KeyboardInterrupt):
        with cleanup.signals_held():
            os.kill(os.getpid(), signal.SIGINT)
    with cleanup.signals_held(discard=True):
        os.kill(os.getpid(), signal.SIGHUP)  # the final cleanup: nothing is raised


def test_checkpoint_raises_a_signal_whose_exception_was_swallowed():
    cleanup.install_handlers()
    try:
        os.kill(os.getpid(), signal.SIGTERM)
    except cleanup.Terminated:
        pass  # what Python does to an exception raised inside a weakref callback or __del__
    assert cleanup.interrupted() == signal.SIGTERM
    with pytest.raises(cleanup.Terminated):
        cleanup.checkpoint()


def test_forget_and_remove(tmp_path):
    fd, f = cleanup.mkstemp(tmp_path, "t-")
    os.close(fd)
    d = cleanup.mkdtemp(tmp_path, "d-")
    (d / "inner").write_text("x")
    outside = tmp_path / "outside"
    outside.write_text("keep")
    (d / "link").symlink_to(outside)
    cleanup.forget(f)
    cleanup.remove_all()
    assert f.exists() and not d.exists() and outside.read_text() == "keep"
