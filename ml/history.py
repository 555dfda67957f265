"""Reading a training history ({"epoch", "loss", ...} per epoch). Pure Python, without torch:
the web pages use it too."""

import math


def loss_warning(history: list[dict]) -> str | None:
    """Why a run's training loss looks diverged, or None: a loss that became NaN or infinite,
    or one that ended above where it started and well above its lowest value (a learning rate
    too high for the data, typically)."""
    losses = [h["loss"] for h in history if h.get("loss") is not None]
    if any(not math.isfinite(loss) for loss in losses):
        return (
            "The training loss became NaN or infinite: the run diverged. Lower the learning rate."
        )
    if len(losses) >= 3 and losses[-1] > losses[0] and losses[-1] > 1.25 * min(losses):
        return (
            f"The training loss rose from {losses[0]:.3f} (epoch 1) to {losses[-1]:.3f} (last "
            f"epoch; lowest {min(losses):.3f}): the learning rate is probably too high for this "
            "data. Try a lower one."
        )
    return None
