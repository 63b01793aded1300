"""Shape checks shared by the model families."""

from hiddenlab.config import ConfigError


def check_spatial(h: int, w: int, input_shape, model: str) -> None:
    if h < 1 or w < 1:
        raise ConfigError("depth", f"{model} pools a {input_shape[1]}x{input_shape[2]} input "
                          "below 1x1; use a smaller depth or larger images")
