"""CIFAR-10 in its binary layout for train.py: `data_batch_1.bin` .. `data_batch_5.bin` and
`test_batch.bin`, records of 1 label byte and 3072 pixel bytes (R, G, B planes of 32 x 32), in a
folder or in its `cifar-10-batches-bin/` child. The real set's files hold 10,000 records each and
must match the official md5 sums; a set marked by a `SYNTHETIC` file beside them may hold any
positive number of records per file. Every error names the file.
"""
import hashlib
import os

import numpy as np

SET_DIR = "cifar-10-batches-bin"
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILE = "test_batch.bin"
SYNTHETIC_MARKER = "SYNTHETIC"
PIXELS = 3 * 32 * 32
RECORD = 1 + PIXELS
REAL_RECORDS = 10_000
# The official files' md5 sums (the CIFAR-10 binary version).
MD5 = {
    "data_batch_1.bin": "5dd7e06a14cb22eb9f671a540d1b7c25",
    "data_batch_2.bin": "5ea93a67294ea407fff1d09f752e9692",
    "data_batch_3.bin": "942cd6a4bcdd0dd3c604fbe906cb4421",
    "data_batch_4.bin": "ae636b3ba5c66a11e91e8cb52e771fcb",
    "data_batch_5.bin": "53f37980c15c3d472c316c40844f3f0d",
    "test_batch.bin": "803d5f7f4d78ea53de84dbe85f74fb6d",
}
# Per-channel mean and standard deviation of CIFAR-10's training images (pixel / 255).
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


class DataError(Exception):
    """A data folder or file that is missing, truncated or corrupt."""


def resolve_dir(path):
    """`path` when it holds the files, else `path/cifar-10-batches-bin` when that exists."""
    if not os.path.isdir(path):
        raise DataError(f"{path}: no such data folder")
    for d in (path, os.path.join(path, SET_DIR)):
        if any(os.path.exists(os.path.join(d, f)) for f in TRAIN_FILES + (TEST_FILE,)):
            return d
    raise DataError(f"{path}: holds neither CIFAR-10's binary files ({TRAIN_FILES[0]} .. {TEST_FILE}) "
                    f"nor a {SET_DIR}/ folder with them")


def _read(path, synthetic):
    """(images uint8 [N, 3, 32, 32], labels int64 [N]) of one file, checked."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: missing")
    with open(path, "rb") as f:
        raw = f.read()
    name = os.path.basename(path)
    if len(raw) == 0 or len(raw) % RECORD:
        raise DataError(f"{path}: {len(raw)} bytes is not a whole positive number of {RECORD}-byte records "
                        "(truncated or corrupt)")
    n = len(raw) // RECORD
    if not synthetic:
        if n != REAL_RECORDS:
            raise DataError(f"{path}: {n} records, CIFAR-10's files hold {REAL_RECORDS} (truncated or corrupt; "
                            f"a synthetic set needs a {SYNTHETIC_MARKER} file beside its files)")
        digest = hashlib.md5(raw).hexdigest()
        if digest != MD5[name]:
            raise DataError(f"{path}: md5 {digest}, expected {MD5[name]} (corrupt)")
    records = np.frombuffer(raw, dtype=np.uint8).reshape(n, RECORD)
    labels = records[:, 0].astype(np.int64)
    if labels.max() > 9:
        bad = int(np.argmax(labels > 9))
        raise DataError(f"{path}: record {bad} has label {labels[bad]}, labels are 0..9 (corrupt)")
    return records[:, 1:].reshape(n, 3, 32, 32).copy(), labels


def load(path, train_subset=None, test_subset=None):
    """The set in `path` (see resolve_dir) as a dict: train_x, train_y, test_x, test_y (numpy),
    dir, synthetic. The subsets keep the first N images in file order (all when N is larger)."""
    d = resolve_dir(path)
    synthetic = os.path.exists(os.path.join(d, SYNTHETIC_MARKER))
    parts = [_read(os.path.join(d, f), synthetic) for f in TRAIN_FILES]
    train_x = np.concatenate([p[0] for p in parts])
    train_y = np.concatenate([p[1] for p in parts])
    test_x, test_y = _read(os.path.join(d, TEST_FILE), synthetic)
    if train_subset is not None:
        train_x, train_y = train_x[:train_subset], train_y[:train_subset]
    if test_subset is not None:
        test_x, test_y = test_x[:test_subset], test_y[:test_subset]
    if len(train_x) < 2:
        raise DataError(f"{d}: {len(train_x)} training image(s); training needs at least 2")
    return {"train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y,
            "dir": d, "synthetic": synthetic}


def write_synthetic(dest, train, test, seed=0):
    """Writes a small learnable synthetic set in the binary layout into `dest` (with its
    SYNTHETIC marker) and returns `dest`: each class a coarse colour pattern of 8 x 8 cells plus
    pixel noise, `train` images spread over the five training files. For tests and demos."""
    if train < len(TRAIN_FILES) or test < 1:
        raise ValueError("a synthetic set needs train >= 5 and test >= 1")
    rng = np.random.default_rng(seed)
    patterns = rng.uniform(-1, 1, size=(10, 3, 4, 4))

    def records(n):
        labels = rng.integers(0, 10, size=n)
        cells = np.repeat(np.repeat(patterns[labels], 8, axis=2), 8, axis=3)
        pixels = np.clip(128 + 70 * cells + rng.uniform(-30, 30, size=cells.shape), 0, 255).astype(np.uint8)
        return np.concatenate([labels.astype(np.uint8)[:, None], pixels.reshape(n, PIXELS)], axis=1).tobytes()

    os.makedirs(dest, exist_ok=True)
    sizes = [train // len(TRAIN_FILES) + (1 if k < train % len(TRAIN_FILES) else 0) for k in range(len(TRAIN_FILES))]
    for name, n in zip(TRAIN_FILES, sizes):
        with open(os.path.join(dest, name), "wb") as f:
            f.write(records(n))
    with open(os.path.join(dest, TEST_FILE), "wb") as f:
        f.write(records(test))
    with open(os.path.join(dest, SYNTHETIC_MARKER), "w") as f:
        f.write(f'{{"train": {train}, "test": {test}, "seed": {seed}, "writer": "examples/pytorch/cifar.py"}}\n')
    return dest
