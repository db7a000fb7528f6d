"""The allocator restart of the training commands: when it happens, and with what environment."""

import sys

import pytest

from neurank import cli
from neurank.runtime import allocator


def test_tuned_environment_respects_the_user(monkeypatch):
    monkeypatch.setattr(allocator.sys, "platform", "linux")
    monkeypatch.setattr(allocator.platform, "libc_ver", lambda: ("glibc", "2.36"))
    env = allocator.tuned_environment({"PATH": "/bin"})
    assert env == {"PATH": "/bin", **allocator.TUNED_MALLOC}
    assert allocator.tuned_environment({"MALLOC_MMAP_THRESHOLD_": "1"}) is None  # the user's own setting wins
    assert allocator.tuned_environment({"NEURANK_MALLOC": "default"}) is None  # opt-out
    monkeypatch.setattr(allocator.platform, "libc_ver", lambda: ("", ""))
    assert allocator.tuned_environment({}) is None  # musl, macOS, Windows: nothing to set


@pytest.mark.parametrize(
    "command,restarts",
    [("train", True), ("experiment", True), ("benchmark", True), ("rerank", True), ("evaluate", False)],
)
def test_training_and_rerank_commands_restart_once_with_the_settings(monkeypatch, command, restarts):
    calls = []

    def fake_execve(path, args, env):
        calls.append((path, args, env))
        raise SystemExit(0)

    monkeypatch.setattr(allocator.os, "execve", fake_execve)
    monkeypatch.setattr(allocator, "tuned_environment", lambda: {"MALLOC_MMAP_THRESHOLD_": "33554432"})
    monkeypatch.setattr(sys, "argv", ["neurank", command, "--help"])
    with pytest.raises(SystemExit):
        cli.main()
    if restarts:
        assert calls == [
            (
                sys.executable,
                [sys.executable, "-m", "neurank.cli", command, "--help"],
                {"MALLOC_MMAP_THRESHOLD_": "33554432"},
            )
        ]
    else:
        assert calls == []
    calls.clear()
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])  # called as a function (tests, notebooks): never restarts
    assert calls == []


class _FakeLibc:
    def __init__(self, result=1):
        self.calls, self.result = [], result

    def mallopt(self, parameter, value):
        self.calls.append((parameter, value))
        return self.result


def _glibc_process(monkeypatch, libc):
    monkeypatch.setattr(allocator.sys, "platform", "linux")
    monkeypatch.setattr(allocator.platform, "libc_ver", lambda: ("glibc", "2.36"))
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda name: libc)
    monkeypatch.setattr(allocator, "_tuned_in_process", False)
    for name in [*allocator.TUNED_MALLOC, allocator.OPT_OUT]:
        monkeypatch.delenv(name, raising=False)


def test_tune_malloc_sets_the_thresholds_once_unless_the_user_chose(monkeypatch):
    libc = _FakeLibc()
    _glibc_process(monkeypatch, libc)
    monkeypatch.setenv("NEURANK_MALLOC", "default")
    assert not allocator.tune_malloc() and libc.calls == []  # opt-out
    monkeypatch.delenv("NEURANK_MALLOC")
    monkeypatch.setenv("MALLOC_TOP_PAD_", "0")
    assert not allocator.tune_malloc() and libc.calls == []  # the user's own setting
    monkeypatch.delenv("MALLOC_TOP_PAD_")
    assert not allocator.malloc_tuned()
    assert allocator.tune_malloc() and allocator.malloc_tuned()
    # mmap threshold 32 MiB, top pad 256 MiB, trim threshold the largest C int (mallopt takes an int).
    assert sorted(libc.calls) == [(-3, 1 << 25), (-2, 1 << 28), (-1, (1 << 31) - 1)]
    assert allocator.tune_malloc() and len(libc.calls) == 3  # once per process


def test_tune_malloc_reports_a_refused_setting(monkeypatch):
    _glibc_process(monkeypatch, _FakeLibc(result=0))
    assert not allocator.tune_malloc() and not allocator.malloc_tuned()


@pytest.mark.slow  # starts a real re-ranking process (about 9 s)
@pytest.mark.skipif(sys.platform != "linux", reason="glibc's mallopt")
def test_a_cpu_reranker_tunes_a_real_process():
    import os
    import platform
    import subprocess

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    env = {k: v for k, v in os.environ.items() if k not in allocator.TUNED_MALLOC and k != allocator.OPT_OUT}
    code = (
        "from neurank.runtime.allocator import malloc_tuned\n"
        "from neurank.models import build_model\n"
        "from neurank.inference.reranker import Reranker\n"
        "from neurank.text import Tokenizer, Vocab\n"
        "before = malloc_tuned()\n"
        "Reranker(build_model('knrm', 10), Tokenizer(), Vocab.build([['a']]), device='cpu')\n"
        "print(before, malloc_tuned())\n"
    )

    def run(extra):
        return subprocess.run(
            [sys.executable, "-c", code], env={**env, **extra}, capture_output=True, text=True, check=True
        ).stdout.split()

    assert run({}) == ["False", "True"]
    assert run({"NEURANK_MALLOC": "default"}) == ["False", "False"]
