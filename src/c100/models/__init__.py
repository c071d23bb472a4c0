from c100.models.registry import (  # noqa: F401
    create_model, get_entry, list_aliases, list_models, register_alias, register_model,
)
