"""Recurrent networks for clinical time series (ICU vital signs and lab values, one row per time step).

Each maps ``(series, mask=None, delta=None, static=None)`` (see ``medai.models.series``) to outputs of shape
(batch, n_outputs): class logits, or standardised regression targets when wrapped in a regression ``SeriesModel``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medai.models.registry import NETWORKS
from medai.models.series import OutputHead, check_network_args, series_inputs


class _RecurrentNetwork(nn.Module):
    """An ``nn.LSTM`` or ``nn.GRU`` over the series (plus mask and delta on request); its last layer's final state
    feeds the output head."""

    name = ""
    rnn_class: type[nn.RNNBase] = nn.GRU

    def __init__(self, n_features, n_outputs, n_static, hidden, num_layers, dropout, use_mask, use_delta):
        super().__init__()
        check_network_args(
            self.name, n_features=n_features, n_outputs=n_outputs, n_static=n_static, hidden=hidden,
            num_layers=num_layers, dropout=dropout,
        )  # fmt: skip
        self.n_features, self.n_outputs, self.n_static = n_features, n_outputs, n_static
        self.use_mask, self.use_delta = bool(use_mask), bool(use_delta)
        width = n_features * (1 + self.use_mask + self.use_delta)
        between = dropout if num_layers > 1 else 0.0
        self.rnn = self.rnn_class(width, hidden, num_layers, batch_first=True, dropout=between)
        self.head = OutputHead(hidden, n_static, n_outputs, dropout)

    def forward(self, series, mask=None, delta=None, static=None) -> torch.Tensor:
        inputs = series_inputs(
            self.name, self.n_features, series, mask, delta, use_mask=self.use_mask, use_delta=self.use_delta
        )  # (batch, time, width)
        _, state = self.rnn(inputs)  # (layers, batch, hidden), for an LSTM paired with its cell state
        final = state[0] if isinstance(state, tuple) else state
        return self.head(final[-1], static)  # (batch, n_outputs)


@NETWORKS.register(
    "stacked_lstm",
    modality="series",
    description="Three LSTM layers of 64 units, the last one's final state into a dense output.",
)
class StackedLSTM(_RecurrentNetwork):
    """Stacked LSTM: ``num_layers`` LSTM layers of ``hidden`` units; the top layer's final state goes through dropout
    and a dense layer (with the static features, if any).

    Args:
        n_features: variables per time step (37 for PhysioNet 2012, 12 ECG leads).
        n_outputs: classes for classification, targets for regression.
        n_static: static features concatenated to the final state before the dense layer (0: none).
        hidden: units per LSTM layer.
        num_layers: LSTM layers.
        dropout: dropout between LSTM layers and before the dense layer.
        use_mask: also feed the observation mask (input width n_features * 2).
        use_delta: also feed the time since the last observation.
    """

    name = "stacked_lstm"
    rnn_class = nn.LSTM

    def __init__(
        self, n_features: int = 37, n_outputs: int = 2, n_static: int = 0, hidden: int = 64, num_layers: int = 3,
        dropout: float = 0.2, use_mask: bool = False, use_delta: bool = False,
    ):  # fmt: skip
        super().__init__(n_features, n_outputs, n_static, hidden, num_layers, dropout, use_mask, use_delta)


@NETWORKS.register(
    "gru",
    modality="series",
    description="A GRU layer of 128 units, its final state into a dense output.",
)
class GRUNetwork(_RecurrentNetwork):
    """GRU: ``num_layers`` GRU layers of ``hidden`` units; the top layer's final state goes through dropout and a
    dense layer (with the static features, if any).

    Args:
        n_features: variables per time step.
        n_outputs: classes for classification, targets for regression.
        n_static: static features concatenated to the final state before the dense layer (0: none).
        hidden: units per GRU layer.
        num_layers: GRU layers.
        dropout: dropout between GRU layers and before the dense layer.
        use_mask: also feed the observation mask.
        use_delta: also feed the time since the last observation.
    """

    name = "gru"
    rnn_class = nn.GRU

    def __init__(
        self, n_features: int = 37, n_outputs: int = 2, n_static: int = 0, hidden: int = 128, num_layers: int = 1,
        dropout: float = 0.2, use_mask: bool = False, use_delta: bool = False,
    ):  # fmt: skip
        super().__init__(n_features, n_outputs, n_static, hidden, num_layers, dropout, use_mask, use_delta)


@NETWORKS.register(
    "grud",
    modality="series",
    description="GRU-D (Che et al. 2018): inputs decay toward the mean and the hidden state decays with time since "
    "the last observation; the mask is an extra input. Needs 'mask' and 'delta'.",
)
class GRUD(nn.Module):
    """GRU-D for series with missing values (Che et al., Scientific Reports 8, 6085, 2018).

    At each step a variable not observed (mask 0) is imputed as ``decay * last_value + (1 - decay) * mean`` with
    ``decay = exp(-relu(w * delta + b))`` learned per variable; the mean is 0 because the series is standardised,
    and the forward-filled series already holds the last observed value. The hidden state decays by
    ``exp(-relu(W delta + b))`` before each step. The GRU reads the imputed values and the mask.

    Args:
        n_features: variables per time step.
        n_outputs: classes for classification, targets for regression.
        n_static: static features concatenated to the final state before the dense layer (0: none).
        hidden: units of the GRU cell.
        dropout: dropout before the dense layer.

    Examples:
        >>> import torch
        >>> network = GRUD(n_features=3, n_outputs=2, hidden=8)
        >>> mask = (torch.rand(4, 6, 3) > 0.5).float()
        >>> network(torch.randn(4, 6, 3), mask, torch.rand(4, 6, 3)).shape
        torch.Size([4, 2])
    """

    name = "grud"

    def __init__(self, n_features: int = 37, n_outputs: int = 2, n_static: int = 0, hidden: int = 64, dropout: float = 0.2):
        super().__init__()
        check_network_args(
            self.name, n_features=n_features, n_outputs=n_outputs, n_static=n_static, hidden=hidden, dropout=dropout
        )
        self.n_features, self.n_outputs, self.n_static = n_features, n_outputs, n_static
        # Positive start: relu'(0) is 0 in torch, so a zero start would never learn to decay.
        self.input_decay_weight = nn.Parameter(torch.full((n_features,), 0.1))
        self.input_decay_bias = nn.Parameter(torch.zeros(n_features))
        self.hidden_decay = nn.Linear(n_features, hidden)
        self.cell = nn.GRUCell(2 * n_features, hidden)
        self.head = OutputHead(hidden, n_static, n_outputs, dropout)

    def impute(self, series: torch.Tensor, mask: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """Observed values as they are, missing ones decayed from the last observation toward the mean (0).

        Args:
            series: forward-filled standardised values, shape (batch, time, n_features).
            mask: 1 where observed, shape (batch, time, n_features).
            delta: time since the last observation, shape (batch, time, n_features).

        Returns:
            The imputed series, shape (batch, time, n_features).
        """
        decay = torch.exp(-F.relu(delta * self.input_decay_weight + self.input_decay_bias))  # (batch, time, features)
        return series * (mask + (1 - mask) * decay)  # (batch, time, features)

    def forward(self, series, mask=None, delta=None, static=None) -> torch.Tensor:
        inputs = series_inputs(self.name, self.n_features, series, mask, delta, use_mask=True, use_delta=True)
        series, mask, delta = inputs.split(self.n_features, dim=-1)  # (batch, time, features) each, checked
        imputed = torch.cat([self.impute(series, mask, delta), mask], dim=-1)  # (batch, time, 2 * features)
        hidden_decay = torch.exp(-F.relu(self.hidden_decay(delta)))  # (batch, time, hidden)
        # The input half of the GRU does not depend on the state: project every step at once.
        projected = F.linear(imputed, self.cell.weight_ih, self.cell.bias_ih)  # (batch, time, 3 * hidden)
        state = series.new_zeros(len(series), self.cell.hidden_size)  # (batch, hidden)
        for step_input, step_decay in zip(projected.unbind(1), hidden_decay.unbind(1)):
            state = _gru_step(step_input, state * step_decay, self.cell.weight_hh, self.cell.bias_hh)
        return self.head(state, static)  # (batch, n_outputs)


def _gru_step(projected: torch.Tensor, state: torch.Tensor, weight_hh: torch.Tensor, bias_hh: torch.Tensor) -> torch.Tensor:
    """One GRU update (the ``nn.GRUCell`` equations) from a precomputed input projection, shape (batch, 3 * hidden)."""
    input_reset, input_update, input_new = projected.chunk(3, dim=1)  # (batch, hidden) each
    state_reset, state_update, state_new = F.linear(state, weight_hh, bias_hh).chunk(3, dim=1)
    reset = torch.sigmoid(input_reset + state_reset)
    update = torch.sigmoid(input_update + state_update)
    new = torch.tanh(input_new + reset * state_new)
    return new + update * (state - new)  # (1 - update) * new + update * state
