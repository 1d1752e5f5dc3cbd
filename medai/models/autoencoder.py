"""Autoencoders: a dense one for flattened images and a denoising, mask-aware one for tables of measurements.

Both networks are plain modules with ``encode(x) -> code`` and ``decode(code) -> flat reconstruction``; the
``AutoencoderModel`` wrapper turns either into a medai model (batch dict in, ``{"logits", "code", "error", "loss"}``
out), so the generic Trainer fits it with ``monitor="loss"``.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from medai.errors import InvalidInputError, check_choice
from medai.models.registry import NETWORKS

OUTPUTS = ("sigmoid", "linear", "clamp")


def _check_widths(input_dim: int, hidden, code_dim: int) -> tuple[int, ...]:
    hidden = tuple(int(width) for width in hidden)
    for name, value in (("input_dim", input_dim), ("code_dim", code_dim), *(("hidden", w) for w in hidden)):
        if not isinstance(value, int) or value < 1:
            raise InvalidInputError(f"The '{name}' parameter of an autoencoder must be an int >= 1; got {value!r}.")
    return hidden


def _stack(widths: tuple[int, ...], dropout: float) -> nn.Sequential:
    """Linear-ReLU(-Dropout) for every step but the last, which stays linear."""
    layers: list[nn.Module] = []
    for step, (width_in, width_out) in enumerate(itertools.pairwise(widths)):
        layers.append(nn.Linear(width_in, width_out))
        if step < len(widths) - 2:
            layers.append(nn.ReLU(inplace=True))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


@NETWORKS.register(
    "dense_autoencoder",
    modality="image",
    description="Dense autoencoder 784-64-32-64-784 (ReLU, linear code, sigmoid output) for flattened 28x28 images.",
    input_dim=784,
)
class DenseAutoencoder(nn.Module):
    """Fully connected autoencoder over flattened inputs: input -> hidden... -> code -> ...hidden -> input.

    Args:
        input_dim: features per sample after flattening (784 for 1x28x28 images).
        hidden: widths of the encoder's hidden layers; the decoder mirrors them.
        code_dim: width of the code (the linear bottleneck).
        dropout: dropout after each hidden ReLU.
        output: ``"sigmoid"`` or ``"clamp"`` (linear, clipped to [0, 1]) for inputs in [0, 1] (images),
            ``"linear"`` for any real inputs.
    """

    def __init__(
        self, input_dim: int = 784, hidden=(64,), code_dim: int = 32, dropout: float = 0.0, output: str = "sigmoid"
    ):
        super().__init__()
        hidden = _check_widths(input_dim, hidden, code_dim)
        check_choice("output", output, OUTPUTS)
        self.input_dim, self.code_dim, self.output = input_dim, code_dim, output
        self.encoder = _stack((input_dim, *hidden, code_dim), dropout)
        self.decoder = _stack((code_dim, *reversed(hidden), input_dim), dropout)

    def corrupt(self, inputs: torch.Tensor, missing: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training-time corruption: none for this network (dropout, if any, regularises it)."""
        return inputs, missing

    @torch.no_grad()
    def initialise_from_pca(self, inputs: torch.Tensor) -> None:
        """Set the weights so that the network computes PCA's reconstruction at ``code_dim`` dimensions.

        Training then starts from the best linear autoencoder instead of from noise, and can only improve on it
        where the non-linearity helps. The first hidden layer holds the leading ``hidden`` principal components,
        the code the leading ``code_dim``; each ReLU gets a bias that keeps it in its linear range on ``inputs``
        with a margin of the unit's range (so that new inputs stay linear too).

        Args:
            inputs: training inputs of shape (n_samples, ...) with ``input_dim`` features per sample.
        """
        linear = [m for m in self.modules() if isinstance(m, nn.Linear)]
        widths = [linear[0].in_features] + [m.out_features for m in linear]
        if len(linear) != 4 or self.output == "sigmoid" or widths[1] < widths[2]:
            raise InvalidInputError(
                "PCA initialisation needs one hidden layer at least as wide as the code and output 'linear' or "
                "'clamp'; "
                f"got widths {widths} and output={self.output!r}."
            )
        flat = inputs.reshape(len(inputs), -1).double()  # (n, input_dim)
        mean = flat.mean(0)
        hidden, code = widths[1], widths[2]
        _, _, vt = torch.linalg.svd(flat - mean, full_matrices=False)
        components = torch.zeros(hidden, flat.shape[1], dtype=torch.float64)  # (hidden, input_dim)
        rank = min(hidden, len(vt))
        components[:rank] = vt[:rank]
        scores = (flat - mean) @ components.T  # (n, hidden)
        low, high = scores.min(0).values, scores.max(0).values  # (hidden,) each
        margin = (high - low).clamp_min(1.0)
        shift = margin - low  # every pre-activation on the training inputs >= margin
        select = torch.eye(code, hidden, dtype=torch.float64)  # (code, hidden): picks the leading components
        lift = margin.clone()  # decoder ReLU offsets, (hidden,)
        lift[:code] -= low[:code]
        leading = vt[:code].T  # (input_dim, code)
        weights = [
            (components, shift - components @ mean),  # hidden units: the principal scores, shifted positive
            (select, -shift[:code]),  # code: the leading principal scores
            (select.T, lift),  # decoder hidden units: the code, shifted positive
            (leading @ select, mean - leading @ lift[:code]),  # reconstruction: mean + components' span
        ]
        for module, (weight, bias) in zip(linear, weights, strict=True):
            module.weight.copy_(weight.float())
            module.bias.copy_(bias.float())

    def encode(self, inputs: torch.Tensor, missing: torch.Tensor | None = None) -> torch.Tensor:
        flat = inputs.reshape(len(inputs), -1)  # (batch, input_dim)
        if flat.shape[1] != self.input_dim:
            raise InvalidInputError(
                f"dense_autoencoder expects {self.input_dim} features per sample; got {flat.shape[1]}."
            )
        return self.encoder(flat)  # (batch, code_dim)

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        flat = self.decoder(code)  # (batch, input_dim)
        if self.output == "sigmoid":
            return torch.sigmoid(flat)
        return flat.clamp(0.0, 1.0) if self.output == "clamp" else flat

    def forward(self, inputs: torch.Tensor, missing: torch.Tensor | None = None) -> torch.Tensor:
        return self.decode(self.encode(inputs)).reshape(inputs.shape)


@NETWORKS.register(
    "tabular_autoencoder",
    modality="table",
    description="Denoising, mask-aware dense autoencoder for standardised lab panels (loss on observed values only).",
    input_dim=8,
)
class TabularAutoencoder(nn.Module):
    """Denoising autoencoder for rows of standardised measurements, shape (batch, input_dim).

    In training mode ``forward`` hides a random ``corruption`` share of the entries (set to 0, the training mean
    after standardisation, and marked missing) and learns to reconstruct them: denoising is imputation practice.

    Args:
        input_dim: numeric columns per row.
        hidden: widths of the encoder's hidden layers; the decoder mirrors them.
        code_dim: width of the code.
        mask_dim: 0, or ``input_dim`` to feed the missing-value mask to the encoder beside the values, so that a
            missing value is told apart from a value equal to the mean.
        corruption: share of entries hidden in each training batch (0 disables denoising).
        dropout: dropout after each hidden ReLU.
    """

    def __init__(
        self,
        input_dim: int = 8,
        hidden=(64,),
        code_dim: int = 8,
        mask_dim: int = 0,
        corruption: float = 0.2,
        dropout: float = 0.0,
    ):
        super().__init__()
        hidden = _check_widths(input_dim, hidden, code_dim)
        if mask_dim not in (0, input_dim):
            raise InvalidInputError(f"The 'mask_dim' parameter must be 0 or input_dim ({input_dim}); got {mask_dim!r}.")
        if not 0.0 <= corruption < 1.0:
            raise InvalidInputError(f"The 'corruption' parameter must be a float in [0, 1); got {corruption!r}.")
        self.input_dim, self.code_dim, self.mask_dim, self.corruption = input_dim, code_dim, mask_dim, corruption
        self.encoder = _stack((input_dim + mask_dim, *hidden, code_dim), dropout)
        self.decoder = _stack((code_dim, *reversed(hidden), input_dim), dropout)

    def corrupt(self, values: torch.Tensor, missing: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Hide a random ``corruption`` share of entries: zero them and mark them missing."""
        if self.corruption == 0:
            return values, missing
        hidden = torch.rand_like(values) < self.corruption  # (batch, input_dim)
        return values.masked_fill(hidden, 0.0), missing | hidden

    def encode(self, values: torch.Tensor, missing: torch.Tensor | None = None) -> torch.Tensor:
        if values.dim() != 2 or values.shape[1] != self.input_dim:
            raise InvalidInputError(
                f"tabular_autoencoder expects rows of shape (batch, {self.input_dim}); got {tuple(values.shape)}."
            )
        if self.mask_dim:
            missing = torch.zeros_like(values, dtype=torch.bool) if missing is None else missing
            values = torch.cat([values, missing.to(values.dtype)], dim=1)  # (batch, 2 * input_dim)
        return self.encoder(values)  # (batch, code_dim)

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        return self.decoder(code)  # (batch, input_dim)

    def forward(self, values: torch.Tensor, missing: torch.Tensor | None = None) -> torch.Tensor:
        missing = torch.zeros_like(values, dtype=torch.bool) if missing is None else missing
        if self.training:
            values, missing = self.corrupt(values, missing)
        return self.decode(self.encode(values, missing))


class AutoencoderModel(nn.Module):
    """Batch dict in, ``{"logits": reconstruction, "code", "error", "loss"}`` out.

    Inputs are standardised per feature (when ``mean``/``std`` are given); missing entries (NaN in the input, or 1
    in ``batch["missing"]``) are set to 0 after standardisation and excluded from the loss and the error.

    Args:
        network: an autoencoder with ``corrupt(x, missing)`` (training-time noise), ``encode(x, missing)`` and
            ``decode(code)``.
        input_key: the batch key holding the inputs (``"image"``, ``"table"``).
        mean: per-feature mean fitted on the training split, shape (n_features,); None for no standardisation.
        std: per-feature standard deviation, shape (n_features,); None for no standardisation.

    Outputs:
        logits: reconstruction in input units, shape of the input.
        code: shape (batch, code_dim).
        error: per-sample mean squared error over observed entries, in standardised units, shape (batch,).
        loss: mean squared error over every observed entry of the batch (a scalar).
    """

    def __init__(
        self, network: nn.Module, input_key: str, mean: list[float] | None = None, std: list[float] | None = None
    ):
        super().__init__()
        if (mean is None) != (std is None):
            raise InvalidInputError("Give both 'mean' and 'std' to standardise, or neither.")
        self.network, self.input_key = network, input_key
        self.register_buffer("mean", None if mean is None else torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", None if std is None else torch.as_tensor(std, dtype=torch.float32).clamp_min(1e-6))

    def prepare(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised inputs with missing entries zeroed, and the missing mask; both the input's shape."""
        raw = batch[self.input_key].float()
        missing = torch.isnan(raw)
        if "missing" in batch:
            missing = missing | batch["missing"].reshape(raw.shape).bool()
        values = (
            raw if self.mean is None else (raw - self.mean.reshape(raw.shape[1:])) / self.std.reshape(raw.shape[1:])
        )
        return values.masked_fill(missing, 0.0), missing

    def to_input_units(self, standardised: torch.Tensor) -> torch.Tensor:
        if self.mean is None:
            return standardised
        return standardised * self.std.reshape(standardised.shape[1:]) + self.mean.reshape(standardised.shape[1:])

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """Reconstruction in input units, flattened: shape (batch, n_features)."""
        flat = self.network.decode(code)  # (batch, n_features)
        return flat if self.mean is None else flat * self.std.reshape(1, -1) + self.mean.reshape(1, -1)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        values, missing = self.prepare(batch)  # (batch, ...) each
        seen, seen_missing = self.network.corrupt(values, missing) if self.training else (values, missing)
        code = self.network.encode(seen, seen_missing)  # (batch, code_dim)
        reconstruction = self.network.decode(code).reshape(values.shape)  # standardised units
        observed = (~missing).reshape(len(values), -1).float()  # (batch, n_features)
        squared = (reconstruction - values).reshape(len(values), -1).square() * observed
        error = squared.sum(1) / observed.sum(1).clamp_min(1.0)  # (batch,)
        loss = squared.sum() / observed.sum().clamp_min(1.0)
        return {"logits": self.to_input_units(reconstruction), "code": code, "error": error, "loss": loss}
