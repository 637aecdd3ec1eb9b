"""The MANN plugin's models on ``harness.torch``: ``mann``, ``lstm`` and ``feedforward`` on label sequences."""

from __future__ import annotations

import torch
from torch import nn

from harness.episodes import LabelEncoding
from harness.errors import ConfigError
from harness.specs import ModelContext
from harness.torch import TorchModel
from harness_mann.model import OPTIONS, build, decode, sequence_loss

STRING_OUTPUTS = 25
"""Five independent softmaxes over the five characters of a string label."""


class SequenceModel(TorchModel):
    """A network over (x_t, y_{t-1}) sequences: one-hot labels (softmax over N) or string labels."""

    kind = ""

    def build(self, context: ModelContext) -> nn.Module:
        """The network of ``kind`` with the run's hyperparameters."""
        settings = context.settings
        self.string = settings.labels is LabelEncoding.STRING
        channels, height, width = context.input_shape
        outputs = STRING_OUTPUTS if self.string else settings.ways
        options = {key: self.params[key] for key in OPTIONS[self.kind]}
        try:
            return build(self.kind, channels * height * width, settings.label_code_size, outputs, **options)
        except ValueError as exc:
            raise ConfigError(f"model {context.model!r}: {exc}") from None

    def logits(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """[B, T, N] (one-hot) or [B, T, 25] (string labels)."""
        return self.net(inputs["images"].flatten(2), inputs["previous_codes"])

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Cross-entropy at every step (five of them per step for string labels)."""
        return sequence_loss(self.logits(batch).float(), batch["targets"], self.string)

    def labels(self, logits: torch.Tensor, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Label ids: the arg-max, or each character's arg-max for string labels."""
        return decode(logits, self.string)


class MANNModel(SequenceModel):
    """``mann``: controller plus external memory (LRUA or NTM)."""

    kind = "mann"


class LSTMModel(SequenceModel):
    """``lstm``: the LSTM baseline."""

    kind = "lstm"


class FeedforwardModel(SequenceModel):
    """``feedforward``: the feedforward baseline."""

    kind = "feedforward"
