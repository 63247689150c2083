"""A handful of SIGKILLs aimed at training steps, each followed by resume=true: the finished run
equals an uninterrupted one (benchmarks/soak.py does 100)."""

import pytest

from benchmarks.soak import campaign


@pytest.mark.slow
def test_random_kills_then_resume_equal_an_uninterrupted_run(tmp_path):
    tally = campaign(tmp_path, kills=3, seed=1, steps=30, start_up_share=0.0)  # past a snapshot, samples, rotation
    assert tally["kills"] == 3
    assert tally["problems"] == [] and tally["stray_temporaries"] == []
    assert tally["in_training"] == 3, tally  # aimed by step, every kill lands in training
    assert tally["in_training"] + tally["during_start_up"] + tally["after_the_end"] == tally["kills"]
