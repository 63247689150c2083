"""Data sets: the bundled digits and MNIST from IDX files, batched in memory."""

import numpy as np
import pytest
import torch

from ganlab.data.digits import load_digits
from ganlab.data.mnist import load_mnist
from ganlab.errors import ConfigError
from idx_files import digit_like, write_idx_split


def test_digits_shapes_range_and_labels():
    data = load_digits(resolution=32, batch_size=64)
    assert data.images.shape == (1797, 1, 32, 32) and data.images.dtype == torch.uint8
    assert data.facts.resolution == 32 and data.facts.channels == 1 and data.facts.num_classes == 10
    assert sorted(data.labels.unique().tolist()) == list(range(10))
    batch = next(data.batches(torch.device("cpu"), seed=0))
    assert batch["image"].shape == (64, 1, 32, 32)
    assert batch["image"].min() >= -1 and batch["image"].max() <= 1
    assert batch["image"].min() == -1 and batch["image"].max() > 0.9  # background and ink both present


def test_unit_value_range():
    data = load_digits(resolution=8, batch_size=10, value_range="unit")
    batch = next(data.batches(torch.device("cpu"), seed=0))
    assert batch["image"].min() >= 0 and batch["image"].max() <= 1


def test_batches_cover_an_epoch_without_repeats_and_resume_exactly():
    data = load_digits(resolution=8, batch_size=100)
    it = data.batches(torch.device("cpu"), seed=3)
    seen = [next(it)["label"] for _ in range(data.batches_per_epoch)]
    assert sum(len(s) for s in seen) == 1700
    state = it.state_dict()
    expected = [next(it)["image"] for _ in range(20)]  # crosses into the next epochs
    again = data.batches(torch.device("cpu"), seed=3)
    again.load_state_dict(state)
    for want in expected:
        assert torch.equal(next(again)["image"], want)


def test_batch_larger_than_the_data_is_a_config_error():
    with pytest.raises(ConfigError, match="dataset.batch_size=5000"):
        load_digits(batch_size=5000)


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("split", ["train", "test"])
def test_mnist_reads_idx_files_of_one_split(tmp_path, gz, split):
    images, labels = digit_like(40)
    write_idx_split(tmp_path / "MNIST" / "raw", split, images, labels, gz=gz)
    data = load_mnist(root=str(tmp_path), split=split, resolution=28, batch_size=8)
    assert data.images.shape == (40, 1, 28, 28)
    assert torch.equal(data.labels, torch.as_tensor(labels, dtype=torch.long))
    assert torch.equal(data.images[:, 0], torch.as_tensor(images))
    assert data.facts.class_names[:2] == ("0 - zero", "1 - one")


def test_mnist_is_resized_to_the_requested_resolution(tmp_path):
    images, labels = digit_like(20)
    write_idx_split(tmp_path / "MNIST" / "raw", "train", images, labels, gz=True)
    data = load_mnist(root=str(tmp_path), resolution=32, batch_size=4)
    assert data.images.shape == (20, 1, 32, 32)
    # brightness order of the squares survives the resize
    means = data.images.float().mean(dim=(1, 2, 3))
    assert np.corrcoef(means.numpy(), labels)[0, 1] > 0.99


def test_missing_mnist_says_where_it_looked_and_how_to_fix(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_mnist(root=str(tmp_path / "nowhere"), split="test")
    message = str(info.value)
    assert str((tmp_path / "nowhere" / "MNIST" / "raw").resolve()) in message
    assert "t10k-images-idx3-ubyte" in message and "dataset.download=true" in message and "dataset.root" in message


def test_corrupt_idx_file_is_named(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    images, labels = digit_like(10)
    write_idx_split(raw, "train", images, labels, gz=False)
    (raw / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03garbage")
    with pytest.raises(ConfigError, match="train-images-idx3-ubyte is not a readable IDX file"):
        load_mnist(root=str(tmp_path))


def test_unknown_split_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="dataset.split='val'"):
        load_mnist(root=str(tmp_path), split="val")
