"""Training sets made of the validation families, for experiments that ask what a family
teaches: the in-family ceiling and training that leaves one family out.

`nhpipe make-dataset` puts every region of a validation family (``fractal``, ``mhd``) in
its ``val`` split, since no shipped network trains on it. Two experiments need more:

- ``split``: a validation-family file made into a training file, its regions split by
  position (the first in ``train``, the last ``--val`` in ``val`` for ``--keep-best`` and
  ``nhpipe calibrate``, ``test`` empty). A network trained on it and scored on a file of
  the same family made with another seed says how far training on that very family gets:
  an upper bound for training on other clouds, not a shipped model. ``mhd`` regions are all
  views of one snapshot, so there the bound is optimistic.
- ``merge``: training files joined split by split (``train`` with ``train``, ``val`` with
  ``val``, ``test`` with ``test``), e.g. our clouds and one validation family, to train a
  network that leaves the other family out and is scored on it.

docs/experiments/in_family.md has the commands and the results.

    python benchmarks/family_sets.py split runs/fr_raw.h5 runs/fr_train.h5 --val 120
    python benchmarks/family_sets.py merge runs/clouds_fractal.h5 data/clouds.h5 \
        runs/fr_train.h5
"""

import argparse
import json

import h5py
import numpy as np

from nhpipe._write import atomic_path, check_output_path
from nhpipe.data import SPLITS


def split_family(src, dst, n_val: int) -> dict:
    """Copy the ``val`` split of ``src`` into ``dst`` as train (all but the last
    ``n_val`` regions) and val (the last ``n_val``); attributes kept. Returns the sizes."""
    with h5py.File(src, "r") as a:
        n = len(a["val"]["cube"])
        if not 0 < n_val < n:
            raise SystemExit(f"--val must lie between 1 and {n - 1} for {n} regions")
        rows = {"train": slice(0, n - n_val), "val": slice(n - n_val, n), "test": slice(0, 0)}
        return _write(dst, dict(a.attrs), {split: [(a["val"], rows[split])]
                                           for split in SPLITS})


def merge_sets(dst, sources) -> dict:
    """Join the splits of several data sets (same format) into ``dst``; its recipe lists
    theirs under ``parts`` and keeps the first one's observation. Returns the sizes."""
    files = [h5py.File(src, "r") for src in sources]
    try:
        recipes = [json.loads(f.attrs["recipe"]) for f in files]
        attrs = dict(files[0].attrs)
        attrs["family"] = "+".join(str(f.attrs["family"]) for f in files)
        attrs["recipe"] = json.dumps({"family": attrs["family"], "parts": recipes,
                                      "observation": recipes[0].get("observation")})
        return _write(dst, attrs, {split: [(f[split], slice(None)) for f in files]
                                   for split in SPLITS})
    finally:
        for f in files:
            f.close()


def _write(dst, attrs: dict, parts: dict) -> dict:
    """Write ``dst`` (must not exist; atomically, as nhpipe writes its data sets): each
    split the concatenation of its (group, rows) parts, every dataset with its dtype and
    attributes."""
    dst = check_output_path(dst)
    with atomic_path(dst) as tmp, h5py.File(tmp, "w") as b:
        b.attrs.update(attrs)
        for split, pieces in parts.items():
            out = b.create_group(split)
            for name, ds in pieces[0][0].items():
                data = np.concatenate([group[name][rows] for group, rows in pieces])
                out.create_dataset(name, data=data, dtype=ds.dtype).attrs.update(
                    dict(ds.attrs))
        return {split: len(b[split]["cube"]) for split in SPLITS}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    split = sub.add_parser("split", help="a validation family as a training file")
    split.add_argument("src", help="a validation-family file from nhpipe make-dataset")
    split.add_argument("dst", help="the training file to write (must not exist)")
    split.add_argument("--val", type=int, default=120, help="regions kept for val")
    merge = sub.add_parser("merge", help="training files joined split by split")
    merge.add_argument("dst", help="the file to write (must not exist)")
    merge.add_argument("sources", nargs="+", help="data sets to join")
    args = parser.parse_args()
    if args.command == "split":
        print(args.dst, split_family(args.src, args.dst, args.val))
    else:
        print(args.dst, merge_sets(args.dst, args.sources))


if __name__ == "__main__":
    main()
