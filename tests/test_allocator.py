"""The allocator restart of the training commands: when it happens, and with what environment."""

import sys

import pytest

from neurank import allocator, cli


def test_tuned_environment_respects_the_user(monkeypatch):
    monkeypatch.setattr(allocator.sys, "platform", "linux")
    monkeypatch.setattr(allocator.platform, "libc_ver", lambda: ("glibc", "2.36"))
    env = allocator.tuned_environment({"PATH": "/bin"})
    assert env == {"PATH": "/bin", **allocator.TUNED_MALLOC}
    assert allocator.tuned_environment({"MALLOC_MMAP_THRESHOLD_": "1"}) is None  # the user's own setting wins
    assert allocator.tuned_environment({"NEURANK_MALLOC": "default"}) is None  # opt-out
    monkeypatch.setattr(allocator.platform, "libc_ver", lambda: ("", ""))
    assert allocator.tuned_environment({}) is None  # musl, macOS, Windows: nothing to set


@pytest.mark.parametrize("command,restarts", [("train", True), ("experiment", True), ("benchmark", True), ("rerank", True), ("evaluate", False)])
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
        assert calls == [(sys.executable, [sys.executable, "-m", "neurank.cli", command, "--help"], {"MALLOC_MMAP_THRESHOLD_": "33554432"})]
    else:
        assert calls == []
    calls.clear()
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])  # called as a function (tests, notebooks): never restarts
    assert calls == []
