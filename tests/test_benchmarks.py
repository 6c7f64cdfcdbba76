"""The benchmarks' machine-readable output, from short real runs (their speed figures are not asserted).

These keep the scripts working as torch and xautodl move: a renamed profiler op or a broken reference
pipeline would otherwise show up only when someone needs the figures.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def bench(script: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def test_throughput_json_has_both_pipelines_per_cell_and_their_split(tmp_path):
    pytest.importorskip("xautodl")
    out = tmp_path / "t.json"
    done = bench("throughput.py", "--rounds", "1", "--steps", "1", "--images", "256", "--no-projection",
                 "--split", "--json", str(out))
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert set(result["cells"]) == {"conv-heavy", "light", "median"}
    for cell in result["cells"].values():
        assert cell["ours_img_s"] > 0 and cell["reference_img_s"] > 0
        assert cell["ratio"] == pytest.approx(cell["ours_img_s"] / cell["reference_img_s"], rel=0.01)
        for pipeline, part in cell["split_ms_step"].items():  # both pipelines run conv and BN kernels
            assert part["conv"] > 0 and part["bn"] > 0 and part["rest"] > 0
            step = cell["ours_ms_step" if pipeline == "ours" else "reference_ms_step"]
            assert sum(part.values()) == pytest.approx(step)
    assert result["matmul_gflops"] > 0 and result["threads"] == 1


def test_kernel_floor_splits_each_run_into_conv_bn_and_the_rest(tmp_path):
    out = tmp_path / "k.json"
    done = bench("kernel_floor.py", "--cells", "2", "--json", str(out))
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    for objective in ("supervised", "rotation"):
        for run in result["objectives"][objective]["runs"]:
            # Both kernel families are found under the profiler's names, and neither takes all the time.
            assert 0 < run["conv_s"] and 0 < run["bn_s"] and run["conv_s"] + run["bn_s"] < run["cpu_s"]
    projection = result["projection_min"]
    assert 0 < projection["conv_kernels"] < projection["conv_and_bn_kernels"] < projection["measured"]


def test_fused_benchmark_reports_each_width_against_the_seeds_alone(tmp_path):
    out = tmp_path / "f.json"
    done = bench("fused.py", "--cells", "1", "--epochs", "1", "--ks", "2", "--no-paper", "--json", str(out))
    assert done.returncode == 0, done.stderr
    rows = json.loads(out.read_text())["rows"]
    assert {(r["objective"], r["k"]) for r in rows} == {(o, k) for o in ("supervised", "rotation") for k in (1, 2)}
    for r in rows:
        assert r["speedup"] == pytest.approx(r["s_alone"] / r["s_fused"])
        assert r["trainings_per_cpu_s_fused"] == pytest.approx(r["k"] / r["s_fused"])
        assert r["speedup"] == 1.0 if r["k"] == 1 else r["s_alone"] > 0


def test_zero_cost_variants_report_has_every_variant_and_the_baselines(tmp_path):
    rows = tmp_path / "v.jsonl"
    lines = (ROOT / "benchmarks/results/zero_cost_variants.jsonl").read_text().splitlines()
    rows.write_text("\n".join(line for line in lines if json.loads(line)["index"] < 30))  # the first 30 cells
    done = bench("zero_cost_variants.py", "--report", "--out", str(rows))
    assert done.returncode == 0, done.stderr
    table = rows.with_suffix(".md").read_text().splitlines()
    assert len(table) == 2 + 11 + 2 and all("| 30 |" in line for line in table[2:])
    assert table[-2].startswith("| params") and table[-1].startswith("| ensemble")


def test_grouped_conv_compares_every_shape_three_ways():
    done = bench("grouped_conv.py", "--reps", "1", "--k", "2")
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == 8 and all(line.count("x)") == 3 for line in rows)


def test_ladder_trains_a_rung_through_the_commands_scores_it_against_the_truth_and_resumes(tmp_path):
    out, root = tmp_path / "ladder.json", tmp_path / "studies"
    args = ("--root", str(root), "--train", "--only", "d8-c8-e2-b16", "--cells", "5", "--out", str(out),
            "--override", "budget.width=4")
    done = bench("ladder.py", *args)
    assert done.returncode == 0, done.stderr
    records = [json.loads(p.read_text()) for p in (root / "d8-c8-e2-b16" / "runs").rglob("*.json")]
    assert len(records) == 20 and {r["budget"] for r in records} == {"d8-c8-e2-b16"}  # the rung's own recipe
    assert {(r["objective"], r["seed"]) for r in records} == {(o, s) for o in ("supervised", "rotation") for s in (0, 1)}
    [row] = json.loads(out.read_text())
    assert row["rung"] == "d8-c8-e2-b16" and row["experiment"] == "ladder/d8-c8-e2-b16" and row["n_cells"] == 5
    for name in ("supervised", "rotation"):
        o = row["objectives"][name]
        assert o["cpu_s"] > 0 and -1 <= o["rho"] <= 1 and o["best_summary"] is not None
    truth = __import__("pandas").read_csv(root / "d8-c8-e2-b16" / "analysis" / "correlations.csv")
    assert set(truth["reference"]) == {"nb201-cifar10"}  # scored against the built-in truth
    assert -1 <= row["params"]["rho"] <= 1 and out.with_suffix(".png").stat().st_size > 0
    assert "| d8-c8-e2-b16 | 5 | rotation |" in out.with_suffix(".md").read_text()
    stamps = {p: p.stat().st_mtime_ns for p in (root / "d8-c8-e2-b16" / "runs").rglob("*.json")}
    again = bench("ladder.py", *args)  # every run has its record: nothing is trained twice
    assert again.returncode == 0 and "nothing to train" in again.stdout + again.stderr
    assert {p: p.stat().st_mtime_ns for p in (root / "d8-c8-e2-b16" / "runs").rglob("*.json")} == stamps


def test_nb101_truth_benchmark_converts_its_synthetic_file(tmp_path):
    done = bench("nb101_truth.py", "--copies", "1", "--out", str(tmp_path / "r.md"))
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "r.md").read_text()
    assert "| 1,500 |" in text and "500 distinct hashes converted" in text


def test_stream_benchmark_reports_each_cut_per_decoder_and_the_host_ops(tmp_path):
    pytest.importorskip("skimage")
    out = tmp_path / "s.json"
    done = bench("stream.py", "--images", "16", "--rounds", "1", "--workers", "1", "--json", str(out))
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert set(result["per_worker"]["pil"]) == {"supervised, rotation, colorization (train)", "jigsaw (train)",
                                               "test view (all objectives)"}
    assert all(rate > 0 for rates in result["per_worker"].values() for rate in rates.values())
    assert result["decoders_rrc224"]["PIL (ours, default)"] > 0 and result["loader_1_workers"] > 0
    assert all(n > 1000 for n in result["host_ops_per_step"].values()) and result["mean_file_bytes"] > 1000


def test_stream_memory_benchmark_measures_each_size_in_its_own_process(tmp_path):
    out = tmp_path / "m.json"
    done = bench("stream_memory.py", "--sizes", "40", "80", "--json", str(out))
    assert done.returncode == 0, done.stderr
    rows = json.loads(out.read_text())["rows"]
    assert [r["images"] for r in rows] == [40, 80] and all(r["maxrss_mb"] > 0 for r in rows)
    assert rows[1]["listing_bytes"] > rows[0]["listing_bytes"]


def test_inmemory_path_benchmark_times_each_code_tree(tmp_path):
    out = tmp_path / "i.json"
    done = bench("inmemory_path.py", "--code", str(ROOT), "--images", "256", "--rounds", "1", "--json", str(out))
    assert done.returncode == 0, done.stderr
    table = json.loads(out.read_text())["median_cpu_s"][str(ROOT)]
    assert table["supervised"]["train_s"] > 0 and table["rotation"]["test_s"] > 0 and table["loop"]["ms_per_step"] > 0


def _tiny_folder(root, per_class: int = 12):
    """A CIFAR-like folder of random 16 px images: 10 classes, `per_class` training and 2 test images each."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), ("test", 2)):
        for c in range(10):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return root


def test_search_benchmark_costs_both_methods_and_reports_the_searches(tmp_path):
    root = _tiny_folder(tmp_path / "images")
    common = ("--data-root", str(root), "--cache", str(tmp_path / "cache"), "--images", "120", "--size", "8")
    cost = tmp_path / "cost.json"
    done = bench("search.py", "cost", *common, "--objectives", "supervised", "--width", "4", "--json", str(cost))
    assert done.returncode == 0, done.stderr
    [row] = json.loads(cost.read_text())["rows"]
    for method in ("darts", "gdas"):
        assert row[f"{method}_ratio"] == pytest.approx(row[f"{method}_epoch_cpu_s"] / row["cell_epoch_cpu_s"])
    study = tmp_path / "study"
    done = bench("search.py", "run", *common, "--study", str(study), "--grid", "gdas:supervised:0:2",
                 "darts:rotation:0:1", "--extra", "search_budget.width=4", "dataset.test_subset=0")
    assert done.returncode == 0, done.stdout + done.stderr
    out = tmp_path / "search"
    done = bench("search.py", "report", "--study", str(study), "--cost", str(cost), "--out", str(out))
    assert done.returncode == 0, done.stderr
    text = out.with_suffix(".md").read_text()
    assert "| supervised |" in text and "cpu, 2 ep | gdas | supervised | 1 |" in text and "cpu, 1 ep | darts | rotation | 1 |" in text
    assert {r["method"] for r in json.loads(out.with_suffix(".json").read_text())["searches"]} == {"darts", "gdas"}
    assert out.with_suffix(".png").stat().st_size > 0 and (tmp_path / "search_alpha.png").stat().st_size > 0
