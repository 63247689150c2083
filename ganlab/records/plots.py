"""Pictures made without a plotting library: pixels in [0, 1], 2-d scatter plots and labelled grids as image
tensors."""

from __future__ import annotations

import torch


def to_unit(samples: torch.Tensor, value_range: str) -> torch.Tensor:
    """Images in a value range ("tanh": [-1, 1], "unit": [0, 1]) as pixels in [0, 1]."""
    return ((samples.clamp(-1, 1) + 1) / 2) if value_range == "tanh" else samples.clamp(0, 1)


def to_uint8(samples: torch.Tensor, value_range: str) -> torch.Tensor:
    """Images in a value range as uint8 pixels (0-255), the form files and metrics take."""
    return to_unit(samples, value_range).mul(255).round().byte()


def scatter_image(points: torch.Tensor, reference: torch.Tensor | None = None, size: int = 256,
                  extent: float | None = None) -> torch.Tensor:
    """An RGB image (3, size, size) in [0, 1]: `reference` points grey, `points` red, on white."""
    points = points.detach().float().cpu()
    reference = reference.detach().float().cpu() if reference is not None else None
    if extent is None:
        pool = points if reference is None else torch.cat([points, reference])
        extent = float(pool.abs().max().clamp(min=1e-3)) * 1.1
    image = torch.ones(3, size, size)
    for cloud, color in ((reference, (0.6, 0.6, 0.6)), (points, (0.85, 0.1, 0.1))):
        if cloud is None:
            continue
        pixels = ((cloud / extent + 1) / 2 * (size - 1)).round().long()
        pixels = pixels[(pixels >= 1).all(1) & (pixels <= size - 2).all(1)]
        for dx in (-1, 0, 1):  # 3x3 dots
            for dy in (-1, 0, 1):
                cols, rows = pixels[:, 0] + dx, size - 1 - (pixels[:, 1] + dy)
                for channel, value in enumerate(color):
                    image[channel, rows, cols] = value
    return image


def two_dimensional(points: torch.Tensor) -> torch.Tensor:
    """`points` as 2-d: a t-SNE embedding of more dimensions (scikit-learn, only when one is drawn)."""
    values = points.detach().float().cpu().numpy()
    if values.shape[1] > 2 and len(values) > 5:
        from sklearn.manifold import TSNE

        perplexity = min(30.0, (len(values) - 1) / 3)
        values = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=0).fit_transform(values)
    return torch.as_tensor(values[:, :2])


def labelled_scatter(points: torch.Tensor, labels: torch.Tensor, names: tuple[str, ...] = (),
                     title: str = "") -> torch.Tensor:
    """A matplotlib scatter of 2-d points coloured by integer label, with a legend, as (3, H, W) in [0, 1]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    points, labels = points.detach().cpu().numpy(), labels.detach().cpu().numpy()
    figure, axes = plt.subplots(figsize=(6, 6), dpi=100)
    colours = plt.get_cmap("tab10" if labels.max(initial=0) < 10 else "tab20")
    for value in np.unique(labels):
        chosen = labels == value
        name = names[value] if value < len(names) else str(value)
        axes.scatter(points[chosen, 0], points[chosen, 1], s=4, color=colours(int(value) % colours.N), label=name)
    axes.legend(markerscale=3, fontsize=7, loc="best")
    axes.set_title(title)
    axes.set_xticks([])
    axes.set_yticks([])
    figure.tight_layout()
    figure.canvas.draw()
    image = np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
    plt.close(figure)
    return torch.from_numpy(image).permute(2, 0, 1).float() / 255


def labelled_grid(images: torch.Tensor, columns: int, row_labels: list[str] = (), padding: int = 2,
                  title: str = ""):
    """A PIL image of `images` (N, C, H, W) in [0, 1] in rows of `columns`, each row named on its
    left, with `title` (e.g. the step) above."""
    from PIL import Image, ImageDraw
    from torchvision.utils import make_grid

    grid = make_grid(images.detach().float().cpu().clamp(0, 1), nrow=columns, padding=padding, pad_value=1.0)
    picture = Image.fromarray(to_uint8(grid, "unit").permute(1, 2, 0).numpy())
    if not row_labels and not title:
        return picture
    font = _font(min(24, max(11, images.shape[-2] // 4)))  # grows with the cells: readable on 64 and 96 px grids
    measure = ImageDraw.Draw(picture)
    margin = 8 + int(max(measure.textlength(label, font=font) for label in row_labels)) if row_labels else 0
    top = int(font.size) + 6 if title else 0
    width = max(picture.width + margin, int(measure.textlength(title, font=font)) + 8)
    canvas = Image.new("RGB", (width, picture.height + top), "white")
    canvas.paste(picture, (margin, top))
    draw, row_height = ImageDraw.Draw(canvas), images.shape[-2] + padding
    if title:
        draw.text((4, 2), title, fill="black", font=font)
    for row, label in enumerate(row_labels):
        draw.text((4, top + padding + row * row_height + (row_height - int(font.size)) // 2), label, fill="black",
                  font=font)
    return canvas


def _font(size: int):
    """Pillow's bundled font at `size` points (its fixed 11 px bitmap where FreeType is missing)."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):
        font = ImageFont.load_default()
        font.size = 11
        return font


def rows_by_class(images: torch.Tensor, labels: torch.Tensor, names: tuple[str, ...] = ()):
    """`images` regrouped one row per class (rows padded with blank cells): (images, columns, row labels)."""
    labels = labels.cpu()
    classes = sorted(set(labels.tolist()))
    per_row = max(int((labels == c).sum()) for c in classes)
    blank = torch.ones_like(images[:1])
    rows = []
    for c in classes:
        chosen = images[labels == c]
        rows.append(torch.cat([chosen, blank.expand(per_row - len(chosen), *images.shape[1:])]))
    named = [names[c] if c < len(names) and names[c] != str(c) else str(c) for c in classes]
    return torch.cat(rows), per_row, [f"{c}: {n}" if n != str(c) else n for c, n in zip(classes, named)]
