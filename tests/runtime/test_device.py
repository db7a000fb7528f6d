"""`select_device`: a device this machine or this torch build lacks is a ValueError naming it, not an assertion deep
inside torch once training has started (issue 22)."""

from __future__ import annotations

import re

import pytest
import torch

from neurank.runtime.device import select_device

HAS_CUDA = torch.cuda.is_available()
HAS_MPS = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def test_auto_and_cpu_always_give_a_device():
    assert select_device("cpu") == torch.device("cpu")
    assert select_device(" CPU ") == torch.device("cpu")
    assert select_device("auto").type in {"cpu", "cuda", "mps"}


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("quantum", "device 'quantum': expected one of auto, cpu, cuda, cuda:N, mps"),
        ("", "device '': expected one of"),
        ("cuda:x", "device 'cuda:x': expected one of"),
        ("cpu:0", r"device 'cpu:0': expected one of .*only cuda takes an index"),
        ("meta", "device 'meta': expected one of"),
    ],
)
def test_a_name_that_is_no_device_lists_the_choices(name, message):
    with pytest.raises(ValueError, match=message):
        select_device(name)


@pytest.mark.skipif(HAS_CUDA, reason="needs a machine without CUDA")
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_cuda_says_so(name):
    expected = "this torch build has no CUDA" if not torch.backends.cuda.is_built() else "no CUDA device is visible"
    with pytest.raises(ValueError, match=re.escape(f"device {name!r}: {expected}")):
        select_device(name)


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
def test_cuda_gives_the_gpu_and_refuses_an_index_past_the_last():
    assert select_device("cuda").type == "cuda"
    count = torch.cuda.device_count()
    assert select_device(f"cuda:{count - 1}") == torch.device(f"cuda:{count - 1}")
    with pytest.raises(ValueError, match=f"device 'cuda:{count}': this machine has {count} CUDA device"):
        select_device(f"cuda:{count}")


@pytest.mark.skipif(HAS_MPS, reason="needs a machine without MPS")
def test_mps_without_mps_says_so():
    with pytest.raises(ValueError, match=r"device 'mps': this (torch build|machine) has no MPS"):
        select_device("mps")


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("quantum", "error: device 'quantum': expected one of auto, cpu, cuda, cuda:N, mps"),
        *([] if HAS_CUDA else [("cuda", "error: device 'cuda': ")]),
    ],
)
def test_the_cli_prints_one_line_and_exits_2(tiny_config, tmp_path, capsys, device, message):
    import yaml

    from neurank.cli import main

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config.to_dict()), encoding="utf-8")
    with pytest.raises(SystemExit) as info:
        main(["train", str(config), "--output-dir", str(tmp_path / "out"), "--device", device])
    assert info.value.code == 2
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert err.startswith(message)
