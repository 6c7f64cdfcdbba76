"""Where a run computes: device and precision, threads, and the GPU each task of a job trains on.

`device=auto|cpu|cuda[:k]` and `precision=auto|fp32|bf16` resolve here, once per command; workers set
their threads and current device here; a job of several tasks (one per GPU, conf/hydra/launcher/gpus.yaml)
pins each task to its own GPU here before anything in the process initialises CUDA.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, MutableMapping

from study.errors import UserError
from study.spaces import NetShape

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


PRECISIONS = ("auto", "fp32", "bf16")


def autocast(device: torch.device, precision: str = "auto") -> torch.autocast:
    """Mixed precision for the forward pass: bf16 autocast or plain fp32.

    `auto` is bf16 on CUDA (tensor cores; same exponent range as fp32, so no loss scaling) and fp32 on CPU,
    where bf16 pays off only on CPUs with AMX and wide layers (benchmarks/throughput.py --precision bf16)
    and costs time on small ones. Parameters, optimiser state and BN statistics stay fp32 either way.
    """
    import torch

    enabled = compute_precision(precision, device.type) == "bf16"
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def strict_fp32(device_type: str, precision: str) -> None:
    """Make fp32 mean fp32 on CUDA: no TF32 (10-bit mantissa) in convolutions and matmuls when fp32 is asked.

    cuDNN convolutions use TF32 by default on Ampere and later, so `precision=fp32` would otherwise be a
    third, unrecorded precision. Process-wide flags; set before each training. Other precisions: untouched.
    """
    if device_type != "cuda" or compute_precision(precision, device_type) != "fp32":
        return
    import torch

    if hasattr(torch.backends.cudnn, "conv") and hasattr(torch.backends.cudnn.conv, "fp32_precision"):
        # torch >= 2.9: the new API; mixing it with the allow_tf32 flags raises.
        torch.backends.cuda.matmul.fp32_precision = "ieee"
        torch.backends.cudnn.conv.fp32_precision = "ieee"
    else:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False


def compute_precision(precision: str, device_type: str) -> str:
    """What `precision` means on a device type: "bf16" or "fp32" (`auto`: bf16 on CUDA, fp32 elsewhere)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return "bf16" if device_type == "cuda" else "fp32"
    return precision


def configure_threads(threads: int) -> None:
    """Fix torch's intra-op threads (and one inter-op thread) for this process."""
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process (inline runs after an earlier command)
        pass


def configure_device(device: str) -> None:
    """Make a CUDA device this process's current one, so kernels and allocations never land on GPU 0."""
    import torch

    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))


def resolve_precision(value: str, device: str) -> str:
    """`auto` -> bf16 on CUDA, fp32 on CPU; fp32 and bf16 as given (bf16 on CPU is fast only with AMX)."""
    import torch

    if value not in PRECISIONS:
        raise UserError(f"precision {value!r} is not one of {', '.join(PRECISIONS)}; use precision=auto")
    return compute_precision(value, torch.device(device).type)


def resolve_device(value: str) -> str:
    """`auto` -> cuda when available, else cpu; anything else must be a device torch knows."""
    import torch

    if value == "auto":
        if torch.cuda.is_available():
            return "cuda"
        allocated = gpus_allocated(os.environ)
        if allocated:  # a GPU job that would quietly train fp32 on the CPU, hours instead of minutes
            _warn_once(f"WARNING: device=auto trains on the CPU: {allocated} but torch {torch.__version__} "
                       f"(CUDA build {torch.version.cuda}) cannot use a GPU; check the driver and the torch build, "
                       "or set device=cpu to train on the CPU deliberately")
        return "cpu"
    try:
        device = torch.device(value)
    except (RuntimeError, TypeError):
        raise UserError(f"device {value!r} is not a torch device; use device=cpu, device=cuda or device=auto") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"device={value} but torch {torch.__version__} (CUDA build {torch.version.cuda}) sees no CUDA "
                            "GPU it can use; use device=cpu, or check the driver and the torch build")
        check_gpu_index(device.index, torch.cuda.device_count())
    return value


def check_gpu_index(index: int | None, count: int) -> None:
    """Refuse `device=cuda:k` for a GPU this process cannot see."""
    if index is not None and not 0 <= index < count:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        where = f" (CUDA_VISIBLE_DEVICES={visible}: indices count within that list)" if visible is not None else ""
        raise UserError(f"device=cuda:{index} but {count} GPU(s) are visible{where}; "
                        f"use device=cuda:0..{count - 1} or device=cuda")


def gpus_allocated(env: dict[str, str] | os._Environ) -> str:
    """Which variable says this process was given a GPU ('' if none does)."""
    for key in ("SLURM_STEP_GPUS", "SLURM_JOB_GPUS", "CUDA_VISIBLE_DEVICES"):
        value = env.get(key, "").strip()
        if value and value not in ("-1", "NoDevFiles"):
            return f"{key}={value}"
    return ""


@functools.lru_cache(maxsize=None)  # once per process, though every sweep value is checked
def _warn_once(message: str) -> None:
    log.warning("%s", message)


def fuse_auto(device_type: str, shape: NetShape) -> int:
    """`fuse=auto`: how many seeds of a cell train side by side as one network, from measured cost.

    CPU: grouped convolutions pay only while the network's calls are small, so 2 seeds up to the default
    network's size (8 px, C=8: 512 activations per image in the first stage) and 1 above it; 3 or more gained
    nothing there (measured by benchmarks/fused.py, results in benchmarks/results/fused.md and
    docs/performance.md). A GPU leaves most of itself idle for one small network: 4, not yet measured
    (benchmarks/gpu_check.sh measures it).
    """
    if device_type == "cuda":
        return 4
    return 2 if shape.image_size ** 2 * shape.width <= 512 else 1


@dataclass(frozen=True)
class Slot:
    """This process's place in the job: task rank and count (one task unless a job runs several)."""

    rank: int = 0
    tasks: int = 1
    local_rank: int = 0


def current_slot() -> Slot:
    """The slot of this process in a submitit job (SLURM or local), or the only slot outside one."""
    try:
        import submitit

        env = submitit.JobEnvironment()
    except (ImportError, RuntimeError):  # not inside a submitit job: a plain run
        return Slot()
    return Slot(env.global_rank, env.num_tasks, env.local_rank)


def pinned_device(device: str, slot: Slot, gpu_count: int) -> str:
    """One GPU per task when a job runs several tasks: task k uses cuda:k (wrapping around)."""
    if slot.tasks > 1 and device == "cuda" and gpu_count > 0:
        return f"cuda:{slot.local_rank % gpu_count}"
    return device


VISIBLE_ENV = "STUDY_VISIBLE_GPUS"  # the user's CUDA_VISIBLE_DEVICES, kept for the tasks of a local job


def remember_visible_gpus(env: MutableMapping[str, str] = os.environ) -> None:
    """Keep the user's GPU list where submitit's local executor will not overwrite it.

    That executor exports CUDA_VISIBLE_DEVICES=0..n-1 to its tasks whatever the user chose, so
    `CUDA_VISIBLE_DEVICES=2,3` would train on GPUs 0 and 1; `pin_visible_gpus` restores the choice.
    """
    if "CUDA_VISIBLE_DEVICES" in env:
        env[VISIBLE_ENV] = env["CUDA_VISIBLE_DEVICES"]
    else:
        env.pop(VISIBLE_ENV, None)


def task_visible_gpus(slot: Slot, env: MutableMapping[str, str]) -> str | None:
    """CUDA_VISIBLE_DEVICES for this task of a local submitit job (None: leave it as it is).

    One task: the user's whole list. Several: task k gets the k-th entry (wrapping around), its own GPU.
    SLURM jobs are left alone: SLURM sets each task's GPUs itself.
    """
    if env.get("SUBMITIT_EXECUTOR") != "local" or VISIBLE_ENV not in env:
        return None
    entries = [e.strip() for e in env[VISIBLE_ENV].split(",") if e.strip()]
    if slot.tasks > 1 and entries:
        return entries[slot.local_rank % len(entries)]
    return ",".join(entries)


def pin_visible_gpus(slot: Slot, env: MutableMapping[str, str] = os.environ) -> None:
    """Give this task its GPUs of the user's list; must run before anything in the process initialises CUDA."""
    value = task_visible_gpus(slot, env)
    if value is not None and env.get("CUDA_VISIBLE_DEVICES") != value:
        env["CUDA_VISIBLE_DEVICES"] = value


def gpu_count() -> int:
    """GPUs visible to this process (at least 1, so a preset sized by it still runs one task)."""
    import torch

    return max(1, torch.cuda.device_count())


def visible_gpu_count() -> int:
    """GPUs visible to this process, 0 on a machine without any."""
    import torch

    return torch.cuda.device_count()


def cpu_count(env: MutableMapping[str, str] | None = None, cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """Cores this process may use: its affinity mask (taskset, or SLURM where it binds tasks to cores),
    capped by a SLURM allocation (SLURM_CPUS_PER_TASK, set whether or not SLURM binds) and by a cgroup CPU
    quota (containers), so that `workers=auto` never oversubscribes what the job was given."""
    env = os.environ if env is None else env
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    for limit in (_slurm_cpus(env), _cgroup_cpus(cgroup)):
        if limit is not None:
            cores = min(cores, limit)
    return max(1, cores)


def auto_threads(cores: int, workers: int, env: MutableMapping[str, str] | None = None) -> int:
    """`threads=auto` on a CPU: one torch thread per worker process, except in a SLURM job, whose cores are its
    own: there the cores the workers leave idle are shared out among them.

    Measured (`python benchmarks/threads.py`, docs/performance.md): a single tiny search on 2 cores took 17 s at
    2 threads and 19 s at 1 on a quiet machine, but 78 s at 2 threads and 26 s at 1 beside two busy processes
    (threads that wait spin on cores others need; OpenMP's passive wait made it 49 s, and the quiet case 52 s).
    """
    env = os.environ if env is None else env
    return max(1, cores // max(1, workers)) if env.get("SLURM_JOB_ID") else 1


def _slurm_cpus(env: MutableMapping[str, str]) -> int | None:
    """CPUs per task of the SLURM job this process runs in (None outside one or when not stated)."""
    value = env.get("SLURM_CPUS_PER_TASK", "") if env.get("SLURM_JOB_ID") else ""
    return int(value) if value.isdigit() and int(value) > 0 else None


def _cgroup_cpus(root: Path) -> int | None:
    """Whole CPUs of a cgroup quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us`), rounded down; None when unlimited."""
    try:
        if (root / "cpu.max").is_file():
            quota, period = (root / "cpu.max").read_text().split()[:2]
        else:
            v1 = root / "cpu"
            quota, period = ((v1 / f"cpu.cfs_{k}_us").read_text().strip() for k in ("quota", "period"))
        if quota in ("max", "-1") or int(period) <= 0:
            return None
        return max(1, int(quota) // int(period))
    except (OSError, ValueError):
        return None
