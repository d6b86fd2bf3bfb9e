"""Files that must survive a kill: the one atomic write, JSON records through it, the hardware record.
(Checkpoints themselves, their safe loading and exact resume: tests/test_training.py.)"""

import json

import pytest
import torch

from ddimlib.checkpoints import hardware, write_atomic, write_json


def test_a_write_that_fails_midway_leaves_the_old_file_whole_and_no_temporary(tmp_path):
    path = write_json({"kept": 1}, tmp_path / "record.json")
    before = path.read_bytes()

    def half_then_fail(f):
        f.write(b'{"new": ')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, half_then_fail)
    assert path.read_bytes() == before and json.loads(before) == {"kept": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]
    write_json({"new": [1, 2]}, path, indent=1)
    assert json.loads(path.read_text()) == {"new": [1, 2]} and path.stat().st_mode & 0o777 != 0o600


def test_the_hardware_record_names_the_device_and_the_machine():
    record = hardware("cpu")
    assert (
        record["device"] == "cpu"
        and record["threads"] == torch.get_num_threads()
        and record["torch"] == str(torch.__version__)
    )
    assert hardware()["device"] is None and record["cpu"]
