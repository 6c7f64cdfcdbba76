"""NAS-Bench-201's own accuracies of its cells and the searches published on them: facts of the space.

`data/nb201-accuracy.csv.gz` (see data/NOTICE.md) holds, for each of the 15,625 cells, its benchmark
index and its 200-epoch test accuracy on CIFAR-10, CIFAR-100 and ImageNet16-120 (seed means, percent).
A search judges the cell it derives here the moment it derives it; `analysis.truth` reads the same table.
"""

from __future__ import annotations

from pathlib import Path

from study.spaces.benchmark import Benchmark, Published

NB201 = Benchmark(
    name="NAS-Bench-201 (NATS-Bench tss, 200 epochs, seed mean)",
    file=Path(__file__).resolve().parent / "data" / "nb201-accuracy.csv.gz",
    columns={"cifar10_test": "nb201-cifar10", "cifar100_test": "nb201-cifar100",
             "imagenet16_120_test": "nb201-imagenet16-120"},
    labels={"nb201-cifar10": "CIFAR-10", "nb201-cifar100": "CIFAR-100", "nb201-imagenet16-120": "ImageNet16-120"},
    main="nb201-cifar10",
    index_name="nb201_index",
    # NAS-Bench-201 paper (Dong & Yang, ICLR 2020), table 5: CIFAR-10 test accuracy of the cell each search found.
    published=(Published("DARTS-V1 (supervised, 50 epochs)", 54.30, 0.00),
               Published("GDAS (supervised, 250 epochs)", 93.51, 0.13),
               Published("RSPS (random sampling + parameter sharing)", 87.66, 1.69),
               Published("a random cell (mean of all 15,625)", 87.06),
               Published("the optimum", 94.37)),
    published_setting="NAS-Bench-201 paper: searches on a GPU at C=16, N=5, 32 px, 25k / 25k CIFAR-10 images",
    notes={"what_ranks": "What ranks NAS-Bench-201 cells at what CPU cost is measured in docs/ladder.md."},
)
TRUTH_FILE = NB201.file
COLUMNS = NB201.columns
