"""Every loader on tiny files in its real on-disk layout: shapes, value ranges, labels, attributes, errors."""

import numpy as np
import pytest
import torch
from PIL import Image

from fake_data import CELEBA_NAMES, make_celeba, make_cifar_batches, make_images
from ganlab.data import folder as folder_module
from ganlab.data.celeba import load_celeba
from ganlab.data.cifar import load_cifar10
from ganlab.data.folder import StreamingImages, load_folder
from ganlab.data.mnist import load_fashion_mnist
from ganlab.errors import ConfigError
from idx_files import digit_like, write_idx_split

CPU = torch.device("cpu")


def test_cifar10_pickle_batches(tmp_path):
    make_cifar_batches(tmp_path, n=20)
    train = load_cifar10(root=str(tmp_path), batch_size=10)
    assert train.images.shape == (100, 3, 32, 32)  # five training batches of 20
    assert train.facts.class_names[0] == "airplane" and train.facts.num_classes == 10
    test = load_cifar10(root=str(tmp_path), split="test", resolution=16, batch_size=10)
    assert test.images.shape == (20, 3, 16, 16)


def test_cifar10_class_folders(tmp_path):
    for name in ("airplane", "cat", "truck"):
        make_images(tmp_path / "test" / name, 4, size=(32, 32))
    data = load_cifar10(root=str(tmp_path), split="test", batch_size=4)
    assert data.images.shape == (12, 3, 32, 32)
    assert data.facts.class_names == ("airplane", "cat", "truck")
    assert data.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4


def test_cifar10_class_folders_under_a_data_folder(tmp_path):
    """root=$GANLAB_DATA holding cifar10/<split>/<class>/ (as ../shared/data does) finds them."""
    for name in ("cat", "dog"):
        make_images(tmp_path / "cifar10" / "test" / name, 3, size=(32, 32))
    assert load_cifar10(root=str(tmp_path), split="test", batch_size=2).images.shape == (6, 3, 32, 32)
    with pytest.raises(ConfigError, match="cifar10/train"):  # the train split is not there: both places named
        load_cifar10(root=str(tmp_path), split="train", batch_size=2)


def test_fashion_mnist_idx(tmp_path):
    images, labels = digit_like(30)
    write_idx_split(tmp_path / "FashionMNIST" / "raw", "test", images, labels, gz=False)
    data = load_fashion_mnist(root=str(tmp_path), split="test", batch_size=5)
    assert data.images.shape == (30, 1, 28, 28)
    assert data.facts.class_names[0] == "T-shirt/top"
    with pytest.raises(ConfigError, match="FashionMNIST"):
        load_fashion_mnist(root=str(tmp_path), split="train")


def test_celeba_attributes_and_splits(tmp_path):
    make_celeba(tmp_path, n=24)
    data = load_celeba(root=str(tmp_path), attributes=["Male", "Smiling"], batch_size=6)
    assert data.images.shape == (18, 3, 64, 64)  # the first 3/4 are the train split
    assert data.facts.num_attributes == 2 and data.facts.attribute_names == ("Male", "Smiling")
    assert data.facts.num_classes == 0
    rows = (tmp_path / "celeba" / "list_attr_celeba.txt").read_text().splitlines()[2:]
    male = CELEBA_NAMES.index("Male")
    expected = [1.0 if row.split()[1 + male] == "1" else 0.0 for row in rows[:18]]
    assert data.labels[:, 0].tolist() == expected
    batch = next(data.batches(CPU, seed=0))
    assert batch["label"].dtype == torch.float32 and set(batch["label"].unique().tolist()) <= {0.0, 1.0}
    assert load_celeba(root=str(tmp_path), split="test", batch_size=2).facts.num_attributes == 40


def test_celeba_unknown_attribute_and_missing_files(tmp_path):
    make_celeba(tmp_path, n=8)
    with pytest.raises(ConfigError, match=r"unknown names \['Smiles'\]"):
        load_celeba(root=str(tmp_path), attributes=["Smiles"], batch_size=2)
    with pytest.raises(ConfigError, match="list_attr_celeba.txt"):
        load_celeba(root=str(tmp_path / "elsewhere"))


def test_folder_converts_modes_and_formats(tmp_path):
    make_images(tmp_path / "a", 2, mode="RGB", ext="jpg")
    make_images(tmp_path / "a" / "deeper", 2, mode="RGBA", ext="png")
    make_images(tmp_path / "b", 2, mode="P", ext="png")
    make_images(tmp_path / "b", 2, mode="L", ext="webp", seed=5)
    flat = load_folder(str(tmp_path), resolution=16, batch_size=2, labels="none")
    assert flat.images.shape == (8, 3, 16, 16) and flat.facts.num_classes == 0
    gray = load_folder(str(tmp_path), resolution=16, batch_size=2, labels="none", channels=1)
    assert gray.images.shape == (8, 1, 16, 16)
    by_class = load_folder(str(tmp_path), resolution=16, batch_size=2)  # every image sits in a/ or b/
    assert by_class.facts.class_names == ("a", "b")
    assert sorted(by_class.labels.tolist()) == [0, 0, 0, 0, 1, 1, 1, 1]
    batch = next(by_class.batches(CPU, seed=0))
    assert batch["image"].min() >= -1 and batch["image"].max() <= 1


def test_folder_resizes_and_center_crops(tmp_path):
    tmp_path.mkdir(exist_ok=True)
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, 10:30] = 255  # a white centre square in a 40x20 picture
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    data = load_folder(str(tmp_path), resolution=8, batch_size=1)
    assert data.images.shape == (1, 3, 8, 8)
    assert data.images.float().mean() > 250  # the crop kept only the white centre


def test_corrupt_and_truncated_images_are_named(tmp_path):
    make_images(tmp_path, 3)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg at all")
    good = (tmp_path / "0000.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(good[: len(good) // 3])
    with pytest.raises(ConfigError) as info:
        load_folder(str(tmp_path), resolution=8, batch_size=1)
    message = str(info.value)
    assert "2 image file(s) could not be decoded" in message
    assert str(tmp_path / "broken.jpg") in message and str(tmp_path / "cut.jpg") in message


@pytest.mark.parametrize("setup,expected", [
    (lambda p: None, "is not a folder"),
    (lambda p: p.mkdir(), "holds no images"),
    (lambda p: (p.mkdir(), (p / "notes.txt").write_text("x")), "holds no images"),
])
def test_missing_or_empty_folder(tmp_path, setup, expected):
    root = tmp_path / "images"
    setup(root)
    with pytest.raises(ConfigError, match=expected):
        load_folder(str(root))


def test_streaming_path_covers_epochs_and_resumes_exactly(tmp_path):
    make_images(tmp_path, 10, size=(24, 24))
    data = load_folder(str(tmp_path), resolution=8, batch_size=3, in_memory=False, workers=1)
    assert isinstance(data, StreamingImages) and data.batches_per_epoch == 3
    memory = load_folder(str(tmp_path), resolution=8, batch_size=3, in_memory=True)
    batches = data.batches(CPU, seed=4)
    first_epoch = torch.cat([next(batches)["image"] for _ in range(3)])
    # the same images as the in-memory path decodes, each at most once per epoch
    flat = memory.to_float(memory.images).flatten(1)
    matches = [(flat == row).all(1).nonzero().flatten().tolist() for row in first_epoch.flatten(1)]
    assert all(len(m) == 1 for m in matches) and len({m[0] for m in matches}) == 9
    state = batches.state_dict()
    expected = [next(batches)["image"] for _ in range(4)]  # into the next epoch
    again = data.batches(CPU, seed=4)
    again.load_state_dict(state)
    for want in expected:
        assert torch.equal(next(again)["image"], want)


def test_cache_skips_decoding_the_second_time(tmp_path, monkeypatch):
    images = tmp_path / "images"
    make_images(images, 4)
    cache_dir = tmp_path / "cache"
    first = load_folder(str(images), resolution=8, batch_size=2, cache=True, cache_dir=str(cache_dir))
    assert len(list(cache_dir.glob("images-8px-*.pt"))) == 1

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(folder_module, "decode_all", no_decoding)
    second = load_folder(str(images), resolution=8, batch_size=2, cache=True, cache_dir=str(cache_dir))
    assert torch.equal(first.images, second.images)
