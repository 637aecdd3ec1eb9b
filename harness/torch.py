"""``harness.torch``: the base class of PyTorch model plugins (imports torch; ``import harness`` does not).

A subclass gives its network, a loss on a training batch and logits for prediction::

    class MyModel(TorchModel):
        def build(self, context):            # -> nn.Module, initialised from torch's global RNG
            ...
        def loss(self, batch):               # batch: dict of tensors on self.device, targets included
            ...                              # -> 0-d tensor
        def logits(self, inputs):            # inputs: dict of tensors, no targets
            ...                              # -> [B, T] or [B, N*Q] x classes

and ``TorchModel`` does the rest: the device (``device`` run option), ``bf16`` autocast,
``torch.compile``, the optimizer and learning-rate schedule (``harness.training``),
gradient clipping, seeding torch's global generators from the run seed and saving their
state (CPU and CUDA) with the weights, so that ``nn.Dropout`` or ``nn.init`` need no care
and a killed run resumes bit-identical on the same device. Checkpoints hold CPU-loadable
bytes (``torch.save``, read back with ``weights_only=True`` onto the CPU, then copied into
this run's device), so a GPU run resumes or evaluates on a CPU and the other way round.

Prediction runs under ``torch.inference_mode()`` with the network in ``eval()`` mode:
batch-norm layers use their running statistics, as a model deployed on one episode
would (not the statistics of the test batch). A model whose forward pass takes gradients
(``torch.func.grad``, as MetaNet's fast weights do) sets ``inference_mode = False`` and
predicts under ``torch.no_grad()``: inside inference mode torch 2.11 returned all-zero
gradients without a word (measured, CPU and CUDA; torch 2.13 returned the right ones).
"""

from __future__ import annotations

import contextlib
import io
import pickle
import re
import sys
import zipfile
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from harness import devices
from harness.episodes import EpisodeBatch, EpisodeInputs, Prediction
from harness.errors import DataError, describe, shortened
from harness.specs import ModelContext
from harness.training import check_training

STATE_FORMAT = "harness-torch/1"


class TorchModel:
    """Implements the ``Model`` protocol around a subclass's ``build``, ``loss`` and ``logits``."""

    inference_mode: bool = True
    """Predict under ``torch.inference_mode()``; ``False``: under ``torch.no_grad()``, for a forward pass that takes
    gradients itself (``torch.func.grad``)."""

    def __init__(self, context: ModelContext) -> None:
        self.context = context
        self.params = dict(context.params)
        check_training(self.params, context.model)
        self.device = devices.resolve(context.device)
        torch.manual_seed(context.seed)  # every CPU and CUDA generator
        self.module: nn.Module = self.build(context).to(self.device)
        self.optimizer = self._optimizer()
        self.scheduler = self._scheduler()
        self._compiled: Callable[..., Any] | None = torch.compile(self.module) if context.compile else None
        self._compile_checked = not context.compile
        self.compile_status = "on" if context.compile else "off"

    # -- what a subclass gives ----------------------------------------------------------

    def build(self, context: ModelContext) -> nn.Module:
        """The network; ``loss`` and ``logits`` call it through ``self.net``."""
        raise NotImplementedError

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The training loss (0-d tensor) on a batch as ``EpisodeBatch.to_torch`` gives it."""
        raise NotImplementedError

    def logits(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Scores per label, ``[*targets.shape, classes]``, from a batch's inputs alone."""
        raise NotImplementedError

    def labels(self, logits: torch.Tensor, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Label ids from ``logits``: the arg-max by default."""
        return logits.argmax(-1)

    # -- the Model protocol -------------------------------------------------------------

    @property
    def net(self) -> Callable[..., Any]:
        """The network to call: compiled where ``compile = true`` works, else ``self.module``."""
        return self._compiled or self.module

    def train_step(self, batch: EpisodeBatch) -> torch.Tensor:
        """One optimizer step; returns the loss as a detached tensor (synced only when logged)."""
        self.module.train()
        data = batch.to_torch(self.device)
        loss = self._first_compiled_call(lambda: self._autocast_call(self.loss, data))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip = float(self.params["clip_norm"])
        if clip:
            nn.utils.clip_grad_norm_(self.module.parameters(), clip)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        return loss.detach().float()

    def predict(self, inputs: EpisodeInputs) -> Prediction:
        """Label ids (and the logits as scores where they are per label), in eval mode."""
        self.module.eval()
        data = inputs.to_torch(self.device)
        with torch.inference_mode() if self.inference_mode else torch.no_grad():
            logits = self._first_compiled_call(lambda: self._autocast_call(self.logits, data))
            labels = self.labels(logits, data)
        per_label = logits.shape[-1] == inputs.settings.num_labels
        return Prediction(labels.to("cpu", torch.int64).numpy(), logits.float().cpu().numpy() if per_label else None)

    def state_dict(self) -> dict[str, Any]:
        """Weights, optimizer, schedule and torch's generator states, as ``torch.save`` bytes."""
        state = {
            "module": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }
        buffer = io.BytesIO()
        torch.save(state, buffer)
        return {"format": STATE_FORMAT, "device": str(self.device), "torch": buffer.getvalue()}

    def final_state_dict(self) -> dict[str, Any]:
        """The weights alone, for a finished run's checkpoint: enough to evaluate, not to train on."""
        buffer = io.BytesIO()
        torch.save({"module": self.module.state_dict()}, buffer)
        return {"format": STATE_FORMAT, "device": str(self.device), "torch": buffer.getvalue()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` (or ``final_state_dict``) returned, onto this model's device
        (whatever device wrote it)."""
        # Loaded onto the CPU: ``load_state_dict`` copies weights and optimizer state to this model's device, and
        # generator states (a module's extra state, say) must stay CPU tensors whatever device wrote them.
        saved = _read_weights(state)
        try:
            self.module.load_state_dict(saved["module"])
            if "optimizer" in saved:  # else weights only
                self.optimizer.load_state_dict(saved["optimizer"])
                if self.scheduler is not None and saved["scheduler"] is not None:
                    self.scheduler.load_state_dict(saved["scheduler"])
                torch.set_rng_state(saved["rng_cpu"])
                cuda = saved["rng_cuda"]
                if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
                    torch.cuda.set_rng_state_all(cuda)
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as exc:
            text = " ".join(str(exc).split())  # every line: torch names the keys that differ after the first
            raise DataError(
                f"its weights do not fit this model ({shortened(f'{type(exc).__name__}: {text}', 300)}); give a run "
                "of the same model, parameters and setting (ways, labels, image size: whatever shapes the network)"
            ) from None

    @property
    def runtime(self) -> dict[str, Any]:
        """Where and how this model ran, for the run record."""
        return {
            "device": str(self.device),
            "torch_threads": torch.get_num_threads(),
            "precision": self.context.precision,
            "compile": self.compile_status,
            "torch": torch.__version__,
        }

    # -- internals ----------------------------------------------------------------------

    def _autocast_call(self, fn: Callable[[dict[str, torch.Tensor]], torch.Tensor], data: dict) -> torch.Tensor:
        with self._autocast():
            return fn(data)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.context.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _first_compiled_call(self, call: Callable[[], torch.Tensor]) -> torch.Tensor:
        """``call()``; on the first call with ``compile = true``, fall back to eager mode if compiling fails."""
        if self._compile_checked:
            return call()
        try:
            out = call()
        except Exception as exc:  # torch.compile raises many kinds of error; eager mode decides
            reason = describe(exc)[:200]
            self.compile_status = f"failed, ran without: {reason}"
            print(f"harness: warning: torch.compile does not work for this model here ({reason}); running without it",
                  file=sys.stderr)  # fmt: skip
            self._compiled = None
            out = call()
        self._compile_checked = True
        return out

    def _optimizer(self) -> torch.optim.Optimizer:
        p = self.params
        params = list(self.module.parameters())
        lr, decay, momentum = float(p["lr"]), float(p["weight_decay"]), float(p["momentum"])
        if p["optimizer"] == "rmsprop":
            return torch.optim.RMSprop(params, lr=lr, weight_decay=decay, momentum=momentum)
        if p["optimizer"] == "sgd":
            return torch.optim.SGD(params, lr=lr, weight_decay=decay, momentum=momentum)
        return torch.optim.Adam(params, lr=lr, weight_decay=decay)

    def _scheduler(self) -> torch.optim.lr_scheduler.LRScheduler | None:
        p, steps = self.params, max(1, self.context.total_steps)
        if p["schedule"] == "step":
            every = max(1, int(p["lr_step"]) // self.context.batch_size)
            return torch.optim.lr_scheduler.StepLR(self.optimizer, every, gamma=float(p["lr_decay"]))
        if p["schedule"] == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, steps)
        return None


def _read_weights(state: Any) -> dict[str, Any]:
    """The torch state saved in a model state (``TorchModel.state_dict``), read without running anything it names:
    forged, compressed (a small file that unpacks to gigabytes) or damaged bytes are a one-line ``DataError``
    that the caller prefixes with the file."""
    data = state.get("torch") if isinstance(state, dict) else None
    if not isinstance(data, bytes):
        raise DataError("its model state holds no torch weights, as a torch model's run saves them; delete it")
    if data[:4] == b"PK\x03\x04":  # torch.save's zip format, whose entries it stores uncompressed
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                compressed = any(info.compress_type != zipfile.ZIP_STORED for info in archive.infolist())
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise DataError(f"its torch weights cannot be read ({describe(exc)}): a damaged file; delete it") from None
        if compressed:
            raise DataError(
                "its torch weights are compressed, which torch.save never does (a few megabytes could unpack to "
                "gigabytes): a forged file, refused unloaded; delete it"
            )
    try:
        saved = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # torch's own advice, to load it unsafely, is not passed on
        found = re.search(r"GLOBAL (\S+)", str(exc))
        if found is None:
            raise DataError(f"its torch weights cannot be read ({describe(exc)}): a damaged file; delete it") from None
        raise DataError(
            f"its torch weights name the global {found.group(1)}, which no run saves: a forged or foreign file, "
            "refused unloaded; delete it"
        ) from None
    except Exception as exc:  # torch raises RuntimeError, EOFError, ValueError... for bytes it cannot read
        raise DataError(f"its torch weights cannot be read ({describe(exc)}): a damaged file; delete it") from None
    if not isinstance(saved, dict) or "module" not in saved:
        raise DataError("its torch weights hold no module state, as a torch model's run saves them; delete it")
    return saved
