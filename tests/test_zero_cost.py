"""Training-free objectives: scores on networks small enough to work out by hand, every ReLU counted,
and the train and correlate commands end to end with scoring objectives beside a trained one."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch
from torch import nn

from analysis.tables import kind_of
from study.spaces.nb201.network import Trunk
from study.objectives import list_objectives
from study.objectives.base import objective_class
from study.objectives.zero_cost import JACOB_EPS, grad_norm, jacob_cov, naswot, relu_kernel, snip, synflow
from study.spaces import get_space


def linear(weight: list[list[float]]) -> nn.Linear:
    layer = nn.Linear(len(weight[0]), len(weight), bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
    return layer


# NASWOT ------------------------------------------------------------------------------------------------

def test_naswot_of_known_codes_is_the_log_det_of_the_hamming_kernel():
    # Identity then ReLU: the codes are the signs of the inputs, (1,1), (1,0), (0,0); N_A = 2 and the
    # Hamming distances are 1, 2, 1, so K = [[2,1,0],[1,2,1],[0,1,2]] with determinant 2*3 - 1*2 = 4.
    model = nn.Sequential(linear([[1.0, 0.0], [0.0, 1.0]]), nn.ReLU())
    x = torch.tensor([[1.0, 2.0], [3.0, -1.0], [-1.0, -5.0]])
    assert relu_kernel(model, x).tolist() == [[2, 1, 0], [1, 2, 1], [0, 1, 2]]
    assert naswot(model, x) == pytest.approx(math.log(4.0))


def test_naswot_is_minus_infinity_when_two_images_share_every_code():
    model = nn.Sequential(linear([[1.0, 0.0], [0.0, 1.0]]), nn.ReLU())
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])  # both (1, 1): K = [[2, 2], [2, 2]] is singular
    assert naswot(model, x) == -math.inf


def test_naswot_counts_a_relu_module_once_per_call_and_sees_its_input_before_an_inplace_relu():
    relu = nn.ReLU(inplace=True)
    model = nn.Sequential(linear([[1.0, 0.0], [0.0, 1.0]]), relu, nn.Identity(), relu)
    x = torch.tensor([[1.0, 2.0], [3.0, -1.0], [-1.0, -5.0]])
    assert relu_kernel(model, x).tolist() == [[4, 2, 0], [2, 4, 2], [0, 2, 4]]  # two calls: twice the kernel


def relu_units(cell_str: str, c: int, n: int, size: int) -> int:
    """ReLU inputs of the per-edge NAS-Bench-201 network, counted from the skeleton by hand."""
    convs = sum(op.startswith("nor_conv") for op in get_space("nb201").parse(cell_str).edges)
    total = 0
    for stage in range(3):
        width, side = c * 2 ** stage, size // 2 ** stage
        if stage:  # reduction: ReLU before the stride-2 conv (input size), then before the second conv
            total += (width // 2) * (2 * side) ** 2 + width * side ** 2
        total += n * convs * width * side ** 2  # one ReLU per conv edge of every cell
    return total + 4 * c * (size // 4) ** 2  # the final BN-ReLU


@pytest.mark.parametrize("cell", [
    "|nor_conv_3x3~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|avg_pool_3x3~2|",
    "|avg_pool_3x3~0|+|skip_connect~0|none~1|+|nor_conv_1x1~0|none~1|skip_connect~2|"])
def test_naswot_counts_every_relu_unit_of_an_nb201_network(cell):
    # The diagonal of K is N_A, the number of ReLU units: node ReLUs shared by several conv edges count
    # once per edge (one ReLU per ReLU-Conv-BN), as in the reference network.
    trunk = Trunk(get_space("nb201").parse(cell), 3, 4, 2, fused=objective_class("naswot").fused)
    kernel = relu_kernel(trunk, torch.randn(3, 3, 16, 16))
    assert kernel.diagonal().tolist() == [relu_units(cell, 4, 2, 16)] * 3


# synflow ------------------------------------------------------------------------------------------------

def test_synflow_of_a_linear_chain_is_depth_times_the_product_of_absolute_weights():
    # With all-ones input, R = prod |w|; each weight's |w dR/dw| is R, so the score is 3 R for 3 layers.
    # The BN between them is skipped, and the caller's weights keep their signs.
    model = nn.Sequential(linear([[-2.0]]), nn.BatchNorm1d(1), linear([[3.0]]), nn.ReLU(), linear([[-0.5]]))
    before = [p.detach().clone() for p in model.parameters()]
    assert synflow(model, (1,)) == pytest.approx(3 * 2.0 * 3.0 * 0.5)
    assert all(torch.equal(a, p) and p.dtype == torch.float32 for a, p in zip(before, model.parameters()))


def test_synflow_of_a_wide_chain_sums_the_flow_through_every_path():
    # R = 1^T |W2| |W1| 1 = [2, 1] . [1+3, 4+0] = 12; both layers carry R each: 24.
    model = nn.Sequential(linear([[1.0, -3.0], [-4.0, 0.0]]), linear([[2.0, -1.0]]))
    assert synflow(model, (2,)) == pytest.approx(24.0)


def test_synflow_runs_in_float64_where_float32_would_overflow():
    model = nn.Sequential(*[linear([[100.0]]) for _ in range(30)])  # R = 1e60 > float32's 3.4e38
    assert synflow(model, (1,)) == pytest.approx(30 * 1e60, rel=1e-9)


# jacob_cov ----------------------------------------------------------------------------------------------

def test_jacob_cov_of_a_linear_map_sees_identical_jacobians():
    # Every image's Jacobian is W^T 1: the correlation matrix is all ones, eigenvalues B and B-1 zeros.
    b, k = 5, JACOB_EPS
    model = linear([[1.0, 2.0, 0.0, -1.0], [0.5, 0.0, 3.0, 1.0]])
    expected = -((math.log(b + k) + 1 / (b + k)) + (b - 1) * (math.log(k) + 1 / k))
    assert jacob_cov(model, torch.randn(b, 4)) == pytest.approx(expected, rel=1e-6)


class HalfSquare(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * x / 2).sum(1, keepdim=True)  # Jacobian of image i is x_i itself


def test_jacob_cov_of_uncorrelated_jacobians_is_its_maximum():
    # Rows with mean 0 and dot product 0: the correlation matrix is I, every eigenvalue is 1.
    x = torch.tensor([[1.0, -1.0, 1.0, -1.0], [1.0, 1.0, -1.0, -1.0]])
    expected = -2 * (math.log(1 + JACOB_EPS) + 1 / (1 + JACOB_EPS))
    assert jacob_cov(HalfSquare(), x) == pytest.approx(expected)
    assert expected > jacob_cov(linear([[1.0, 2.0, 0.0, -1.0]]), x)  # decorrelated beats identical


# labelled baselines -------------------------------------------------------------------------------------

def test_snip_and_grad_norm_of_one_logistic_unit():
    # logits (a x, b x), label 0: dL/dw = (p0 - 1, p1) x with p = softmax; p0 - 1 = -p1.
    a, b, x = 1.0, -2.0, 1.5
    p1 = math.exp(b * x) / (math.exp(a * x) + math.exp(b * x))
    model = linear([[a], [b]])
    inputs, labels = torch.tensor([[x]]), torch.tensor([0])
    assert snip(model, inputs, labels) == pytest.approx(abs(a) * p1 * x + abs(b) * p1 * x, rel=1e-5)
    assert grad_norm(model, inputs, labels) == pytest.approx(math.sqrt(2) * p1 * x, rel=1e-5)


# registry and analysis ----------------------------------------------------------------------------------

def test_training_free_objectives_are_registered_and_marked_in_the_analysis():
    free = {n for n in list_objectives() if not objective_class(n).trains}
    assert free == {"naswot", "synflow", "jacob_cov", "snip", "grad_norm", "fisher", "grasp", "plain", "epe_nas",
                    "l2_norm", "zen"}
    assert {n for n in free if objective_class(n).uses_labels} == {"snip", "grad_norm", "fisher", "grasp", "plain",
                                                                   "epe_nas"}
    assert kind_of("naswot", "supervised") == "training-free"
    assert kind_of("snip", "supervised") == "training-free, labels"
    assert kind_of("rotation", "supervised") == "objective"


# the commands -------------------------------------------------------------------------------------------

def records(study, objective: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((study / "runs" / objective).rglob("*.json"))]


@pytest.mark.slow
def test_scoring_objectives_through_train_and_correlate(cli, tmp_path):
    study = tmp_path / "s"
    assert cli("study.sample", "n=3", f"study_dir={study}").returncode == 0
    done = cli("study.train", "-m", "objective=naswot,synflow,snip", "budget=tiny", f"study_dir={study}")
    assert done.returncode == 0, done.stderr
    for name in ("naswot", "synflow", "snip"):
        recs = records(study, name)
        assert len(recs) == 3 and all(r["status"] == "complete" for r in recs)
        assert all(math.isfinite(r["score"]) and r["test_acc_best"] is None and r["params"] > 0 for r in recs)
        assert all(r["uses_labels"] == (name == "snip") for r in recs)
    stamps = {p: p.stat().st_mtime_ns for p in (study / "runs").rglob("*.json")}
    again = cli("study.train", "-m", "objective=naswot,synflow,snip", "budget=tiny", f"study_dir={study}")
    assert again.returncode == 0 and (again.stderr + again.stdout).count("nothing to train") == 3
    assert {p: p.stat().st_mtime_ns for p in (study / "runs").rglob("*.json")} == stamps
    assert cli("study.train", "objective=supervised", "budget=tiny", f"study_dir={study}").returncode == 0
    done = cli("analysis.correlate", "reference=supervised", f"study_dir={study}", "bootstrap=20",
               "permutations=20", "trials=20")
    assert done.returncode == 0, done.stderr
    corr = pd.read_csv(study / "analysis" / "correlations.csv").set_index("objective")
    assert corr.loc["naswot", "kind"] == "training-free" and corr.loc["snip", "kind"] == "training-free, labels"
    assert (corr.loc[["naswot", "synflow", "snip"], "n_cells"] == 3).all()
    table = pd.read_csv(study / "analysis" / "cells.csv").set_index("cell_id")  # scores are the values
    by_cell = {r["cell_id"]: r["score"] for r in records(study, "naswot")}
    assert table["naswot"].to_dict() == pytest.approx(by_cell)


def test_synflow_is_the_same_on_the_fused_and_the_per_edge_cell():
    # The last cell's output node has one conv input: in the fused cell it is a slice of a stacked conv, which
    # the final ReLU (in place) must not write into once BN is skipped.
    cell = get_space("nb201").parse("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|nor_conv_1x1~2|")
    torch.manual_seed(0)
    plain = Trunk(cell, 3, 4, 1, fused=False)
    fused = Trunk(cell, 3, 4, 1, fused=True)
    fused.load_state_dict({k: v for k, v in plain.state_dict().items() if "layers" not in k}, strict=False)
    for ours, theirs in zip(fused.layers, plain.layers):
        ours.load_from(theirs) if hasattr(ours, "load_from") else ours.load_state_dict(theirs.state_dict())
    assert synflow(fused, (3, 16, 16)) == pytest.approx(synflow(plain, (3, 16, 16)), rel=1e-9)


@pytest.mark.slow
def test_benchmark_writes_its_table_and_resumes(tmp_path):
    import subprocess
    import sys

    from study.spaces import draw
    from tests.conftest import ROOT
    from tests.image_fixtures import write_tiny_folder

    write_tiny_folder(tmp_path / "images", {"train": 6})
    archs = [c.to_str() for c in draw("nb201", 3, seed=0)]
    pd.DataFrame({"arch": archs, "cifar10_test": [90.0, 80.0, 85.0]}).to_csv(tmp_path / "truth.csv", index=False)
    args = [sys.executable, str(ROOT / "benchmarks" / "zero_cost.py"), "--cells", "3", "--batch", "8",
            "--workers", "1", "--bootstrap", "10", "--width", "4", "--depth", "1", "--data-root", str(tmp_path / "images"),
            "--truth", str(tmp_path / "truth.csv"), "--out", str(tmp_path / "out")]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    rows = (tmp_path / "out" / "zero_cost.jsonl").read_text().splitlines()
    assert sorted(json.loads(r)["index"] for r in rows) == [0, 1, 2]
    table = json.loads((tmp_path / "out" / "zero_cost.json").read_text())["scores"]
    assert set(table) == {"naswot", "synflow", "jacob_cov", "snip", "grad_norm", "params"}
    assert all(table[s]["cpu_s_mean"] > 0 and table[s]["n_cells"] == 3 for s in table if s != "params")
    assert "| naswot | no |" in (tmp_path / "out" / "zero_cost.md").read_text()
    again = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and (tmp_path / "out" / "zero_cost.jsonl").read_text().splitlines() == rows
