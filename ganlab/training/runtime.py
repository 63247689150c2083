"""How a run executes: device, precision, compilation, memory layout and, under torchrun, the
process group. The loop and the wiring ask this object; objectives and checkpoints only ever see
the plain (unwrapped) networks, so a checkpoint written by 4 GPUs with compile resumes on 1 CPU.

Many processes (`torchrun --nproc_per_node=N -m ganlab train ...`): every process trains its
shard of each global batch (`dataset.batch_size` is the global batch; each process takes rows
rank::N), gradients are averaged across processes after each backward pass, and only the main
process (rank 0) writes. Decisions that stop or branch the run (NaN guard, signals, the adaptive
rule) are taken on reduced values, so every process takes the same branch.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
from torch import nn

from ganlab.errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def pick_device(name: str) -> torch.device:
    """`auto` is CUDA when present, else CPU; an unavailable device is a ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device={name!r} is not a device; use auto, cpu, cuda or cuda:N.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={name} but no CUDA device is visible; use device=auto or device=cpu.")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"device={name} but only {torch.cuda.device_count()} CUDA device(s) exist; "
                          "use device=cuda:0.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device=mps but MPS is not available here; use device=auto or device=cpu.")
    return device


@dataclass
class Runtime:
    device: torch.device
    precision: str = "fp32"  # fp32, bf16 (autocast) or fp16 (autocast and a loss scaler)
    compile: bool = False
    channels_last: bool = False
    deterministic: bool = False
    sync_batchnorm: bool = False
    fused: bool = False  # fused optimizer kernels where the optimizer has them (else torch's foreach default)
    rank: int = 0
    world_size: int = 1

    # --- processes ----------------------------------------------------------------------
    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def shard(self, tensor: torch.Tensor) -> torch.Tensor:
        """This process's rows of a global batch."""
        return tensor[self.rank::self.world_size] if self.distributed else tensor

    def average_gradients(self, net: nn.Module) -> None:
        """Mean of every gradient across processes, in one flat all-reduce (what DDP does)."""
        if not self.distributed:
            return
        grads = [p.grad for p in net.parameters() if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        torch.distributed.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum over processes (a copy; the input is untouched)."""
        if not self.distributed:
            return tensor
        total = tensor.clone()
        torch.distributed.all_reduce(total)
        return total

    def any(self, flag: bool) -> bool:
        """True on every process when it is true on one (a signal that reached one process)."""
        if not self.distributed:
            return flag
        return bool(self.sum(torch.tensor([float(flag)])).item() > 0)

    def broadcast(self, value: Any) -> Any:
        """Rank 0's `value` on every process."""
        if not self.distributed:
            return value
        holder = [value]
        torch.distributed.broadcast_object_list(holder, src=0)
        return holder[0]

    # --- execution ------------------------------------------------------------------------
    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed precision for the forward passes (losses and optimizers stay float32)."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def scaler(self) -> torch.amp.GradScaler | None:
        return torch.amp.GradScaler(self.device.type) if self.precision == "fp16" else None

    def prepare(self, net: nn.Module) -> nn.Module:
        """Put `net` in the run's form, in place where possible: SyncBatchNorm, channels_last.
        Returns what to call: the compiled module when compile is on (its weights are `net`'s)."""
        if self.sync_batchnorm and self.distributed:
            from ganlab.training.sync_batchnorm import convert_sync_batchnorm

            convert_sync_batchnorm(net)
        if self.channels_last and any(isinstance(m, nn.Conv2d) for m in net.modules()):
            net.to(memory_format=torch.channels_last)
        return torch.compile(net) if self.compile else net

    def fuse(self, optimizer: torch.optim.Optimizer, params) -> torch.optim.Optimizer:
        """`optimizer` rebuilt with fused kernels (one kernel for all parameters) when the run asks
        for them, the optimizer has them and its config did not choose fused or foreach itself."""
        options = optimizer.defaults
        if not self.fused or "fused" not in options or options.get("fused") is not None \
                or options.get("foreach") is not None:
            return optimizer
        return type(optimizer)(params, **{**options, "fused": True})

    def apply_global_settings(self, seed: int) -> None:
        """Seeds (the same on every process: shards come from one global batch) and kernel choice."""
        torch.manual_seed(seed)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = not self.deterministic
            torch.backends.cudnn.deterministic = self.deterministic
            torch.backends.cuda.matmul.allow_tf32 = self.precision != "fp32" or not self.deterministic
        if self.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)


class HostCopy:
    """A device tensor on its way to the host: the copy starts now without waiting, and `values()`
    waits only for the work queued before it started, never for work queued since (on CUDA a
    pinned buffer and an event; on CPU a plain copy). This is how the loop reads a step's value
    one step late without draining the GPU's queue."""

    def __init__(self, values: torch.Tensor):
        values = values.detach()
        if values.device.type == "cuda":
            self.host = torch.empty(values.shape, dtype=values.dtype, pin_memory=True)
            self.host.copy_(values, non_blocking=True)
            self.done = torch.cuda.Event()
            self.done.record()
        else:
            self.host, self.done = values.clone(), None

    def values(self) -> list[float]:
        if self.done is not None:
            self.done.synchronize()
        return self.host.tolist()


def unwrap(net: nn.Module) -> nn.Module:
    """The plain module behind compile or DDP wrappers (what checkpoints store)."""
    while hasattr(net, "_orig_mod") or hasattr(net, "module"):
        net = getattr(net, "_orig_mod", None) or net.module
    return net


def build_runtime(device: torch.device, precision: str = "auto", compile: bool | str = "auto",
                  channels_last: bool | str = "auto", deterministic: bool = False,
                  sync_batchnorm: bool = False, fused: bool | str = "auto") -> Runtime:
    """The `runtime` config group's settings, `auto` resolved for `device`; under torchrun also
    the process group (gloo on CPU, nccl on CUDA)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"runtime.precision={precision!r} is not known; use {', '.join(PRECISIONS)}.")
    cuda = device.type == "cuda"
    if precision == "auto":
        precision = "bf16" if cuda and torch.cuda.is_bf16_supported() else "fp32"
    if precision == "fp16" and not cuda:
        raise ConfigError("runtime.precision=fp16 needs a CUDA device (fp16 on CPU is slow and lossy); use bf16, "
                          "which also runs on CPU, or fp32.")
    for key, value in (("compile", compile), ("channels_last", channels_last), ("fused", fused)):
        if value not in ("auto", True, False):
            raise ConfigError(f"runtime.{key}={value!r} must be true, false or auto.")
    rank, world = init_processes(device)
    return Runtime(device, precision, compile=compile is True, channels_last=cuda if channels_last == "auto"
                   else bool(channels_last), deterministic=bool(deterministic),
                   sync_batchnorm=bool(sync_batchnorm), fused=cuda if fused == "auto" else bool(fused),
                   rank=rank, world_size=world)


def launched_processes() -> int:
    """How many processes torchrun started for this run (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Rank 0 (or the only process): the one that writes, before a Runtime exists."""
    return int(os.environ.get("RANK", "0")) == 0


class StopRequest:
    """The signal (SIGINT / SIGTERM) that asked the run to stop, or None."""

    signum: int | None = None


@contextlib.contextmanager
def stop_requests(announce: Callable[[int], None]) -> Iterator[StopRequest]:
    """While training: SIGINT / SIGTERM only record a request (and `announce(signum)`), so that the
    loop finishes its step and saves before it stops. The previous handlers come back afterwards."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield request
        return

    def record(signum, _frame):
        request.signum = signum
        announce(signum)

    previous = {sig: signal.signal(sig, record) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield request
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def init_processes(device: torch.device) -> tuple[int, int]:
    """(rank, world size) from torchrun's environment, joining the process group once."""
    if launched_processes() <= 1:
        return 0, 1
    import torch.distributed as dist

    join_processes()
    return dist.get_rank(), dist.get_world_size()


def join_processes() -> None:
    """Join torchrun's process group (once): gloo for CPU tensors, NCCL for CUDA ones when there is a GPU."""
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo")


def leave_processes() -> None:
    """Leave torchrun's process group after a run that finished. Without it gloo's worker threads
    can outlive the interpreter, and a process aborts at exit ("terminate called without an active
    exception"). Only on success: a rank that failed may leave others inside a collective, where
    this call would wait for them forever."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()  # every rank is done with its collectives before any tears its connections down
        dist.destroy_process_group()
