"""Every configuration key is documented in the README (and shipped in config.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest
import yaml
from pydantic import BaseModel

from newsletter.config import Settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
SHIPPED = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
LISTS = {"sources", "topics", "admins"}  # lists of items, documented as one key each


def keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    found = []
    for name, field in model.model_fields.items():
        section = next(
            (
                a
                for a in (field.annotation, *get_args(field.annotation))
                if isinstance(a, type) and issubclass(a, BaseModel)
            ),
            None,
        )
        if section is not None and name not in LISTS:
            found += keys(section, f"{prefix}{name}.")
        else:
            found.append(prefix + name)
    return found


@pytest.mark.parametrize("key", keys(Settings))
def test_every_setting_is_in_the_readme(key: str) -> None:
    assert f"`{key}`" in README


@pytest.mark.parametrize("key", [k for k in keys(Settings) if not k.startswith("dkim.")])
def test_every_setting_is_in_the_shipped_config(key: str) -> None:
    node = SHIPPED
    for part in key.split("."):
        if key == "secret_key":
            return  # deliberately absent from the file: generated, or from the environment
        if key == "topics":
            return  # shipped in the package (newsletter/data/topics.yaml), one source
        assert isinstance(node, dict) and part in node, f"{key} missing from config.yaml"
        node = node[part]
