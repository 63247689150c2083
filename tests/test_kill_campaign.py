"""A handful of SIGKILLs at random moments, each followed by resume=true: the finished run equals
an uninterrupted one (benchmarks/soak.py does 100)."""

import pytest

from benchmarks.soak import campaign


@pytest.mark.slow
def test_random_kills_then_resume_equal_an_uninterrupted_run(tmp_path):
    tally = campaign(tmp_path, kills=3, seed=1, steps=30)  # still past a snapshot, samples and rotation
    assert tally["kills"] == 3
    assert tally["problems"] == [] and tally["stray_temporaries"] == []
    assert tally["mid_run"] >= 2, tally  # kills 1 and 3 land just after a new checkpoint
