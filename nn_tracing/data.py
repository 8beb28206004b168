"""Built-in datasets (all offline), user CSV files, splits and the probe set.

Every dataset becomes a :class:`Dataset` of float32 features and int64 class labels
``0 … n_classes-1``. :func:`prepare_data` splits it (stratified) into train and validation,
standardises the features with the training statistics, and draws the fixed, stratified
probe set from the validation split.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from .config import TrainConfig
from .data_modular import (
    MODULAR_DATASETS,
    is_modular,
    modular_dataset_arrays,
    modular_feature_names,
)

if TYPE_CHECKING:  # pandas is imported only where it is used
    import pandas as pd

__all__ = [
    "BUILTIN_DATASETS",
    "DataSplits",
    "Dataset",
    "DatasetShape",
    "as_model_inputs",
    "dataset_shape",
    "image_shape_of",
    "input_shape_for",
    "load_csv",
    "load_dataset",
    "prepare_data",
]

BUILTIN_DATASETS: dict[str, str] = {
    "classification": "make_classification: 20 features (10 informative), 2 classes",
    "moons": "two interleaving half circles, 2 features, 2 classes",
    "circles": "a circle inside a circle, 2 features, 2 classes",
    "blobs": "four Gaussian blobs, 2 features, 4 classes",
    "digits": "8x8 images of hand-written digits, 64 features, 10 classes",
    "iris": "iris flowers, 4 features, 3 classes",
    "wine": "wine cultivars, 13 features, 3 classes",
    "breast_cancer": "breast cancer diagnosis, 30 features, 2 classes",
    "bars": "16x16 generated images of oriented bars (noise, position jitter), 256 features, "
    "4 classes",
    **MODULAR_DATASETS,
}

MAX_CSV_BYTES = 200 * 1024 * 1024
MAX_CLASSES = 1000

# (n_samples or None for "config.n_samples", n_features, n_classes) of each built-in dataset
_BUILTIN_SHAPES: dict[str, tuple[int | None, int, int]] = {
    "classification": (None, 20, 2),
    "moons": (None, 2, 2),
    "circles": (None, 2, 2),
    "blobs": (None, 2, 4),
    "digits": (1797, 64, 10),
    "iris": (150, 4, 3),
    "wine": (178, 13, 3),
    "breast_cancer": (569, 30, 2),
    "bars": (None, 256, 4),
}


#: The image size (height, width) of each built-in image dataset.
_IMAGE_SHAPES: dict[str, tuple[int, int]] = {"digits": (8, 8), "bars": (16, 16)}


class DatasetShape(NamedTuple):
    """The dimensions of a config's dataset, known without building it."""

    n_samples: int
    n_features: int
    n_classes: int


def dataset_shape(config: TrainConfig) -> DatasetShape:
    """Samples, features and classes of ``config``'s dataset, without generating it.

    Built-in datasets are answered from a table; a CSV file is read for its header and its
    label column only. Raises :class:`ValueError` (the message of :func:`load_csv`) for a
    CSV that cannot be read.
    """
    if is_modular(config.dataset):
        p, dim = config.modulus, config.modular_embedding_dim
        return DatasetShape(p * p, 2 * (dim or p), p)
    if config.dataset != "csv":
        n_samples, n_features, n_classes = _BUILTIN_SHAPES[config.dataset]
        return DatasetShape(n_samples or config.n_samples, n_features, n_classes)
    import pandas as pd

    path = Path(config.csv_path or "")
    if not path.is_file():
        raise ValueError(f"CSV file {str(path)!r} does not exist")
    if path.stat().st_size > MAX_CSV_BYTES:
        raise ValueError(f"CSV file {str(path)!r} is larger than {MAX_CSV_BYTES // 2**20} MiB")
    try:
        columns = list(pd.read_csv(path, nrows=0).columns)
        if config.label_column not in columns:
            raise ValueError(
                f"{path.name} has no column {config.label_column!r}; its columns are: "
                f"{', '.join(map(str, columns[:30]))}"
            )
        labels = pd.read_csv(path, usecols=[config.label_column])[config.label_column]
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path.name} is not a readable CSV file: {exc}") from None
    return DatasetShape(len(labels), len(columns) - 1, int(labels.astype(str).nunique()))


@dataclass(frozen=True)
class Dataset:
    """Features and labels of a classification problem.

    Attributes
    ----------
    X : array of shape (n_samples, n_features), float32
    y : array of shape (n_samples,), int64 in ``0 … n_classes-1``
    standardise : whether :func:`prepare_data` standardises the features (not one-hot codes)
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...]
    image_shape: tuple[int, int] | None = None
    description: str = ""
    standardise: bool = True

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


@dataclass(frozen=True)
class DataSplits:
    """Standardised train / validation splits and the probe set: the validation rows
    ``probe_index`` (``None`` when the probe was not drawn from ``X_val``)."""

    dataset: Dataset
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_probe: np.ndarray
    y_probe: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    info: dict = field(default_factory=dict)
    probe_index: np.ndarray | None = None


def _finish(name: str, X, y, feature_names=None, class_names=None, **kw) -> Dataset:
    X = np.asarray(X, dtype=np.float32)
    y_raw = np.asarray(y)
    classes, y_idx = np.unique(y_raw, return_inverse=True)
    if class_names is None:
        class_names = tuple(str(c) for c in classes)
    else:
        class_names = tuple(str(class_names[int(c)]) for c in classes)
    if feature_names is None:
        feature_names = tuple(f"x{i}" for i in range(X.shape[1]))
    return Dataset(
        name=name,
        X=X,
        y=y_idx.astype(np.int64),
        feature_names=tuple(str(f) for f in feature_names),
        class_names=class_names,
        **kw,
    )


def load_dataset(
    name: str,
    *,
    n_samples: int = 2000,
    seed: int = 0,
    csv_path: str | os.PathLike | None = None,
    label_column: str | None = None,
    modulus: int = 59,
    modular_embedding_dim: int = 0,
) -> Dataset:
    """Load a built-in dataset by name (see :data:`BUILTIN_DATASETS`) or a CSV file.

    Synthetic datasets use ``n_samples`` and ``seed``; the bundled scikit-learn datasets ignore
    both; the modular ones (:mod:`nn_tracing.data_modular`) are every pair of residues mod
    ``modulus``, one-hot or embedded (``modular_embedding_dim``, seeded by ``seed``).
    Nothing is downloaded.
    """
    from sklearn import datasets as skd

    if name == "csv":
        if csv_path is None or label_column is None:
            raise ValueError("dataset 'csv' needs csv_path and label_column")
        return load_csv(csv_path, label_column)
    if name not in BUILTIN_DATASETS:
        raise ValueError(
            f"unknown dataset {name!r}; built-in datasets: {', '.join(BUILTIN_DATASETS)}, or csv"
        )
    desc = BUILTIN_DATASETS[name]
    if is_modular(name):
        X, y = modular_dataset_arrays(name, modulus, modular_embedding_dim, seed)
        return _finish(
            name,
            X,
            y,
            feature_names=modular_feature_names(modulus, modular_embedding_dim),
            class_names=tuple(str(c) for c in range(modulus)),
            description=f"{desc}; p = {modulus}",
            standardise=False,
        )
    if name == "classification":
        X, y = skd.make_classification(
            n_samples=n_samples,
            n_features=20,
            n_informative=10,
            n_redundant=5,
            n_classes=2,
            random_state=seed,
        )
        return _finish(name, X, y, description=desc)
    if name == "moons":
        X, y = skd.make_moons(n_samples=n_samples, noise=0.2, random_state=seed)
        return _finish(name, X, y, feature_names=("x0", "x1"), description=desc)
    if name == "circles":
        X, y = skd.make_circles(n_samples=n_samples, noise=0.1, factor=0.5, random_state=seed)
        return _finish(name, X, y, feature_names=("x0", "x1"), description=desc)
    if name == "blobs":
        X, y = skd.make_blobs(
            n_samples=n_samples, centers=4, n_features=2, cluster_std=1.5, random_state=seed
        )
        return _finish(name, X, y, feature_names=("x0", "x1"), description=desc)
    if name == "bars":
        return _bars(n_samples, seed, desc)
    loader = {
        "digits": skd.load_digits,
        "iris": skd.load_iris,
        "wine": skd.load_wine,
        "breast_cancer": skd.load_breast_cancer,
    }[name]
    bunch = loader()
    feature_names = getattr(bunch, "feature_names", None)
    if name == "digits":
        feature_names = tuple(f"px_{r}_{c}" for r in range(8) for c in range(8))
        class_names = tuple(str(c) for c in range(10))
    else:
        class_names = tuple(str(c) for c in bunch.target_names)
    return _finish(
        name,
        bunch.data,
        bunch.target,
        feature_names=feature_names,
        class_names=class_names,
        image_shape=_IMAGE_SHAPES.get(name),
        description=desc,
    )


def _bars(n_samples: int, seed: int, description: str) -> Dataset:
    """The generated ``bars`` images (:func:`nn_tracing.data_images.make_bars`), 16 × 16."""
    from .data_images import BAR_CLASSES, make_bars

    X, y = make_bars(n_samples, size=16, seed=seed)
    return _finish(
        "bars",
        X,
        y,
        feature_names=tuple(f"px_{r}_{c}" for r in range(16) for c in range(16)),
        class_names=tuple(name for name, _ in BAR_CLASSES),
        image_shape=_IMAGE_SHAPES["bars"],
        description=description,
    )


def _csv_source(source: str | os.PathLike | bytes) -> tuple[io.BytesIO | Path, str]:
    """What ``pandas.read_csv`` reads and how messages name the file; refuses a missing or
    too large one."""
    if isinstance(source, bytes):
        if len(source) > MAX_CSV_BYTES:
            raise ValueError(f"the CSV is larger than {MAX_CSV_BYTES // 2**20} MiB")
        return io.BytesIO(source), "uploaded CSV"
    path = Path(source)
    if not path.is_file():
        raise ValueError(f"CSV file {str(path)!r} does not exist")
    if path.stat().st_size > MAX_CSV_BYTES:
        raise ValueError(f"CSV file {str(path)!r} is larger than {MAX_CSV_BYTES // 2**20} MiB")
    return path, path.name


def _csv_features(frame: pd.DataFrame, label: str, label_column: str) -> pd.DataFrame:
    """The feature columns of ``frame``: every column but the label, all numeric."""
    from pandas.api.types import is_numeric_dtype

    if label_column not in frame.columns:
        raise ValueError(
            f"{label} has no column {label_column!r}; its columns are: "
            f"{', '.join(map(str, frame.columns[:30]))}"
        )
    features = frame.drop(columns=[label_column])
    if features.shape[1] == 0:
        raise ValueError(f"{label} has no feature columns besides {label_column!r}")
    non_numeric = [str(c) for c in features.columns if not is_numeric_dtype(features[c])]
    if non_numeric:
        raise ValueError(
            f"{label}: feature column(s) {', '.join(non_numeric[:10])} are not numeric; "
            "encode them as numbers first"
        )
    return features


def load_csv(source: str | os.PathLike | bytes, label_column: str) -> Dataset:
    """Load a CSV file whose columns are numeric features and one label column.

    Raises :class:`ValueError` with a specific message when the file is missing, too big, has
    no such label column, non-numeric or missing feature values, or fewer than two classes.
    """
    import pandas as pd

    buffer, label = _csv_source(source)
    try:
        frame = pd.read_csv(buffer)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"{label} is not a readable CSV file: {exc}") from None
    features = _csv_features(frame, label, label_column)
    labels = frame[label_column]
    missing = int(features.isna().any(axis=1).sum() + labels.isna().sum())
    if missing:
        raise ValueError(f"{label}: {missing} row(s) have missing values; fill or drop them first")
    values = features.to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError(f"{label}: some feature values are infinite")
    classes = np.unique(labels.astype(str))
    if len(classes) < 2:
        raise ValueError(f"{label}: the label column {label_column!r} has fewer than two classes")
    if len(classes) > MAX_CLASSES:
        raise ValueError(
            f"{label}: the label column {label_column!r} has {len(classes)} distinct values; "
            "is it really a class label?"
        )
    return _finish(
        f"csv:{label}",
        values,
        labels.astype(str).to_numpy(),
        feature_names=tuple(str(c) for c in features.columns),
        description=f"{label}: {values.shape[1]} features, {len(classes)} classes",
    )


def _stratified_take(y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of a stratified sample of size ``n`` (at least one per class when possible)."""
    n_total = len(y)
    if n >= n_total:
        return np.arange(n_total)
    classes, counts = np.unique(y, return_counts=True)
    quota = np.floor(counts / n_total * n).astype(int)
    quota = np.maximum(quota, np.minimum(1, counts))
    # hand out what rounding left over to the largest remainders
    remainder = counts / n_total * n - quota
    while quota.sum() < n:
        i = int(np.argmax(remainder + (quota < counts) * 1e-9 - (quota >= counts) * 1e9))
        quota[i] += 1
        remainder[i] -= 1
    while quota.sum() > n:
        i = int(np.argmax(quota))
        quota[i] -= 1
    chosen = []
    for cls, q in zip(classes, quota):
        members = np.flatnonzero(y == cls)
        chosen.append(rng.choice(members, size=q, replace=False))
    return np.sort(np.concatenate(chosen))


def prepare_data(config: TrainConfig, dataset: Dataset | None = None) -> DataSplits:
    """Split, standardise and draw the probe set for ``config``.

    The validation split is stratified (``config.val_fraction``; for a modular dataset the
    pairs not trained on, ``1 - config.modular_train_fraction``: :attr:`TrainConfig.
    held_out_fraction`); the features are standardised with the training split's mean and
    standard deviation (except a dataset's that says not to: one-hot codes stay 0/1); the probe
    is a stratified sample of ``min(config.probe_size, n_val)`` validation samples, fixed by
    ``config.data_seed``.
    """
    from sklearn.model_selection import train_test_split

    if dataset is None:
        dataset = load_dataset(
            config.dataset,
            n_samples=config.n_samples,
            seed=config.data_seed,
            csv_path=config.csv_path,
            label_column=config.label_column,
            modulus=config.modulus,
            modular_embedding_dim=config.modular_embedding_dim,
        )
    _, counts = np.unique(dataset.y, return_counts=True)
    if counts.min() < 2:
        raise ValueError(
            f"dataset {dataset.name!r}: every class needs at least two samples for a "
            "stratified split"
        )
    n_val = max(round(len(dataset.y) * config.held_out_fraction), dataset.n_classes)
    if len(dataset.y) - n_val < dataset.n_classes:
        raise ValueError(f"dataset {dataset.name!r} has too few samples to split")
    idx_train, idx_val = train_test_split(
        np.arange(len(dataset.y)),
        test_size=n_val,
        stratify=dataset.y,
        random_state=config.data_seed,
    )
    idx_train, idx_val = np.sort(idx_train), np.sort(idx_val)
    X_train = dataset.X[idx_train]
    mean = X_train.mean(axis=0)
    scale = X_train.std(axis=0)
    scale[scale == 0] = 1.0
    if not dataset.standardise:
        mean, scale = np.zeros_like(mean), np.ones_like(scale)
    standardise = lambda X: ((X - mean) / scale).astype(np.float32)  # noqa: E731
    X_val = standardise(dataset.X[idx_val])
    y_val = dataset.y[idx_val]
    rng = np.random.default_rng(config.data_seed)
    probe_idx = _stratified_take(y_val, config.probe_size, rng)
    return DataSplits(
        dataset=dataset,
        X_train=standardise(X_train),
        y_train=dataset.y[idx_train],
        X_val=X_val,
        y_val=y_val,
        X_probe=X_val[probe_idx],
        y_probe=y_val[probe_idx],
        mean=mean.astype(np.float32),
        scale=scale.astype(np.float32),
        info={"n_train": len(idx_train), "n_val": len(idx_val), "n_probe": len(probe_idx)},
        probe_index=probe_idx,
    )


def image_shape_of(dataset: str) -> tuple[int, int] | None:
    """``(height, width)`` of a built-in image dataset's samples, else ``None``."""
    return _IMAGE_SHAPES.get(dataset)


def input_shape_for(
    config: TrainConfig, n_features: int, image_shape: Sequence[int] | None = None
) -> tuple[int, ...]:
    """The shape of one sample as ``config``'s model receives it: ``(n_features,)`` for the
    MLP and for tabular data, ``(1, height, width)`` for the CNN and entry-point models on an
    image dataset."""
    if config.model != "mlp" and image_shape:
        return (1, *(int(v) for v in image_shape))
    if config.model == "cnn":
        raise ValueError(
            f"the built-in CNN needs an image dataset; {config.dataset!r} has flat features"
        )
    return (int(n_features),)


def as_model_inputs(splits: DataSplits, input_shape: Sequence[int]) -> DataSplits:
    """``splits`` with every sample shaped ``input_shape`` (e.g. ``(1, 8, 8)``: the digits as
    images for a CNN); the same splits when they have that shape already. The features keep
    their standardisation (per pixel)."""
    shape = tuple(int(v) for v in input_shape)
    if splits.X_train.shape[1:] == shape:
        return splits
    reshaped = {
        name: np.ascontiguousarray(getattr(splits, name).reshape(-1, *shape))
        for name in ("X_train", "X_val", "X_probe")
    }
    return replace(splits, **reshaped)
