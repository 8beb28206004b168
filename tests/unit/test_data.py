"""Built-in datasets (offline), CSV loading, splits and the stratified probe."""

import numpy as np
import pytest

from nn_tracing import BUILTIN_DATASETS, TrainConfig, load_csv, load_dataset, prepare_data

EXPECTED = {
    "classification": (20, 2),
    "moons": (2, 2),
    "circles": (2, 2),
    "blobs": (2, 4),
    "digits": (64, 10),
    "iris": (4, 3),
    "wine": (13, 3),
    "breast_cancer": (30, 2),
    "bars": (256, 4),
    "modular_add": (118, 59),  # every pair mod 59, one-hot a and b
    "modular_sub": (118, 59),
}


@pytest.mark.parametrize("name", sorted(BUILTIN_DATASETS))
def test_every_builtin_dataset_loads_offline_with_its_shape(name):
    ds = load_dataset(name, n_samples=400, seed=1)
    n_features, n_classes = EXPECTED[name]
    assert ds.X.shape[1] == n_features == len(ds.feature_names)
    assert ds.n_classes == n_classes
    assert ds.X.dtype == np.float32 and ds.y.dtype == np.int64
    assert set(np.unique(ds.y)) == set(range(n_classes))
    assert ds.image_shape == {"digits": (8, 8), "bars": (16, 16)}.get(name)


def test_splits_are_standardised_with_training_statistics_and_stratified():
    cfg = TrainConfig(dataset="blobs", n_samples=1000, probe_size=100, val_fraction=0.2)
    splits = prepare_data(cfg)
    assert np.allclose(splits.X_train.mean(0), 0, atol=1e-5)
    assert np.allclose(splits.X_train.std(0), 1, atol=1e-4)
    # validation is standardised with the *training* statistics, so not exactly 0 / 1
    raw_val = splits.X_val * splits.scale + splits.mean
    assert np.allclose(raw_val.mean(0), splits.dataset.X.mean(0), atol=0.5)
    train_share = np.bincount(splits.y_train) / len(splits.y_train)
    val_share = np.bincount(splits.y_val) / len(splits.y_val)
    assert np.allclose(train_share, val_share, atol=0.01)
    assert len(splits.y_probe) == 100
    assert np.allclose(np.bincount(splits.y_probe) / 100, val_share, atol=0.02)


def test_probe_is_a_fixed_subset_of_validation():
    cfg = TrainConfig(dataset="moons", n_samples=600, probe_size=50)
    a, b = prepare_data(cfg), prepare_data(cfg)
    assert np.array_equal(a.X_probe, b.X_probe)
    rows = {tuple(r) for r in a.X_val.tolist()}
    assert all(tuple(r) in rows for r in a.X_probe.tolist())


def test_probe_is_capped_by_the_validation_split():
    splits = prepare_data(TrainConfig(dataset="iris", probe_size=1024))
    assert len(splits.y_probe) == len(splits.y_val)


def test_data_seed_changes_the_data_and_seed_does_not():
    a = prepare_data(TrainConfig(dataset="moons", seed=0))
    b = prepare_data(TrainConfig(dataset="moons", seed=5))
    c = prepare_data(TrainConfig(dataset="moons", data_seed=5))
    assert np.array_equal(a.X_train, b.X_train)
    assert not np.array_equal(a.X_train, c.X_train)


def test_csv_with_a_named_label_column(tmp_path):
    path = tmp_path / "data.csv"
    rng = np.random.default_rng(0)
    lines = ["a,b,species"] + [
        f"{rng.normal():.3f},{rng.normal():.3f},{'cat' if i % 3 else 'dog'}" for i in range(90)
    ]
    path.write_text("\n".join(lines))
    ds = load_csv(path, "species")
    assert ds.feature_names == ("a", "b")
    assert ds.class_names == ("cat", "dog")
    splits = prepare_data(
        TrainConfig(dataset="csv", csv_path=str(path), label_column="species", probe_size=10)
    )
    assert splits.X_train.shape[1] == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,b,label\n1,2,x\n3,4,y\n", "no column 'target'"),
        ("a,target\nfoo,1\nbar,0\n", "not numeric"),
        ("a,target\n1,1\n,0\n", "missing values"),
        ("a,target\n1,1\n2,1\n", "fewer than two classes"),
        ("target\n1\n0\n", "no feature columns"),
    ],
)
def test_bad_csv_files_give_specific_errors(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_csv(path, "target")


def test_missing_csv_file():
    with pytest.raises(ValueError, match="does not exist"):
        load_csv("/nonexistent/file.csv", "y")


def test_bars_are_seeded_balanced_and_drawn_where_their_class_says() -> None:
    from nn_tracing.data_images import BAR_CLASSES, make_bars

    a, b = load_dataset("bars", n_samples=400, seed=3), load_dataset("bars", n_samples=400, seed=3)
    assert np.array_equal(a.X, b.X) and np.array_equal(a.y, b.y)
    assert not np.array_equal(a.X, load_dataset("bars", n_samples=400, seed=4).X)
    assert np.bincount(a.y).tolist() == [100] * 4
    assert a.class_names == tuple(name for name, _ in BAR_CLASSES)
    # without noise, the ink's principal axis has the class's orientation (drawn with a
    # 4-degree spread: within 15 degrees)
    X, y = make_bars(200, noise=0.0, seed=0)
    rows, cols = np.divmod(np.arange(256), 16)
    for image, label in zip(X, y, strict=True):
        w = np.clip(image, 0, None)
        r, c = (w * rows).sum() / w.sum(), (w * cols).sum() / w.sum()
        cov = np.cov(np.stack([cols - c, -(rows - r)]), aweights=w)
        _, vecs = np.linalg.eigh(cov)
        angle = np.rad2deg(np.arctan2(vecs[1, -1], vecs[0, -1])) % 180
        expected = BAR_CLASSES[label][1]
        assert min(abs(angle - expected), 180 - abs(angle - expected)) < 15, (label, angle)
        # the bar's centre of ink stays within the jitter (and the bar's own asymmetry)
        assert abs(r - 7.5) < 4.5 and abs(c - 7.5) < 4.5
    with pytest.raises(ValueError, match="at least 8 pixels"):
        make_bars(10, size=6)
