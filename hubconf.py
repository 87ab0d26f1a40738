"""torch.hub entry points: ``torch.hub.load(<repo dir>, "attention56_mini", source="local", weights=<name>)``."""

dependencies = ["torch", "hydra", "omegaconf", "safetensors"]

from resattn.models.builders import attention56, attention56_mini, attention56_mini_paper, attention92  # noqa: E402, F401
